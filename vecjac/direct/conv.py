"""Direct convolution and its backward pass, vectorised: the note's section 2 and the third
seed text's formulas.

Forward (section 2 of the note): ``Z_j = sum_i A_i * K_{j,i} + b_j 1``, where ``*`` is
cross-correlation with symmetric zero padding ``(h_p, w_p)`` and stride ``(h_s, w_s)``.  The
padded input is unfolded into columns (im2col: one strided copy per kernel offset) and the
sum over ``(i, u, v)`` is one matrix product (BLAS).  No Python loop runs over pixels,
samples or channels; ``conv2d_backward`` uses the same columns for ``dK`` and folds the
columns of ``dA`` back with one strided addition per kernel offset (col2im).

The third seed text's formulas are here too, generalised to stride and padding and written
with ``conv2d`` itself:

* ``dL/dK = conv(X, dL/dZ)``   (:func:`kernel_gradient`; ``dL/dZ`` dilated by the stride),
* ``dL/dB = sum(dL/dZ)``       (:func:`bias_gradient`),
* ``dL/dX = full convolution of dL/dZ with K rotated by 180 degrees``
  (:func:`input_gradient`; ``dL/dZ`` dilated by the stride, the result cropped by the padding).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..vec import as_float_array, as_pair, check_padding_mode, conv_output_shape

__all__ = [
    "conv2d",
    "conv2d_backward",
    "kernel_gradient",
    "bias_gradient",
    "input_gradient",
    "dilate",
]


def conv2d(A: ArrayLike, K: ArrayLike, b: ArrayLike | None = None, stride=1, padding=0, *,
           return_cols: bool = False, padding_mode: str = "zeros"):
    """``Z = A * K + b``: multi-channel cross-correlation, as section 2 of the note.

    Parameters
    ----------
    A : array_like, shape (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    K : array_like, shape (C_out, C_in, h_k, w_k)
        ``K[j, i]`` is the note's ``K_{j,i}``, channel i of kernel j.
    b : array_like, shape (C_out,), optional
    stride : int or (h_s, w_s)
    padding : int or (h_p, w_p)
        Padding on both sides of each spatial axis.
    padding_mode : {"zeros", "circular"}
        ``"zeros"`` pads with zeros; ``"circular"`` wraps around, as PyTorch's
        ``Conv2d(padding_mode="circular")``: the padded input is
        ``np.pad(A, ..., mode="wrap")``, so ``A_pad[i, r, s] = A[i, (r - h_p) mod h_a,
        (s - w_p) mod w_a]``.  Circular padding must not exceed the input size.
    return_cols : bool
        Also return the unfolded input (im2col), which :func:`conv2d_backward` accepts as
        ``cols`` instead of unfolding ``A`` again.  For maps in the vec layout
        (:func:`vec_layout`) everything runs on the transposed maps: ``Z`` keeps the layout
        and ``cols`` unfolds the transposed maps.

    Returns
    -------
    Z : ndarray, shape (C_out, h_z, w_z) or (N, C_out, h_z, w_z)
        ``h_z = floor((h_a + 2 h_p - h_k) / h_s) + 1``, likewise ``w_z``.
    cols : ndarray, shape (C_in h_k w_k, N h_z w_z)
        Only with ``return_cols=True``.
    """
    A, K, single = _check_conv_args(A, K)
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    check_padding_mode(padding_mode, padding, A.shape[2:])
    if vec_layout(A):  # the same convolution of the transposed maps; Z keeps A's layout
        Z_T, cols = conv2d(_swap(A), _swap(K), b, stride[::-1], padding[::-1],
                           return_cols=True, padding_mode=padding_mode)
        Z = _swap(Z_T[0] if single else Z_T)
        return (Z, cols) if return_cols else Z
    cols = _im2col(A, K.shape[2:], stride, padding, padding_mode)  # (C_in h_k w_k, N h_z w_z)
    N, (hz, wz) = A.shape[0], conv_output_shape(A.shape[2:], K.shape[2:], stride, padding)
    per_sample = cols.reshape(cols.shape[0], N, hz * wz).transpose(1, 0, 2)  # a view
    Z = np.matmul(K.reshape(K.shape[0], -1), per_sample).reshape(N, K.shape[0], hz, wz)
    if b is not None:
        b = as_float_array(b, "b", ndims=(1,))
        if b.shape[0] != K.shape[0]:
            raise ValueError(f"b has {b.shape[0]} entries but K has {K.shape[0]} kernels")
        Z += b[:, None, None]
    Z = Z[0] if single else Z
    return (Z, cols) if return_cols else Z


def conv2d_backward(
    dZ: ArrayLike, A: ArrayLike, K: ArrayLike, stride=1, padding=0, *, input_grad: bool = True,
    cols: NDArray | None = None, padding_mode: str = "zeros",
) -> tuple[NDArray | None, NDArray, NDArray]:
    """Ordinary back-propagation through :func:`conv2d`.

    Parameters
    ----------
    dZ : array_like, shape of ``conv2d(A, K)``
        The upstream gradient ``dL/dZ``.
    A, K, stride, padding, padding_mode : as for :func:`conv2d`
    input_grad : bool
        ``False`` skips ``dA`` (returned as ``None``): a network's first layer needs no
        gradient with respect to its input.
    cols : ndarray, optional
        The unfolded input that ``conv2d(A, K, ..., return_cols=True)`` returned for the
        same ``A`` (the same array: for maps in the vec layout, :func:`vec_layout`, the
        columns are those of the transposed maps), stride, padding and padding mode; saves
        unfolding ``A`` again (checked for shape only).

    Returns
    -------
    dA : ndarray, shape of A (or None)
    dK : ndarray, shape of K (summed over the batch)
    db : ndarray, shape (C_out,) (summed over the batch and the positions)
    """
    A, K, single = _check_conv_args(A, K)
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    check_padding_mode(padding_mode, padding, A.shape[2:])
    dZ = _check_upstream(dZ, A, K, stride, padding, single)
    if vec_layout(A):  # as conv2d: the transposed maps, and cols of the transposed maps
        dA_T, dK_T, db = conv2d_backward(_swap(dZ), _swap(A), _swap(K), stride[::-1],
                                         padding[::-1], input_grad=input_grad, cols=cols,
                                         padding_mode=padding_mode)
        dA = None if dA_T is None else _swap(dA_T[0] if single else dA_T)
        return dA, np.ascontiguousarray(_swap(dK_T)), db
    hk, wk = K.shape[2:]
    N, C_in, ha, wa = A.shape
    _, _, hz, wz = dZ.shape

    expected = (C_in * hk * wk, N * hz * wz)
    if cols is None:
        cols = _im2col(A, (hk, wk), stride, padding, padding_mode)  # (C_in h_k w_k, N h_z w_z)
    elif cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape}, expected (C_in h_k w_k, N h_z w_z) = "
                         f"{expected}: pass what conv2d(A, K, return_cols=True) returned")
    if _per_sample_products(cols, N):  # no transposed copy of dZ
        dK = _kernel_grad_per_sample(dZ.reshape(N, dZ.shape[1], hz * wz), cols, K.shape)
        db = np.einsum("ncp->c", dZ.reshape(N, dZ.shape[1], hz * wz))
    else:
        dZ_mat = dZ.transpose(1, 0, 2, 3).reshape(dZ.shape[1], -1)  # (C_out, N h_z w_z)
        dK = _kernel_grad_from_rows(dZ_mat, cols, K.shape)
        db = dZ_mat.sum(axis=1)

    if not input_grad:
        return None, dK, db
    dA = _input_grad(dZ, K, (N, C_in, ha, wa), stride, padding, padding_mode)
    return (dA[0] if single else dA), dK, db


def _input_grad(dZ: NDArray, K: NDArray, input_shape, stride, padding,
                padding_mode: str = "zeros") -> NDArray:
    """``dA`` of shape ``input_shape`` (N, C_in, h_a, w_a) from ``dZ = dL/dZ`` (N, C_out, h_z,
    w_z): for each kernel offset ``(u, v)`` one matrix product ``K[:, :, u, v]^T dZ_n`` for
    every sample, added at its strided place (col2im, one offset at a time, so no temporary
    is larger than ``dA``).  Arguments are taken as checked; ``dZ`` may be any array of
    that shape."""
    (hs, ws), (hp, wp), (hk, wk) = stride, padding, K.shape[2:]
    N, C_in, ha, wa = input_shape
    c_out, (hz, wz) = K.shape[0], dZ.shape[2:]
    dZ_n = dZ.reshape(N, c_out, hz * wz)
    K_uv = np.ascontiguousarray(K.transpose(2, 3, 1, 0))  # (h_k, w_k, C_in, C_out)
    tiles = (hs, ws) == (hk, wk) and (hz * hk, wz * wk) == (ha, wa) and not (hp or wp)
    make = np.empty if tiles else np.zeros  # tiling windows (2x2 pooling) write each entry once
    dtype = np.result_type(dZ, K)
    dA_pad = make((N, C_in, ha + 2 * hp, wa + 2 * wp), dtype=dtype)
    part = np.empty((N, C_in, hz * wz), dtype=dtype)  # one buffer for every offset: fresh
    for u in range(hk):                                # pages cost more than the product
        for v in range(wk):
            np.matmul(K_uv[u, v], dZ_n, out=part)
            target = dA_pad[:, :, u : u + hs * hz : hs, v : v + ws * wz : ws]
            if tiles:
                target[...] = part.reshape(N, C_in, hz, wz)
            else:
                target += part.reshape(N, C_in, hz, wz)
    if padding_mode == "circular":  # the padding is a copy of the input: fold it back
        dA_pad = _fold_wrap(_fold_wrap(dA_pad, hp, 2), wp, 3)
    if not (hp or wp):
        return dA_pad
    return np.ascontiguousarray(dA_pad[:, :, hp : hp + ha, wp : wp + wa])


def _kernel_grad_from_rows(dZ_mat: NDArray, cols: NDArray, kernel_shape) -> NDArray:
    """``dK`` of ``kernel_shape`` from ``dZ_mat`` ``(C_out, N h_z w_z)`` and the unfolded
    input ``cols`` ``(C_in h_k w_k, N h_z w_z)``: one matrix product."""
    return (dZ_mat @ cols.T).reshape(kernel_shape)


def _per_sample_products(cols: NDArray, N: int) -> bool:
    """Whether ``dK`` is better summed from one product per sample
    (:func:`_kernel_grad_per_sample`): when a sample's unfolded rows ``C_in h_k w_k`` are no
    more than its positions ``h_z w_z``, the per-sample products' temporary is no larger
    than the transposed copy of ``dZ`` that the single product needs, and each product is
    a well-shaped GEMM instead of one whose inner dimension is the whole batch (measured:
    4x faster for a first layer, 1.5x for network N's second)."""
    return cols.shape[0] * N <= cols.shape[1]


def _kernel_grad_per_sample(dZ: NDArray, cols: NDArray, kernel_shape) -> NDArray:
    """``dK = sum_n dZ_n cols_n^T`` from ``dZ`` ``(N, C_out, h_z w_z)`` (positions in
    ``cols``' order) and ``cols`` ``(C_in h_k w_k, N h_z w_z)``: one batched matrix product
    ``(N, C_in h_k w_k, h_z w_z) @ (N, h_z w_z, C_out)``, summed over the samples."""
    N, c_out, positions = dZ.shape
    per_sample = cols.reshape(cols.shape[0], N, positions).transpose(1, 0, 2)  # views
    dK_T = np.matmul(per_sample, dZ.transpose(0, 2, 1)).sum(axis=0)  # (C_in h_k w_k, C_out)
    return np.ascontiguousarray(dK_T.T).reshape(kernel_shape)


def dilate(dZ: ArrayLike, stride=1) -> NDArray:
    """Insert ``h_s - 1`` zero rows and ``w_s - 1`` zero columns between entries of ``dZ``.

    Works on the last two axes; the result has ``(h_z - 1) h_s + 1`` rows.
    """
    dZ = np.asarray(dZ)
    hs, ws = as_pair(stride, "stride", 1)
    hz, wz = dZ.shape[-2:]
    out = np.zeros(dZ.shape[:-2] + ((hz - 1) * hs + 1, (wz - 1) * ws + 1), dtype=dZ.dtype)
    out[..., ::hs, ::ws] = dZ
    return out


def kernel_gradient(X: ArrayLike, dZ: ArrayLike, kernel_size, stride=1, padding=0) -> NDArray:
    """The third seed text's ``dL/dK = conv(X, dL/dZ)``, for any channels, stride, padding.

    ``dK[j, i] = sum_n conv(X_pad[n, i], dilate(dZ[n, j]))`` with stride 1, cropped to the
    kernel size: the sample axis plays the role of the channel axis of :func:`conv2d`.

    Parameters
    ----------
    X : array_like, shape (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    dZ : array_like, shape (C_out, h_z, w_z) or (N, C_out, h_z, w_z)
    kernel_size : int or (h_k, w_k)

    Returns
    -------
    dK : ndarray, shape (C_out, C_in, h_k, w_k)
    """
    X = _batched(as_float_array(X, "X", ndims=(3, 4)))
    dZ = _batched(as_float_array(dZ, "dZ", ndims=(3, 4)))
    hk, wk = as_pair(kernel_size, "kernel_size", 1)
    hp, wp = as_pair(padding, "padding", 0)
    hz, wz = conv_output_shape(X.shape[2:], (hk, wk), stride, padding)
    if dZ.shape[0] != X.shape[0] or dZ.shape[2:] != (hz, wz):
        raise ValueError(
            f"dZ has shape {dZ.shape}, but X {X.shape} with a {hk}x{wk} kernel, stride "
            f"{stride} and padding {padding} gives outputs of shape "
            f"({X.shape[0]}, C_out, {hz}, {wz})"
        )
    X_pad = np.pad(X, ((0, 0), (0, 0), (hp, hp), (wp, wp)))
    D = dilate(dZ, stride)
    # batch <- channels of X, channels <- samples: sum over samples is the channel sum.
    dK = conv2d(X_pad.transpose(1, 0, 2, 3), D.transpose(1, 0, 2, 3))  # (C_in, C_out, ., .)
    return np.ascontiguousarray(dK.transpose(1, 0, 2, 3)[:, :, :hk, :wk])


def bias_gradient(dZ: ArrayLike) -> NDArray:
    """The third seed text's ``dL/dB = sum(dL/dZ)``: one sum per output channel.

    ``dZ`` of shape ``(C_out, h_z, w_z)`` or ``(N, C_out, h_z, w_z)``; returns ``(C_out,)``.
    """
    dZ = _batched(as_float_array(dZ, "dZ", ndims=(3, 4)))
    return dZ.sum(axis=(0, 2, 3))


def input_gradient(dZ: ArrayLike, K: ArrayLike, input_size, stride=1, padding=0) -> NDArray:
    """The third seed text's ``dL/dX``: full convolution of ``dL/dZ`` with ``K`` rotated 180°.

    ``dL/dZ`` is dilated by the stride, padded by ``h_k - 1`` (``w_k - 1``) on each side, plus
    the rows and columns of the padded input that no window reached; it is then correlated
    with ``rot180(K)`` (input and output channels swapped), and the padding is cropped.

    Parameters
    ----------
    dZ : array_like, shape (C_out, h_z, w_z) or (N, C_out, h_z, w_z)
    K : array_like, shape (C_out, C_in, h_k, w_k)
    input_size : int or (h_a, w_a)

    Returns
    -------
    dX : ndarray, shape (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    """
    dZ = as_float_array(dZ, "dZ", ndims=(3, 4))
    single = dZ.ndim == 3
    dZ = _batched(dZ)
    K = as_float_array(K, "K", ndims=(4,))
    ha, wa = as_pair(input_size, "input_size", 1)
    hp, wp = as_pair(padding, "padding", 0)
    hk, wk = K.shape[2:]
    hz, wz = conv_output_shape((ha, wa), (hk, wk), stride, padding)
    if dZ.shape[1:] != (K.shape[0], hz, wz):
        raise ValueError(
            f"dZ has shape {dZ.shape[1:] if single else dZ.shape}, but K {K.shape} on an input "
            f"of {ha}x{wa} with stride {stride} and padding {padding} gives (C_out, h_z, w_z) = "
            f"{(K.shape[0], hz, wz)}"
        )
    D = dilate(dZ, stride)
    extra_h = ha + 2 * hp - (D.shape[2] + hk - 1)  # rows of the padded input no window reached
    extra_w = wa + 2 * wp - (D.shape[3] + wk - 1)
    D_full = np.pad(D, ((0, 0), (0, 0), (hk - 1, hk - 1 + extra_h), (wk - 1, wk - 1 + extra_w)))
    K_rot = K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, h_k, w_k), rotated
    dX_pad = conv2d(D_full, K_rot)
    dX = dX_pad[:, :, hp : hp + ha, wp : wp + wa]
    return np.ascontiguousarray(dX[0] if single else dX)


def vec_layout(A: NDArray) -> bool:
    """Whether a batch of maps ``(N, C, H, W)`` is stored in the note's vec layout: every
    channel column-major, i.e. ``A.swapaxes(-1, -2)`` is C-contiguous and ``A`` is not (as
    :class:`vecjac.Sequential` keeps its maps, so that ``vec`` is a reshape).  Convolution
    and pooling then run on the transposed maps, and their outputs keep the layout."""
    return A.ndim == 4 and not A.flags.c_contiguous and _swap(A).flags.c_contiguous


def _columns(A: NDArray, kernel_hw, stride, padding, padding_mode: str = "zeros") -> NDArray:
    """The unfolded input that ``conv2d(A, ..., return_cols=True)`` gives for the batch ``A``
    (checked pairs): those of the transposed maps when ``A`` is in the vec layout."""
    if vec_layout(A):
        return _im2col(_swap(A), tuple(kernel_hw)[::-1], stride[::-1], padding[::-1],
                       padding_mode)
    return _im2col(A, kernel_hw, stride, padding, padding_mode)


def _swap(x: NDArray) -> NDArray:
    """The maps transposed (a view): the last two axes swapped."""
    return x.swapaxes(-1, -2)


# --- helpers ------------------------------------------------------------------------------
def _batched(x: NDArray) -> NDArray:
    return x[None] if x.ndim == 3 else x


def _check_conv_args(A, K) -> tuple[NDArray, NDArray, bool]:
    A = as_float_array(A, "A", ndims=(3, 4))
    K = as_float_array(K, "K", ndims=(4,))
    single = A.ndim == 3
    A = _batched(A)
    if A.shape[1] != K.shape[1]:
        raise ValueError(
            f"channel mismatch: A has {A.shape[1]} channels but K expects C_in = {K.shape[1]} "
            f"(K has shape {K.shape} = (C_out, C_in, h_k, w_k))"
        )
    return A, K, single


def _fold_wrap(X: NDArray, p: int, axis: int) -> NDArray:
    """Add the wrapped padding of length ``p`` on ``axis`` back onto the entries it copies
    (``p <= n``, the input size): the adjoint of ``np.pad(..., mode="wrap")``, in place.

    Returns ``X``, whose centre ``[p : p + n]`` along ``axis`` then holds the sums.
    """
    if p == 0:
        return X
    n = X.shape[axis] - 2 * p
    X = np.moveaxis(X, axis, 0)  # a view: writes land in the original
    X[n : p + n] += X[:p]  # leading padding copies the last p entries
    X[p : 2 * p] += X[p + n :]  # trailing padding copies the first p entries
    return np.moveaxis(X, 0, axis)


def _im2col(A: NDArray, kernel_hw, stride, padding, padding_mode: str = "zeros") -> NDArray:
    """The columns of the padded input, shape ``(C h_k w_k, N h_z w_z)``.

    Row ``(i, u, v)`` holds ``A_pad[n, i, x h_s + u, y w_s + v]`` for every ``(n, x, y)``:
    filled by one strided copy per kernel offset, whose inner axes stay contiguous (much
    faster than reshaping a 6-D sliding-window view).
    """
    hz, wz = conv_output_shape(A.shape[2:], kernel_hw, stride, padding)
    (hs, ws), (hp, wp), (hk, wk) = stride, padding, kernel_hw
    N, C = A.shape[:2]
    mode = "wrap" if padding_mode == "circular" else "constant"
    A_pad = np.pad(A, ((0, 0), (0, 0), (hp, hp), (wp, wp)), mode=mode) if hp or wp else A
    cols = np.empty((C, hk, wk, N, hz, wz), dtype=A.dtype)
    for u in range(hk):
        for v in range(wk):
            cols[:, u, v] = A_pad[:, :, u : u + hs * hz : hs, v : v + ws * wz : ws].transpose(
                1, 0, 2, 3)
    return cols.reshape(C * hk * wk, N * hz * wz)


def _check_upstream(dZ, A, K, stride, padding, single) -> NDArray:
    dZ = as_float_array(dZ, "dZ", ndims=(3,) if single else (4,))
    hz, wz = conv_output_shape(A.shape[2:], K.shape[2:], stride, padding)
    expected = (A.shape[0], K.shape[0], hz, wz)
    got = dZ.shape if not single else (1,) + dZ.shape
    if got != expected:
        expected = expected[1:] if single else expected
        raise ValueError(f"dZ has shape {dZ.shape}, expected {expected}")
    return dZ[None] if single else dZ
