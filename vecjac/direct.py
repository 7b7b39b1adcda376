"""The fast reference: direct convolution and its backward pass, vectorised.

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

This module knows nothing of Jacobians.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from scipy import special

from .vec import as_float_array, as_pair, conv_output_shape

__all__ = [
    "conv2d",
    "conv2d_backward",
    "kernel_gradient",
    "bias_gradient",
    "input_gradient",
    "dilate",
]


def conv2d(A: ArrayLike, K: ArrayLike, b: ArrayLike | None = None, stride=1, padding=0) -> NDArray:
    """``Z = A * K + b``: multi-channel cross-correlation, as section 2 of the note.

    Parameters
    ----------
    A : array_like, shape (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    K : array_like, shape (C_out, C_in, h_k, w_k)
        ``K[j, i]`` is the note's ``K_{j,i}``, channel i of kernel j.
    b : array_like, shape (C_out,), optional
    stride : int or (h_s, w_s)
    padding : int or (h_p, w_p)
        Zero padding on both sides of each spatial axis.

    Returns
    -------
    Z : ndarray, shape (C_out, h_z, w_z) or (N, C_out, h_z, w_z)
        ``h_z = floor((h_a + 2 h_p - h_k) / h_s) + 1``, likewise ``w_z``.
    """
    A, K, single = _check_conv_args(A, K)
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    cols = _im2col(A, K.shape[2:], stride, padding)  # (C_in h_k w_k, N h_z w_z)
    N, (hz, wz) = A.shape[0], conv_output_shape(A.shape[2:], K.shape[2:], stride, padding)
    Z = (K.reshape(K.shape[0], -1) @ cols).reshape(K.shape[0], N, hz, wz)  # one BLAS product
    Z = np.ascontiguousarray(Z.transpose(1, 0, 2, 3))
    if b is not None:
        b = as_float_array(b, "b", ndims=(1,))
        if b.shape[0] != K.shape[0]:
            raise ValueError(f"b has {b.shape[0]} entries but K has {K.shape[0]} kernels")
        Z += b[:, None, None]
    return Z[0] if single else Z


def conv2d_backward(
    dZ: ArrayLike, A: ArrayLike, K: ArrayLike, stride=1, padding=0, *, input_grad: bool = True
) -> tuple[NDArray | None, NDArray, NDArray]:
    """Ordinary back-propagation through :func:`conv2d`.

    Parameters
    ----------
    dZ : array_like, shape of ``conv2d(A, K)``
        The upstream gradient ``dL/dZ``.
    A, K, stride, padding : as for :func:`conv2d`
    input_grad : bool
        ``False`` skips ``dA`` (returned as ``None``): a network's first layer needs no
        gradient with respect to its input.

    Returns
    -------
    dA : ndarray, shape of A (or None)
    dK : ndarray, shape of K (summed over the batch)
    db : ndarray, shape (C_out,) (summed over the batch and the positions)
    """
    A, K, single = _check_conv_args(A, K)
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    dZ = _check_upstream(dZ, A, K, stride, padding, single)
    (hs, ws), (hp, wp) = stride, padding
    hk, wk = K.shape[2:]
    N, C_in, ha, wa = A.shape
    _, _, hz, wz = dZ.shape

    cols = _im2col(A, (hk, wk), stride, padding)  # (C_in h_k w_k, N h_z w_z)
    dZ_mat = dZ.transpose(1, 0, 2, 3).reshape(dZ.shape[1], -1)  # (C_out, N h_z w_z)
    dK = (dZ_mat @ cols.T).reshape(K.shape)
    db = dZ_mat.sum(axis=1)

    if not input_grad:
        return None, dK, db
    dcols = (K.reshape(K.shape[0], -1).T @ dZ_mat).reshape(C_in, hk, wk, N, hz, wz)
    dA_pad = np.zeros((N, C_in, ha + 2 * hp, wa + 2 * wp), dtype=dcols.dtype)
    for u in range(hk):  # col2im: one strided addition per kernel offset
        for v in range(wk):
            dA_pad[:, :, u : u + hs * hz : hs, v : v + ws * wz : ws] += dcols[:, u, v].transpose(
                1, 0, 2, 3)
    dA = dA_pad[:, :, hp : hp + ha, wp : wp + wa]
    return (dA[0] if single else np.ascontiguousarray(dA)), dK, db


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
            f"{stride} and padding {padding} gives outputs of shape ({X.shape[0]}, C_out, {hz}, {wz})"
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


def _im2col(A: NDArray, kernel_hw, stride, padding) -> NDArray:
    """The columns of the padded input, shape ``(C h_k w_k, N h_z w_z)``.

    Row ``(i, u, v)`` holds ``A_pad[n, i, x h_s + u, y w_s + v]`` for every ``(n, x, y)``:
    filled by one strided copy per kernel offset, whose inner axes stay contiguous (much
    faster than reshaping a 6-D sliding-window view).
    """
    hz, wz = conv_output_shape(A.shape[2:], kernel_hw, stride, padding)
    (hs, ws), (hp, wp), (hk, wk) = stride, padding, kernel_hw
    N, C = A.shape[:2]
    A_pad = np.pad(A, ((0, 0), (0, 0), (hp, hp), (wp, wp))) if hp or wp else A
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
        raise ValueError(f"dZ has shape {dZ.shape}, expected {expected[1:] if single else expected}")
    return dZ[None] if single else dZ


# ==========================================================================================
# Pooling (section 3.1.3), activations (3.1.4), the fully-connected layer (3.1.1), losses.
#
# Pooling works channel by channel: A_j = f_pool(I_j).  Average pooling is, literally as the
# note builds it, the convolution A_j = I_j * P with the constant kernel P = 1/(h_l w_l) and
# the pool's own padding and stride (zeros of the padding count in the mean).  Max pooling
# keeps the note's "switches" (the window entry of each maximum); padding acts as -inf.
# L2-norm pooling is A = sqrt(I^2 * 1), so dA_xy/dI_pq = I_pq / A_xy (0 where A_xy = 0).
# The direct path sums (or maximises) the h_l w_l strided views of the padded input, one per
# window offset, and adds windows back the same way (col2im), as conv2d_backward does.
#
# The FC part uses the note's layout, features x samples: one sample is a vector (n,), a
# batch a matrix (n, N) whose columns are samples, so Z3 = W3^T B2 + b3 holds as written.
# ==========================================================================================
POOL_KINDS = ("avg", "max", "l2")
TIE_RULES = ("first", "split")
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity", "softmax")
LOSSES = ("squared_error", "binary_cross_entropy", "cross_entropy")
LOGIT_LOSSES = ("cross_entropy", "binary_cross_entropy")
REDUCTIONS = ("sum", "mean")

__all__ += [
    "POOL_KINDS",
    "TIE_RULES",
    "ACTIVATIONS",
    "LOSSES",
    "REDUCTIONS",
    "PoolArgs",
    "check_pool_args",
    "pool2d",
    "pool2d_backward",
    "max_pool_switches",
    "max_pool_shares",
    "activate",
    "activate_backward",
    "activation_derivative",
    "dense",
    "dense_backward",
    "as_targets",
    "loss",
    "loss_backward",
    "loss_from_logits",
]


class PoolArgs(NamedTuple):
    """Validated pooling arguments: every pair normalised, the output shape computed."""

    kind: str
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ties: str
    output_shape: tuple[int, ...]

    @property
    def geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(size, stride, padding)``, the positional arguments after ``kind``."""
        return self.size, self.stride, self.padding


def check_pool_args(
    input_shape, kind: str = "avg", size=2, stride=None, padding=0, ties: str = "first"
) -> PoolArgs:
    """Validate pooling arguments against an input shape, before anything is allocated.

    Parameters
    ----------
    input_shape : (C, h_z, w_z) or (N, C, h_z, w_z)
        The shape of ``I`` (the note calls the pooled map's size ``h_z x w_z``).
    kind : {"avg", "max", "l2"}
    size : int or (h_l, w_l)
        The pooling window ``P``.
    stride : int or pair, optional
        ``None`` (default) means the window size: non-overlapping windows.
    padding : int or pair
        At most half the window for max pooling (every window must hold an input entry).
    ties : {"first", "split"}
        Tie rule of max pooling (ignored by the other kinds).

    Returns
    -------
    PoolArgs
        ``output_shape`` is ``(C, h_a, w_a)`` or ``(N, C, h_a, w_a)`` with
        ``h_a = floor((h_z + 2 h_p - h_l) / h_s) + 1``.
    """
    _check_choice(kind, "kind", POOL_KINDS)
    _check_choice(ties, "ties", TIE_RULES)
    size = as_pair(size, "size", 1)
    stride = size if stride is None else as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    if kind == "max" and (padding[0] > size[0] // 2 or padding[1] > size[1] // 2):
        raise ValueError(
            f"padding {padding} is larger than half the pool size {size}: max pooling "
            "needs padding <= size // 2 so that every window holds an input entry"
        )
    input_shape = tuple(int(s) for s in input_shape)
    hw = conv_output_shape(input_shape[-2:], size, stride, padding, name="pool size")
    return PoolArgs(kind, size, stride, padding, ties, input_shape[:-2] + hw)


def pool2d(I: ArrayLike, kind: str = "avg", size=2, stride=None, padding=0) -> NDArray:
    """``A_j = f_pool(I_j)`` for every channel (and sample), as section 2 of the note.

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
    kind : {"avg", "max", "l2"}
        ``"avg"``: ``I_j * P`` with ``P = 1/(h_l w_l)`` (padding zeros count in the mean);
        ``"max"``: window maximum, padding acting as -inf;
        ``"l2"``: ``sqrt`` of the window's sum of squares (padding zeros add nothing).
        Computed as sums (maxima) of the ``h_l w_l`` strided views of the padded input, one
        per window offset; equal to :func:`conv2d` with ``P`` for every channel (tested).
    size, stride, padding : see :func:`check_pool_args`

    Returns
    -------
    A : ndarray, shape (C, h_a, w_a) or (N, C, h_a, w_a)
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, kind, size, stride, padding)
    if args.kind == "max":
        return _window_max(I, args)
    if args.kind == "avg":
        return _window_sum(I, args) / (args.size[0] * args.size[1])
    return np.sqrt(_window_sum(I * I, args))


def pool2d_backward(
    dA: ArrayLike,
    I: ArrayLike,
    kind: str = "avg",
    size=2,
    stride=None,
    padding=0,
    ties: str = "first",
) -> NDArray:
    """Back-propagate ``dA = dL/dA`` through :func:`pool2d`: returns ``dI = dL/dI``.

    Every window ``(x, y)`` sends ``dA_xy`` back to its entries with the weights
    ``dA_xy/dI_pq``: ``1/(h_l w_l)`` (avg), the switches (max), ``I_pq / A_xy`` (l2, 0 where
    ``A_xy = 0``); overlapping windows add up.

    Parameters
    ----------
    dA : array_like, shape of ``pool2d(I, ...)``
    I, kind, size, stride, padding : as :func:`pool2d`
    ties : {"first", "split"}
        Max pooling only; see :func:`max_pool_shares`.

    Returns
    -------
    dI : ndarray, shape of I
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, kind, size, stride, padding, ties)
    dA = as_float_array(dA, "dA", ndims=(I.ndim,))
    if dA.shape != args.output_shape:
        raise ValueError(f"dA has shape {dA.shape}, the pooled output {args.output_shape}")
    return _col2im(_window_derivatives(dA, I, args), I.shape, args)


def max_pool_switches(I: ArrayLike, size=2, stride=None, padding=0) -> NDArray:
    """The note's switches: where in each window the (first) maximum sits.

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
    size, stride, padding : see :func:`check_pool_args` (padding acts as -inf)

    Returns
    -------
    k : ndarray of int8 (int32 for windows of more than 127 entries),
        shape (C, h_a, w_a) or (N, C, h_a, w_a)
        ``k = u w_l + v`` for the window offset ``(u, v)`` of the first maximal entry in
        row-major window order.
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    return _switches(I, check_pool_args(I.shape, "max", size, stride, padding))


def max_pool_shares(
    I: ArrayLike, size=2, stride=None, padding=0, ties: str = "first"
) -> NDArray:
    """``dA_xy / dI_pad[x h_s + u, y w_s + v]`` of max pooling, for every window entry.

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
    size, stride, padding : see :func:`check_pool_args`
    ties : {"first", "split"}
        ``"first"`` (default): the whole derivative goes to the first maximal entry in
        row-major window order, which is what ``torch.nn.functional.max_pool2d`` records as
        its index.  ``"split"``: ``1/t`` to each of the ``t`` tied maximal entries, a valid
        subgradient, which is how ``torch.amax`` and ``jax.numpy.max`` differentiate a
        maximum ("evenly distribute gradient between equal values").

    Returns
    -------
    shares : ndarray, shape (C, h_a, w_a, h_l, w_l) or (N, C, h_a, w_a, h_l, w_l)
        Each window's shares sum to 1; padding entries get 0.
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, "max", size, stride, padding, ties)
    h_l, w_l = args.size
    if args.ties == "first":
        k = _switches(I, args)
        return (k[..., None] == np.arange(h_l * w_l)).reshape(k.shape + args.size).astype(I.dtype)
    windows = _pool_windows(I, args, -np.inf)
    tied = windows == _window_max(I, args)[..., None, None]
    return (tied / tied.sum(axis=(-2, -1), keepdims=True)).astype(I.dtype)


# --- activations (section 3.1.4) ----------------------------------------------------------
def activate(Z: ArrayLike, kind: str, *, negative_slope: float = 0.01) -> NDArray:
    """``I = f_activation(Z)``, element-wise, or softmax over the features axis.

    Parameters
    ----------
    Z : array_like, any shape for the element-wise kinds; (n,) or (n, N) for softmax
    kind : {"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity", "softmax"}
        ``softplus(z) = log(1 + e^z)`` via ``logaddexp``; ``sigmoid`` via
        ``scipy.special.expit``; ``softmax`` stable (``scipy.special.softmax``), over axis 0
        (the features of the FC layout ``(n, N)``).
    negative_slope : float
        Slope of ``leaky_relu`` for ``z <= 0`` (default 0.01).

    Returns
    -------
    I : ndarray, shape of Z
        Finite for every finite ``Z`` (inputs of magnitude 1000 included), with no warning.
    """
    Z = _activation_input(Z, kind)
    if kind == "softmax":
        return special.softmax(Z, axis=0)
    if kind == "sigmoid":
        return special.expit(Z)
    if kind == "tanh":
        return np.tanh(Z)
    if kind == "relu":
        return np.maximum(Z, 0)
    if kind == "leaky_relu":
        return np.where(Z > 0, Z, Z * Z.dtype.type(negative_slope))
    if kind == "softplus":
        return np.logaddexp(Z.dtype.type(0), Z)
    return Z.copy()


def activation_derivative(
    Z: ArrayLike, kind: str, *, negative_slope: float = 0.01, out: NDArray | None = None
) -> NDArray:
    """``f'(Z)`` of an element-wise activation: the diagonal of ``d vecI / d vecZ``.

    ``sigmoid' = s (1 - s)`` and ``tanh' = 1 - tanh^2`` are computed as
    ``1 / (4 cosh^2(z/2))`` and ``1 / cosh^2(z)``: relatively accurate in both tails (no
    cancellation), in one buffer.  ReLU's derivative is ``[z > 0]`` (0 at 0); leaky ReLU's
    ``negative_slope`` for ``z <= 0``; ``softplus' = sigmoid`` (``expit``).
    Softmax is not element-wise and is refused (use :func:`activate_backward` or
    :func:`vecjac.jacobians.activation`).

    Parameters
    ----------
    Z : array_like, any shape
    kind : str
    negative_slope : float
    out : ndarray, optional
        A float array of Z's shape to write into (``Z`` itself is allowed).

    Returns
    -------
    ndarray, shape of Z
    """
    Z = _activation_input(Z, kind)
    if kind == "softmax":
        raise ValueError("kind 'softmax' is not element-wise: it has no diagonal derivative")
    if out is None:
        out = np.empty_like(Z)
    elif out.shape != Z.shape or out.dtype.kind != "f":
        raise ValueError(f"out must be a float array of shape {Z.shape}, got {out.shape}")
    if kind == "sigmoid":
        np.multiply(Z, 0.5, out=out)
        with np.errstate(over="ignore"):  # cosh overflows to inf for |z| > 1420: f' = 0
            np.cosh(out, out=out)
            np.multiply(out, out, out=out)
        return np.divide(0.25, out, out=out)
    if kind == "tanh":
        with np.errstate(over="ignore"):  # cosh overflows to inf for |z| > 710: f' = 0
            np.cosh(Z, out=out)
            np.multiply(out, out, out=out)
        return np.divide(1, out, out=out)
    if kind in ("relu", "leaky_relu"):
        np.greater(Z, 0, out=out)
        if kind == "leaky_relu":
            out *= 1 - negative_slope
            out += negative_slope
        return out
    if kind == "softplus":
        return special.expit(Z, out=out)
    out[...] = 1
    return out


def activate_backward(
    dI: ArrayLike, Z: ArrayLike, kind: str, *, negative_slope: float = 0.01
) -> NDArray:
    """Back-propagate ``dI = dL/dI`` through :func:`activate`: returns ``dZ = dL/dZ``.

    Element-wise kinds: ``dZ = f'(Z) dI``.  Softmax, per sample ``s``:
    ``dZ = s (dI - s^T dI)``, i.e. ``(diag(s) - s s^T) dI``.
    """
    Z = _activation_input(Z, kind)
    dI = as_float_array(dI, "dI")
    if dI.shape != Z.shape:
        raise ValueError(f"dI has shape {dI.shape}, Z has shape {Z.shape}; they must be equal")
    if kind == "softmax":
        s = special.softmax(Z, axis=0)
        return s * (dI - (s * dI).sum(axis=0))
    return activation_derivative(Z, kind, negative_slope=negative_slope) * dI


# --- the fully-connected layer (section 3.1.1) --------------------------------------------
def dense(B: ArrayLike, W: ArrayLike, b: ArrayLike | None = None) -> NDArray:
    """``Z3 = W3^T B2 + b3``, features x samples.

    Parameters
    ----------
    B : array_like, shape (n_in,) or (n_in, N)
        One sample, or a batch whose columns are samples.
    W : array_like, shape (n_in, n_out)
    b : array_like, shape (n_out,), optional
        Added to every column.

    Returns
    -------
    Z : ndarray, shape (n_out,) or (n_out, N)
    """
    B, W = _check_dense_args(B, W)
    Z = W.T @ B
    if b is not None:
        b = as_float_array(b, "b", ndims=(1,))
        if b.shape != (W.shape[1],):
            raise ValueError(f"b has shape {b.shape}, expected (n_out,) = ({W.shape[1]},)")
        Z += b if B.ndim == 1 else b[:, None]
    return Z


def dense_backward(
    dZ: ArrayLike, B: ArrayLike, W: ArrayLike
) -> tuple[NDArray, NDArray, NDArray]:
    """Back-propagate ``dZ = dL/dZ3`` through :func:`dense`.

    The note's section 3.1.1, as gradients: ``dB = W dZ``, ``dW = B dZ^T``, ``db = dZ 1``
    (sums over the batch's columns).

    Returns
    -------
    dB : ndarray, shape of B
    dW : ndarray, shape (n_in, n_out)
    db : ndarray, shape (n_out,)
    """
    B, W = _check_dense_args(B, W)
    dZ = as_float_array(dZ, "dZ", ndims=(B.ndim,))
    expected = (W.shape[1],) + B.shape[1:]
    if dZ.shape != expected:
        raise ValueError(f"dZ has shape {dZ.shape}, expected (n_out[, N]) = {expected}")
    dW = np.outer(B, dZ) if B.ndim == 1 else B @ dZ.T
    db = dZ.copy() if B.ndim == 1 else dZ.sum(axis=1)
    return W @ dZ, dW, db


# --- losses -------------------------------------------------------------------------------
_LOG_FLOOR = np.exp(-100.0)  # log is clamped at -100, as torch.nn.BCELoss does
_DENOMINATOR_FLOOR = 1e-12  # and so are the derivative's denominators


def as_targets(y: ArrayLike, shape: tuple[int, ...]) -> NDArray:
    """Targets of the prediction's ``shape`` ``(n_out,)`` or ``(n_out, N)`` from labels.

    * integer class indices of shape ``(N,)`` (or a scalar for one sample): one-hot columns
      when ``n_out > 1``; when ``n_out == 1`` they are the 0/1 targets themselves;
    * any array of ``shape`` (float targets, one-hot, 0/1): used as it is.

    Raises
    ------
    ValueError
        Shape mismatch, or class indices outside ``[0, n_out)`` (``[0, 1]`` for one output).
    TypeError
        Non-numeric labels.
    """
    shape = tuple(int(s) for s in shape)
    y_raw = np.asarray(y)
    if y_raw.shape == shape:
        return as_float_array(y_raw, "y")
    if y_raw.dtype.kind not in "biu":
        raise ValueError(
            f"y has shape {y_raw.shape} but A3 has shape {shape}: targets must have A3's "
            f"shape, or be integer class indices of shape {shape[1:]}"
        )
    if y_raw.shape != shape[1:]:
        raise ValueError(
            f"y has shape {y_raw.shape}: class indices for A3 of shape {shape} must have "
            f"shape {shape[1:]} (one per sample)"
        )
    n_out = shape[0]
    high = max(n_out - 1, 1)
    if y_raw.size and (y_raw.min() < 0 or y_raw.max() > high):
        raise ValueError(f"y holds labels outside [0, {high}] (n_out = {n_out})")
    if n_out == 1:
        return y_raw.astype(np.float64).reshape(shape)
    return (np.arange(n_out).reshape((n_out,) + (1,) * y_raw.ndim) == y_raw).astype(np.float64)


def loss(A3: ArrayLike, y: ArrayLike, kind: str = "squared_error", reduction: str = "sum") -> float:
    """The scalar loss ``J`` of the prediction ``A3`` against the labels ``y``.

    Parameters
    ----------
    A3 : array_like, shape (n_out,) or (n_out, N)
        Predictions, features x samples; probabilities for the cross-entropies.
    y : array_like
        See :func:`as_targets`.
    kind : {"squared_error", "binary_cross_entropy", "cross_entropy"}
        ``E = sum (y - O)^2 / 2`` (the slides, seed 001);
        ``-sum [y log O + (1 - y) log(1 - O)]``; ``-sum y log O`` (after a softmax).
        Logs are clamped at -100, as ``torch.nn.BCELoss`` does, so ``J`` is finite.
    reduction : {"sum", "mean"}
        ``"sum"`` over everything (default, as the slides); ``"mean"`` divides by ``N``.

    Returns
    -------
    J : float
    """
    A3, Y, kind, scale = _loss_args(A3, y, kind, reduction)
    if kind == "squared_error":
        return float(scale * 0.5 * np.sum((Y - A3) ** 2))
    log_p = np.log(np.maximum(A3, _LOG_FLOOR))
    if kind == "cross_entropy":
        return float(-scale * np.sum(Y * log_p))
    log_q = np.log(np.maximum(1 - A3, _LOG_FLOOR))
    return float(-scale * np.sum(Y * log_p + (1 - Y) * log_q))


def loss_backward(
    A3: ArrayLike, y: ArrayLike, kind: str = "squared_error", reduction: str = "sum"
) -> NDArray:
    """``dJ/dA3`` of :func:`loss`, in ``A3``'s shape (the transpose of the note's row).

    ``O - y``; ``(O - y) / (O (1 - O))``; ``-y / O`` (denominators floored at 1e-12, as
    ``torch.nn.BCELoss``), times ``1/N`` for ``reduction="mean"``.
    """
    A3, Y, kind, scale = _loss_args(A3, y, kind, reduction)
    if kind == "squared_error":
        return scale * (A3 - Y)
    if kind == "cross_entropy":
        return -scale * Y / np.maximum(A3, _DENOMINATOR_FLOOR)
    return scale * (A3 - Y) / np.maximum(A3 * (1 - A3), _DENOMINATOR_FLOOR)


def loss_from_logits(
    Z3: ArrayLike, y: ArrayLike, kind: str = "cross_entropy", reduction: str = "sum"
) -> tuple[float, NDArray]:
    """Output activation and loss fused, from the logits ``Z3``: returns ``(J, dJ/dZ3)``.

    ``"cross_entropy"``: ``A3 = softmax(Z3)`` then cross-entropy, ``J = -sum y log_softmax(Z3)``
    and ``dJ/dZ3 = s (1^T y) - y`` per sample (``s - y`` for one-hot ``y``).
    ``"binary_cross_entropy"``: ``A3 = sigmoid(Z3)`` then BCE,
    ``J = sum [log(1 + e^z) - y z]`` and ``dJ/dZ3 = sigmoid(z) - y``.
    Both are exact for any finite ``Z3`` (no clamping) and equal the unfused chain
    ``dJ/dA3 dA3/dZ3`` wherever the unfused logs are not clamped.

    Returns
    -------
    J : float
    dJ_dZ3 : ndarray, shape of Z3
    """
    _check_choice(kind, "kind", LOGIT_LOSSES)
    Z3, Y, kind, scale = _loss_args(Z3, y, kind, reduction, name="Z3")
    if kind == "cross_entropy":
        J = -np.sum(Y * special.log_softmax(Z3, axis=0))
        dZ = special.softmax(Z3, axis=0) * Y.sum(axis=0) - Y
    else:
        J = np.sum(np.logaddexp(0, Z3) - Y * Z3)
        dZ = special.expit(Z3) - Y
    return float(scale * J), scale * dZ


# --- helpers of the layers above -----------------------------------------------------------
def _check_choice(value, name: str, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid {name}s are {valid}")


def _pool_windows(I: NDArray, args: PoolArgs, fill: float) -> NDArray:
    """Strided view of the windows of the padded input: shape (..., h_a, w_a, h_l, w_l)."""
    (h_s, w_s), (h_p, w_p) = args.stride, args.padding
    pad = ((0, 0),) * (I.ndim - 2) + ((h_p, h_p), (w_p, w_p))
    I_pad = np.pad(I, pad, constant_values=fill) if h_p or w_p else I
    return sliding_window_view(I_pad, args.size, axis=(-2, -1))[..., ::h_s, ::w_s, :, :]


def _offset_views(I: NDArray, args: PoolArgs, fill: float):
    """For every window offset ``(u, v)`` in row-major order, the strided view of the entries
    ``I_pad[x h_s + u, y w_s + v]`` over all windows ``(x, y)``: shape (..., h_a, w_a)."""
    (h_l, w_l), (h_s, w_s), (h_p, w_p) = args.size, args.stride, args.padding
    h_a, w_a = args.output_shape[-2:]
    pad = ((0, 0),) * (I.ndim - 2) + ((h_p, h_p), (w_p, w_p))
    I_pad = np.pad(I, pad, constant_values=fill) if h_p or w_p else I
    for u in range(h_l):
        for v in range(w_l):
            yield I_pad[..., u : u + h_s * (h_a - 1) + 1 : h_s, v : v + w_s * (w_a - 1) + 1 : w_s]


def _window_sum(I: NDArray, args: PoolArgs) -> NDArray:
    """``I_pad * 1``: the sum over every window, the all-ones kernel's convolution."""
    views = _offset_views(I, args, 0.0)
    total = next(views).copy()
    for window in views:
        total += window
    return total


def _window_max(I: NDArray, args: PoolArgs) -> NDArray:
    views = _offset_views(I, args, -np.inf)
    A = next(views).copy()
    for window in views:
        np.maximum(A, window, out=A)
    return A


def _switches(I: NDArray, args: PoolArgs) -> NDArray:
    """:func:`max_pool_switches` on validated arguments."""
    A = _window_max(I, args)
    views = _offset_views(I, args, -np.inf)
    found = next(views) == A
    switches = np.zeros(A.shape, dtype=np.int8 if np.prod(args.size) < 128 else np.int32)
    for k, window in enumerate(views, start=1):
        first = window == A
        first &= ~found  # a maximum earlier in row-major window order keeps the switch
        found |= first
        switches += first * switches.dtype.type(k)
    return switches


def _window_derivatives(dA: NDArray, I: NDArray, args: PoolArgs):
    """For every window offset ``(u, v)``, row-major: ``dA_xy dA_xy/dI_pad[x h_s+u, y w_s+v]``
    over all windows ``(x, y)``, shape (..., h_a, w_a)."""
    n_offsets = args.size[0] * args.size[1]
    if args.kind == "avg":
        share = dA / n_offsets  # P's entry
        return (share for _ in range(n_offsets))
    if args.kind == "l2":
        A = np.sqrt(_window_sum(I * I, args))
        G = np.divide(dA, A, out=np.zeros_like(A), where=A > 0)  # 0 where A_xy = 0
        return (window * G for window in _offset_views(I, args, 0.0))
    if args.ties == "first":
        switches = _switches(I, args)
        return (dA * (switches == k) for k in range(n_offsets))
    A = _window_max(I, args)
    tied = [window == A for window in _offset_views(I, args, -np.inf)]
    share = dA / sum(tied)  # every window holds at least one maximum
    return (share * t for t in tied)


def _col2im(contributions, input_shape, args: PoolArgs) -> NDArray:
    """Add each window offset's ``(..., h_a, w_a)`` contribution back onto the input."""
    (h_l, w_l), (h_s, w_s), (h_p, w_p) = args.size, args.stride, args.padding
    h_a, w_a = args.output_shape[-2:]
    H, W = input_shape[-2:]
    d_pad = None
    for (u, v), contribution in zip(np.ndindex(h_l, w_l), contributions, strict=True):
        if d_pad is None:
            shape = tuple(input_shape[:-2]) + (H + 2 * h_p, W + 2 * w_p)
            d_pad = np.zeros(shape, dtype=contribution.dtype)
        d_pad[..., u : u + h_s * h_a : h_s, v : v + w_s * w_a : w_s] += contribution
    return np.ascontiguousarray(d_pad[..., h_p : h_p + H, w_p : w_p + W])


def _activation_input(Z, kind: str) -> NDArray:
    _check_choice(kind, "kind", ACTIVATIONS)
    Z = as_float_array(Z, "Z")
    if kind == "softmax" and Z.ndim not in (1, 2):
        raise ValueError(
            f"softmax needs the FC layout: Z of shape (n,) or (n, N), got shape {Z.shape}"
        )
    return Z


def _check_dense_args(B, W) -> tuple[NDArray, NDArray]:
    B = as_float_array(B, "B", ndims=(1, 2))
    W = as_float_array(W, "W", ndims=(2,))
    if B.shape[0] != W.shape[0]:
        raise ValueError(
            f"B has {B.shape[0]} features (rows) but W has shape {W.shape} = (n_in, n_out); "
            "B must be (n_in,) or (n_in, N)"
        )
    return B, W


def _loss_args(A3, y, kind, reduction, name: str = "A3"):
    _check_choice(kind, "kind", LOSSES)
    _check_choice(reduction, "reduction", REDUCTIONS)
    A3 = as_float_array(A3, name, ndims=(1, 2))
    Y = as_targets(y, A3.shape)
    if name == "A3" and kind != "squared_error" and (A3.min() < 0 or A3.max() > 1):
        raise ValueError(
            f"A3 must hold probabilities in [0, 1] for kind {kind!r} (apply the output "
            "activation first, or use loss_from_logits)"
        )
    n_samples = A3.shape[1] if A3.ndim == 2 else 1
    scale = 1.0 / n_samples if reduction == "mean" else 1.0
    return A3, Y.astype(A3.dtype, copy=False), kind, scale
