r"""Jacobians of a convolution layer: the note's section 3.1.5 and appendix (section 4).

The layer is ``Z_j = sum_i A_i * K_{j,i} + b_j 1`` (section 2), ``*`` the cross-correlation
with padding ``(h_p, w_p)`` and stride ``(h_s, w_s)``.  Element by element, 0-based,

    Z[j, x, y] = sum_{i,u,v} A_pad[i, x h_s + u, y w_s + v] K[j, i, u, v] + b[j].

Section 3.1.5 then reads, column by column (one column per entry of the variable):

    d vecZ_j / d vecK_{j,i} = [ vec(A_i * dK_{j,i}/dK_{j,i,pq}) ]_{pq}   (h_z w_z x h_k w_k)
    d vecZ_j / d vecA_i     = [ vec(dA_i/dA_{i,pq} * K_{j,i}) ]_{pq}     (h_z w_z x h_a w_a)
    d vecZ_j / d b_j        = 1_(h_z w_z, 1)

The first depends only on ``A_i`` (it is the same for every ``j``), the second only on
``K_{j,i}``.  Both matrices have the same sparsity structure, read from the formula above:
row ``(j, x, y)`` meets entry ``(i, u, v)`` whenever ``r = x h_s + u - h_p`` and
``s = y w_s + v - w_p`` fall inside the input.  For that entry

* ``dZ/dA`` has column ``vec-index of A[i, r, s]`` and value ``K[j, i, u, v]``;
* ``dZ/dK`` has column ``vec-index of K[j, i, u, v]`` and value ``A[i, r, s]``.

So one *pattern* (``indptr`` and the two index arrays ``a_index``, ``k_index``) serves both:
each Jacobian takes one array as its column indices and the other as its *gather map*,
``data = vec(source)[gather]``.  Patterns depend only on shapes, stride and padding, are
built with numpy broadcasting directly in CSR row order (no COO sort), and are cached; a
second build with new values is one gather.

Circular padding (``padding_mode="circular"``, PyTorch's ``Conv2d(padding_mode="circular")``)
wraps the input positions: ``r = (x h_s + u - h_p) mod h_a``, so every ``(i, u, v)`` is an
entry of every row.  Two kernel offsets of one row would meet the same input entry (a
duplicate column of ``dZ/dA``, whose value would be the sum of two kernel entries) only if
the kernel were larger than the input; the builders refuse that case (``h_k <= h_a`` and
``w_k <= w_a``), so every row's columns stay distinct and ``dZ/dA`` and ``dZ/dK`` still
share one pattern.  The gather map also labels every entry with the
symbol it copies (``a_32``, ``beta_12``), which is how ``vecjac explain`` prints the appendix.

Stacked forms (docs/design.md, section 2): for one sample ``dZ/dA`` is the
``C_out x C_in`` grid of the blocks ``d vecZ_j / d vecA_i``, and ``dZ/dK`` is block diagonal
over kernels, ``I_{C_out} (x) [d vecZ_j/d vecK_{j,1} ... d vecZ_j/d vecK_{j,C_in}]``.  For a
batch, ``dZ/dA`` is block diagonal over samples and ``dZ/dK`` stacks the samples' rows
(``K`` is shared).

References: the note, sections 2, 3.1.5, 3.1.6 and 4 (appendix).
"""

from __future__ import annotations

import math
from functools import cached_property, lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..budget import check_budget, check_csr_budget, csr_nbytes, get_memory_budget, index_dtype
from ..direct.conv import (
    _columns,
    _input_grad,
    _kernel_grad_from_rows,
    _kernel_grad_per_sample,
    _per_sample_products,
    vec_layout,
)
from ..jacobian import Jacobian
from ..paths import clear_plans
from ..structure import Kron, KronRows, Lazy, Tile
from ..vec import as_float_array, as_pair, as_shape, check_padding_mode, conv_output_shape, vec
from ._csr import assemble_csr

__all__ = [
    "ConvPattern",
    "conv_pattern",
    "conv_wrt_input",
    "conv_wrt_kernel",
    "conv_wrt_bias",
    "conv_block_wrt_input",
    "conv_block_wrt_kernel",
    "clear_pattern_cache",
]


class ConvPattern:
    """Sparsity pattern of a convolution's Jacobians, shared by ``dZ/dA`` and ``dZ/dK``.

    Rows are ``vec(Z)`` positions, ordered ``(n, j, y, x)``; the entries of a row are the
    ``(i, v, u)`` kernel offsets whose input position lies inside the input.  Every output
    channel ``j`` and sample ``n`` repeats the row structure of one channel of one sample,
    so the pattern stores that structure (``a_local``, ``k_local``) and expands the full
    index arrays only when first asked for (a ``dZ/dA`` build needs ``a_index``, a ``dZ/dK``
    build ``k_index``).  Every array is read-only.

    Attributes
    ----------
    indptr : ndarray, shape (N*C_out*h_z*w_z + 1,)
        CSR row pointers.
    a_local, k_local : ndarray of intp, shape (nnz / (N C_out),)
        For the rows of one output channel of one sample: the ``vec(A_n)`` position of the
        input entry and the ``vec(K_j)`` position of the kernel entry each stored entry
        involves.  Values are gathered through these short maps (about three times faster
        than through the full ones).
    a_index : ndarray, shape (nnz,)
        ``vec(A)`` position of each stored entry's input entry: the column in ``dZ/dA``,
        the gather map of ``dZ/dK``.
    k_index : ndarray, shape (nnz,)
        ``vec(K)`` position of each stored entry's kernel entry: the column in ``dZ/dK``,
        the gather map of ``dZ/dA``.
    input_shape, kernel_shape, output_shape : tuple of int
        With a leading ``N`` in ``input_shape`` and ``output_shape`` for a batch.
    """

    def __init__(self, indptr, a_local, k_local, input_shape, kernel_shape, output_shape):
        self.indptr, self.a_local, self.k_local = _read_only(indptr, a_local, k_local)
        self.input_shape, self.kernel_shape = input_shape, kernel_shape
        self.output_shape = output_shape
        self.n_samples = input_shape[0] if len(input_shape) == 4 else 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @cached_property
    def a_index(self) -> NDArray:
        """``a_local`` + the sample's offset, repeated for every output channel."""
        c_out, a_size = self.kernel_shape[0], int(np.prod(self.input_shape[-3:]))
        offsets = np.arange(self.n_samples, dtype=self.indptr.dtype)[:, None, None] * a_size
        local = self.a_local.astype(self.indptr.dtype)[None, None, :]
        index = np.broadcast_to(local + offsets, (self.n_samples, c_out, local.size)).ravel()
        return _read_only(index)[0]

    @cached_property
    def k_index(self) -> NDArray:
        """``k_local`` + kernel ``j``'s offset, the same for every sample."""
        c_out, k_size = self.kernel_shape[0], int(np.prod(self.kernel_shape[1:]))
        offsets = np.arange(c_out, dtype=self.indptr.dtype)[:, None] * k_size
        per_sample = self.k_local.astype(self.indptr.dtype)[None, :] + offsets
        index = np.broadcast_to(per_sample, (self.n_samples,) + per_sample.shape).ravel()
        return _read_only(index)[0]


def conv_pattern(
    input_shape, kernel_shape, stride=1, padding=0, *, max_bytes: int | None = None,
    padding_mode: str = "zeros",
) -> ConvPattern:
    """The (cached) sparsity pattern of a convolution's Jacobians.

    Parameters
    ----------
    input_shape : (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    kernel_shape : (C_out, C_in, h_k, w_k)
    stride, padding : int or pair
    padding_mode : {"zeros", "circular"}

    Returns
    -------
    ConvPattern
        Its arrays are read-only: they are shared by every Jacobian built from the cache.
    """
    return _checked_pattern(input_shape, kernel_shape, stride, padding, np.float64, max_bytes,
                            padding_mode)


def conv_nnz(input_shape, kernel_shape, stride=1, padding=0, padding_mode: str = "zeros") -> int:
    """Exact number of stored entries of ``dZ/dA`` (and of ``dZ/dK``), from shapes alone."""
    input_shape, kernel_shape, stride, padding = _normalise(
        input_shape, kernel_shape, stride, padding, padding_mode
    )
    return _nnz(input_shape, kernel_shape, stride, padding, padding_mode)


def conv_wrt_input(
    K: ArrayLike,
    input_shape,
    stride=1,
    padding=0,
    *,
    of: str = "Z",
    wrt: str = "A",
    max_bytes: int | None = None,
    structured: bool = True,
    padding_mode: str = "zeros",
) -> Jacobian:
    """``d vecZ / d vecA`` of ``Z = A * K + b``, stacked over channels (and samples).

    Parameters
    ----------
    K : array_like, shape (C_out, C_in, h_k, w_k)
    input_shape : (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    stride, padding : int or pair
    padding_mode : {"zeros", "circular"}
        As :func:`vecjac.direct.conv2d`.  With ``"circular"`` the padding must not exceed
        the input size and the kernel must fit in the input (``h_k <= h_a``, ``w_k <= w_a``).
    of, wrt : str
        Names of ``Z`` and ``A`` in the note's symbols (``"Z2"``, ``"A1"``).
    max_bytes : int, optional
        Memory budget for this call (default: :func:`vecjac.get_memory_budget`).

    Returns
    -------
    J : Jacobian, shape (C_out h_z w_z, C_in h_a w_a), or ``N`` times each for a batch
        Block ``(j, i)`` is the note's ``d vecZ_j / d vecA_i``; its entries are entries of
        ``K_{j,i}``.  For a batch the matrix is block diagonal over samples with the same
        block for every sample: stored as ``I_N (x) M`` (``structured=True``, the default;
        the memory budget counts ``M``), or flat (``structured=False``).
    """
    K = as_float_array(K, "K", ndims=(4,))
    shape = as_shape(input_shape, "input_shape")
    if structured and len(shape) == 4:
        return _structured_wrt_input(K, shape, stride, padding, of, wrt, max_bytes, padding_mode)
    pattern = _checked_pattern(input_shape, K.shape, stride, padding, K.dtype, max_bytes,
                               padding_mode)
    n_samples = pattern.input_shape[0] if len(pattern.input_shape) == 4 else 1
    data = np.take(vec(K).reshape(K.shape[0], -1), pattern.k_local, axis=1).ravel()
    if n_samples > 1:  # dZ/dA of a batch repeats K in every diagonal block
        data = _repeat(data, n_samples)
    return _jacobian(data, pattern.a_index, pattern, pattern.input_shape, of, wrt)


def conv_wrt_kernel(
    A: ArrayLike,
    kernel_shape,
    stride=1,
    padding=0,
    *,
    of: str = "Z",
    wrt: str = "K",
    max_bytes: int | None = None,
    structured: bool = True,
    padding_mode: str = "zeros",
    cols: NDArray | None = None,
) -> Jacobian:
    """``d vecZ / d vecK`` of ``Z = A * K + b``, stacked over kernels (and samples).

    Parameters
    ----------
    A : array_like, shape (C_in, h_a, w_a) or (N, C_in, h_a, w_a)
    kernel_shape : (C_out, C_in, h_k, w_k)
    stride, padding, of, wrt, max_bytes, padding_mode : as :func:`conv_wrt_input`
    cols : ndarray, optional
        The unfolded input that ``vecjac.direct.conv2d(A, K, ..., return_cols=True)``
        returned for this ``A`` and geometry: the structured form's products ``R @ J`` use it
        (one dense matrix product, as the direct backward pass) instead of unfolding ``A``.

    Returns
    -------
    J : Jacobian, shape (C_out h_z w_z, C_out C_in h_k w_k), rows ``N`` times for a batch
        Block ``(j, (j, i))`` is the note's ``d vecZ_j / d vecK_{j,i}``, built from ``A_i``
        alone; blocks ``(j, (j', i))`` with ``j' != j`` are zero.  For a batch the samples'
        rows are stacked, since every sample shares ``K``.  ``structured=True`` (default)
        stores each sample's ``[d vecZ_j/d vecK_{j,1} ... d vecZ_j/d vecK_{j,C_in}]`` once,
        not once per ``j`` (:class:`~vecjac.structure.KronRows`); ``False`` stores it flat.
    """
    A = as_float_array(A, "A", ndims=(3, 4))
    kernel_shape = as_shape(kernel_shape, "kernel_shape")
    if structured and len(kernel_shape) == 4:
        return _structured_wrt_kernel(A, kernel_shape, stride, padding, of, wrt, max_bytes,
                                      padding_mode, cols)
    pattern = _checked_pattern(A.shape, kernel_shape, stride, padding, A.dtype, max_bytes,
                               padding_mode)
    per_sample = np.take(vec(A).reshape(-1, A[0].size if A.ndim == 4 else A.size),
                         pattern.a_local, axis=1)
    if kernel_shape[0] == 1:  # one kernel (the structured form's P): the gather is the data
        data = per_sample.ravel()
    else:  # every kernel j reads the same entries of A
        data = np.broadcast_to(per_sample[:, None, :], (per_sample.shape[0], kernel_shape[0],
                                                        per_sample.shape[1])).ravel()
    return _jacobian(data, pattern.k_index, pattern, pattern.kernel_shape, of, wrt)


def conv_wrt_bias(
    output_shape, *, of: str = "Z", wrt: str = "b", dtype=np.float64,
    max_bytes: int | None = None, structured: bool = True,
) -> Jacobian:
    """``d vecZ / d b``: a one in column ``j`` of every row of output channel ``j``.

    Parameters
    ----------
    output_shape : (C_out, h_z, w_z) or (N, C_out, h_z, w_z)

    Returns
    -------
    J : Jacobian, shape (prod(output_shape), C_out)
        Per channel, the note's ``d vecZ_j / d b_j = 1_(h_z w_z, 1)``.  For a batch every
        sample has the same rows: stored once (``structured=True``, default) or flat.
    """
    output_shape = as_shape(output_shape, "output_shape")
    if len(output_shape) not in (3, 4) or min(output_shape) < 1:
        raise ValueError(
            f"output_shape must be (C_out, h_z, w_z) or (N, C_out, h_z, w_z) with positive "
            f"sizes, got {output_shape}"
        )
    if structured and len(output_shape) == 4:
        G = conv_wrt_bias(output_shape[1:], dtype=dtype, max_bytes=max_bytes, structured=False)
        N, c_out, hw = output_shape[0], output_shape[1], output_shape[2] * output_shape[3]

        def rows(R):  # R @ J: each channel's entries summed over samples and positions
            return np.einsum("knch->kc", R.reshape(R.shape[0], N, c_out, hw))

        return Jacobian(Tile(N, G.matrix, rows), of, wrt, output_shape, G.wrt_shape)
    c_out, hw = output_shape[-3], output_shape[-1] * output_shape[-2]
    n_rows = int(np.prod(output_shape))
    itype = check_csr_budget(n_rows, (n_rows, c_out), dtype, "bias", max_bytes)
    columns = np.broadcast_to(np.arange(c_out, dtype=itype)[:, None], (c_out, hw)).ravel()
    indices = _repeat(columns, n_rows // (c_out * hw))
    indptr = np.arange(n_rows + 1, dtype=itype)
    data = np.ones(n_rows, dtype=dtype)
    matrix = assemble_csr(data, indices, indptr, (n_rows, c_out))
    return Jacobian(matrix, of, wrt, output_shape, (c_out,))


def conv_block_wrt_kernel(A_i: ArrayLike, kernel_size, stride=1, padding=0,
    *, max_bytes: int | None = None) -> Jacobian:
    """Block form: the note's ``d vecZ_j / d vecK_{j,i}``, from channel ``A_i`` alone.

    Parameters
    ----------
    A_i : array_like, shape (h_a, w_a)
    kernel_size : int or (h_k, w_k)

    Returns
    -------
    J : Jacobian ``dZ_j/dK_ji``, shape (h_z w_z, h_k w_k); the same for every ``j``.
    """
    A_i = as_float_array(A_i, "A_i", ndims=(2,))
    hk, wk = as_pair(kernel_size, "kernel_size", 1)
    J = conv_wrt_kernel(A_i[None], (1, 1, hk, wk), stride, padding, max_bytes=max_bytes)
    return Jacobian(J.matrix, "Z_j", "K_ji", J.of_shape[1:], (hk, wk))


def conv_block_wrt_input(K_ji: ArrayLike, input_size, stride=1, padding=0,
    *, max_bytes: int | None = None, padding_mode: str = "zeros") -> Jacobian:
    """Block form: the note's ``d vecZ_j / d vecA_i``, from ``K_{j,i}`` alone.

    Parameters
    ----------
    K_ji : array_like, shape (h_k, w_k)
    input_size : int or (h_a, w_a)
    padding_mode : {"zeros", "circular"}, as :func:`conv_wrt_input`

    Returns
    -------
    J : Jacobian ``dZ_j/dA_i``, shape (h_z w_z, h_a w_a).
    """
    K_ji = as_float_array(K_ji, "K_ji", ndims=(2,))
    ha, wa = as_pair(input_size, "input_size", 1)
    J = conv_wrt_input(K_ji[None, None], (1, ha, wa), stride, padding, max_bytes=max_bytes,
                       structured=False, padding_mode=padding_mode)
    return Jacobian(J.matrix, "Z_j", "A_i", J.of_shape[1:], (ha, wa))


def clear_pattern_cache() -> None:
    """Forget every cached convolution pattern (they hold memory proportional to nnz), and
    the kept path-matrix patterns of :mod:`vecjac.paths`."""
    _pattern.cache_clear()
    clear_plans()


# --- structured forms ---------------------------------------------------------------------
def _structured_wrt_input(K, shape, stride, padding, of, wrt, max_bytes, padding_mode):
    """``I_N (x) M``: ``M`` (one sample's ``dZ/dA``) built on first use; ``R @ J`` runs the
    direct backward pass's matrix product and col2im on ``R`` read as ``dL/dZ``.  ``K`` is
    copied (it is small): training updates the parameters in place, and ``J`` must stay the
    Jacobian at the ``K`` it was built for."""
    K, one = K.copy(), shape[1:]
    pattern = _checked_pattern(one, K.shape, stride, padding, K.dtype, max_bytes, padding_mode)
    max_bytes = _budget_now(max_bytes)  # the lazy build keeps the budget checked here
    n_rows, n_cols = pattern.indptr.size - 1, math.prod(one)
    build = lambda: conv_wrt_input(K, one, stride, padding, max_bytes=max_bytes,  # noqa: E731
                                   structured=False, padding_mode=padding_mode).matrix
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    rows = lambda R: _input_rows(R, K, shape, stride, padding, padding_mode)  # noqa: E731
    M = Lazy(build, (n_rows, n_cols), pattern.nnz)
    return Jacobian(Kron(shape[0], M, rows=rows), of, wrt, shape[:1] + pattern.output_shape,
                    shape)


def _structured_wrt_kernel(A, kernel_shape, stride, padding, of, wrt, max_bytes, padding_mode,
                           cols):
    """Sample ``s``'s rows ``I_{C_out} (x) P_s``: ``P`` built on first use; ``R @ J`` is one
    dense product with the unfolded input (the direct backward pass's ``dK``)."""
    one_kernel = (1,) + kernel_shape[1:]
    pattern = _checked_pattern(A.shape, one_kernel, stride, padding, A.dtype, max_bytes,
                               padding_mode)
    max_bytes = _budget_now(max_bytes)  # the lazy build keeps the budget checked here
    build = lambda: conv_wrt_kernel(A, one_kernel, stride, padding,  # noqa: E731
                                    max_bytes=max_bytes, structured=False,
                                    padding_mode=padding_mode).matrix
    n = A.shape[0] if A.ndim == 4 else 1
    P = Lazy(build, (pattern.indptr.size - 1, math.prod(one_kernel)), pattern.nnz)
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    unfolded = {} if cols is None else {"cols": cols}
    batch = A if A.ndim == 4 else A[None]
    transposed = vec_layout(batch)  # then cols unfold the transposed maps, as conv2d's do
    hw = pattern.output_shape[-2:]

    def columns():  # the unfolded input (the forward pass's, else made on the first product)
        if "cols" not in unfolded:
            unfolded["cols"] = _columns(batch, kernel_shape[2:], stride, padding, padding_mode)
        return unfolded["cols"]

    def rows(R):
        return _kernel_rows(R, columns(), kernel_shape, n, hw, transposed)

    def per_sample(R):
        return _kernel_rows_per_sample(R, columns(), kernel_shape, n, hw, transposed)

    of_shape = pattern.output_shape[:-3] + (kernel_shape[0],) + pattern.output_shape[-2:]
    return Jacobian(KronRows(n, kernel_shape[0], P, rows=rows, per_sample=per_sample), of, wrt,
                    of_shape, kernel_shape)


def _budget_now(max_bytes: int | None) -> int:
    """The budget a call checks against: its own ``max_bytes``, else the process's now."""
    return get_memory_budget() if max_bytes is None else max_bytes


# Rows are in vec order: each channel's columns (w, h), h fastest; that is NumPy's layout of
# the spatially transposed maps.  So R @ dZ/dA runs the direct kernels on transposed maps
# with the transposed kernel (stride and padding swapped), and nothing is transposed.
def _input_rows(R: NDArray, K: NDArray, input_shape, stride, padding, padding_mode):
    """``R @ dZ/dA`` for rows ``R`` ``(k, N C_out h_z w_z)``: each row is ``vec(dL/dZ)`` of the
    batch, back-propagated to ``vec(dL/dA)`` by the direct pass."""
    k, (N, C_in, ha, wa), c_out = R.shape[0], input_shape, K.shape[0]
    hz, wz = conv_output_shape((ha, wa), K.shape[2:], stride, padding)
    dZ_T = R.reshape(k * N, c_out, wz, hz)
    K_T = np.ascontiguousarray(K.swapaxes(-1, -2))
    dA_T = _input_grad(dZ_T, K_T, (k * N, C_in, wa, ha), stride[::-1], padding[::-1],
                       padding_mode)
    return dA_T.reshape(k, -1)


def _kernel_rows(R: NDArray, cols: NDArray, kernel_shape, n: int, hw,
                 transposed: bool = False) -> NDArray:
    """``R @ dZ/dK`` for rows ``R`` ``(k, n C_out h_z w_z)``: ``dL/dK`` of each row read as
    ``vec(dL/dZ)``, one matrix product with the unfolded input ``cols`` (the forward pass's,
    ``(C_in h_k w_k, n h_z w_z)``; the rows are turned to its orientation, as they are the
    smaller), read back in ``vec(K)``.  ``transposed``: ``cols`` unfolds the transposed maps
    (:func:`vecjac.direct.conv.vec_layout`), whose positions are in the rows' own order, and
    the product is ``dL/dK`` transposed, whose C order is ``vec(K)``: nothing is turned."""
    k, c_out, (hz, wz) = R.shape[0], kernel_shape[0], hw
    if transposed and k == 1 and _per_sample_products(cols, n):  # as the direct pass does
        dK_T = _kernel_grad_per_sample(R.reshape(n, c_out, wz * hz), cols,
                                       (c_out, cols.shape[0]))
        return dK_T.reshape(1, -1)  # dL/dK transposed: its C order is vec(K)
    if transposed:
        dZ_mat = R.reshape(k, n, c_out, wz * hz).transpose(0, 2, 1, 3).reshape(k * c_out, -1)
        return (dZ_mat @ cols.T).reshape(k, -1)
    dZ_mat = R.reshape(k, n, c_out, wz, hz).transpose(0, 2, 1, 4, 3).reshape(k * c_out, -1)
    dK = _kernel_grad_from_rows(dZ_mat, cols, (k * c_out,) + tuple(kernel_shape[1:]))
    return vec(dK).reshape(k, -1)


def _kernel_rows_per_sample(R: NDArray, cols: NDArray, kernel_shape, n: int, hw,
                            transposed: bool = False) -> NDArray:
    """:func:`_kernel_rows` without the sum over samples: ``(n, k, C_out C_in h_k w_k)``,
    sample ``s``'s ``dL/dK`` from its own part of each row and its own columns, one batched
    matrix product ``(n, k C_out, h_z w_z) @ (n, h_z w_z, C_in h_k w_k)``."""
    k, c_out, (hz, wz) = R.shape[0], kernel_shape[0], hw
    per_sample = cols.reshape(cols.shape[0], n, hz * wz).transpose(1, 2, 0)
    if transposed:
        dZ = R.reshape(k, n, c_out, wz * hz).transpose(1, 0, 2, 3).reshape(n, k * c_out, -1)
        return np.matmul(dZ, per_sample).reshape(n, k, -1)
    dZ = R.reshape(k, n, c_out, wz, hz).transpose(1, 0, 2, 4, 3).reshape(n, k * c_out, hz * wz)
    dK = np.matmul(dZ, per_sample).reshape((n, k) + tuple(kernel_shape))
    return vec(dK).reshape(n, k, -1)


# --- construction -------------------------------------------------------------------------
def _normalise(input_shape, kernel_shape, stride, padding, padding_mode="zeros"):
    input_shape = as_shape(input_shape, "input_shape")
    kernel_shape = as_shape(kernel_shape, "kernel_shape")
    if len(input_shape) not in (3, 4):
        raise ValueError(
            f"input_shape must be (C_in, h_a, w_a) or (N, C_in, h_a, w_a), got {input_shape}"
        )
    if len(kernel_shape) != 4:
        raise ValueError(f"kernel_shape must be (C_out, C_in, h_k, w_k), got {kernel_shape}")
    if min(input_shape) < 1 or min(kernel_shape) < 1:
        raise ValueError(
            f"sizes must be positive: input_shape {input_shape}, kernel_shape {kernel_shape}"
        )
    if input_shape[-3] != kernel_shape[1]:
        raise ValueError(
            f"channel mismatch: input has {input_shape[-3]} channels but the kernels expect "
            f"C_in = {kernel_shape[1]} (kernel_shape {kernel_shape} = (C_out, C_in, h_k, w_k))"
        )
    stride, padding = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    check_padding_mode(padding_mode, padding, input_shape[-2:])
    conv_output_shape(input_shape[-2:], kernel_shape[2:], stride, padding)
    if padding_mode == "circular" and (kernel_shape[2] > input_shape[-2]
                                       or kernel_shape[3] > input_shape[-1]):
        raise ValueError(
            f"kernel size {kernel_shape[2:]} is larger than the input {input_shape[-2:]}: with "
            f"padding_mode='circular' the Jacobian builders need h_k <= h_a and w_k <= w_a "
            f"(a larger kernel wraps onto the same input entry twice in one row)"
        )
    return input_shape, kernel_shape, stride, padding


def _valid_offsets(n_out: int, n_in: int, k: int, s: int, p: int,
                   circular: bool = False) -> tuple[NDArray, NDArray]:
    """Input positions ``x s + u - p`` of output ``x`` and kernel offset ``u``, and validity;
    ``circular`` wraps them modulo ``n_in`` (then every position is valid)."""
    pos = np.arange(n_out)[:, None] * s + np.arange(k)[None, :] - p
    if circular:
        return pos % n_in, np.ones(pos.shape, dtype=bool)
    return pos, (pos >= 0) & (pos < n_in)


@lru_cache(maxsize=256)
def _nnz(input_shape, kernel_shape, stride, padding, padding_mode="zeros") -> int:
    n = input_shape[0] if len(input_shape) == 4 else 1
    c_out, c_in, hk, wk = kernel_shape
    ha, wa = input_shape[-2:]
    hz, wz = conv_output_shape((ha, wa), (hk, wk), stride, padding)
    circular = padding_mode == "circular"
    rows_ok = _valid_offsets(hz, ha, hk, stride[0], padding[0], circular)[1].sum()
    cols_ok = _valid_offsets(wz, wa, wk, stride[1], padding[1], circular)[1].sum()
    return int(n * c_out * c_in * rows_ok * cols_ok)


def _checked_pattern(input_shape, kernel_shape, stride, padding, dtype, max_bytes,
                     padding_mode="zeros"):
    args = (input_shape, kernel_shape, stride, padding, padding_mode)
    geometry = _geometry(*args) if _exact_ints(*args[:4]) else _geometry.__wrapped__(*args)
    input_shape, kernel_shape, stride, padding, nnz, (n_rows, n_cols), index_size = geometry
    # the Jacobian (data, indices, indptr) plus the cached pattern (two index arrays, indptr)
    estimate = csr_nbytes(nnz, n_rows, np.dtype(dtype).itemsize, n_cols) + csr_nbytes(
        nnz, n_rows, index_size, n_cols)
    check_budget(estimate, f"convolution Jacobian ({nnz} stored entries)", max_bytes)
    return _pattern(input_shape, kernel_shape, stride, padding, padding_mode)


@lru_cache(maxsize=256)
def _geometry(input_shape, kernel_shape, stride, padding, padding_mode):
    """The validated shapes, nnz, pattern shape and index size of a convolution; kept for
    arguments of exact ints (:func:`_exact_ints`), as a network asks for the same ones at
    every step."""
    input_shape, kernel_shape, stride, padding = _normalise(
        input_shape, kernel_shape, stride, padding, padding_mode
    )
    nnz = _nnz(input_shape, kernel_shape, stride, padding, padding_mode)
    shape = _pattern_shape(input_shape, kernel_shape, stride, padding)
    index_size = np.dtype(index_dtype(nnz, shape)).itemsize
    return input_shape, kernel_shape, stride, padding, nnz, shape, index_size


def _exact_ints(*groups) -> bool:
    """Whether every group is an ``int`` or a tuple of ``int`` (not ``bool``, ``float`` or
    NumPy scalars, which hash like ints but which :func:`_normalise` judges on their own)."""
    return all(type(g) is int or (type(g) is tuple and all(type(v) is int for v in g))
               for g in groups)


def _pattern_shape(input_shape, kernel_shape, stride, padding) -> tuple[int, int]:
    """Rows of the pattern and the larger column count of ``dZ/dA`` and ``dZ/dK``: the
    shape whose :func:`~vecjac.budget.index_dtype` the pattern's index arrays get."""
    n = input_shape[0] if len(input_shape) == 4 else 1
    hz, wz = conv_output_shape(input_shape[-2:], kernel_shape[2:], stride, padding)
    n_cols = max(int(np.prod(input_shape)), int(np.prod(kernel_shape)))
    return n * kernel_shape[0] * hz * wz, n_cols


@lru_cache(maxsize=64)
def _pattern(input_shape, kernel_shape, stride, padding, padding_mode="zeros") -> ConvPattern:
    n = input_shape[0] if len(input_shape) == 4 else 1
    c_in, ha, wa = input_shape[-3:]
    c_out, _, hk, wk = kernel_shape
    (hs, ws), (hp, wp) = stride, padding
    hz, wz = conv_output_shape((ha, wa), (hk, wk), stride, padding)
    circular = padding_mode == "circular"  # keyed in the cache: a separate pattern
    r, r_ok = _valid_offsets(hz, ha, hk, hs, hp, circular)  # (h_z, h_k): input row of (x, u)
    s, s_ok = _valid_offsets(wz, wa, wk, ws, wp, circular)  # (w_z, w_k): input column of (y, v)

    # One output channel's rows, in vec(Z_j) order (y, x); entries in column order (i, v, u).
    shape = (wz, hz, c_in, wk, hk)
    valid = np.broadcast_to((s_ok[:, None, None, :, None] & r_ok[None, :, None, None, :]), shape)
    i = np.arange(c_in)[None, None, :, None, None]
    a_all = i * (ha * wa) + s[:, None, None, :, None] * ha + r[None, :, None, None, :]
    k_all = i * (hk * wk) + np.arange(wk)[:, None] * hk + np.arange(hk)[None, :]
    a_local = np.broadcast_to(a_all, shape)[valid]
    k_local = np.broadcast_to(k_all, shape)[valid]
    counts = valid.sum(axis=(2, 3, 4)).ravel()  # entries per row (y, x)

    # Every sample and output channel repeats the rows.
    nnz = n * c_out * int(counts.sum())
    itype = index_dtype(nnz, _pattern_shape(input_shape, kernel_shape, stride, padding))
    indptr = np.zeros(n * c_out * hz * wz + 1, dtype=itype)
    np.cumsum(_repeat(counts.astype(itype), n * c_out), out=indptr[1:])
    output_shape = ((n,) if len(input_shape) == 4 else ()) + (c_out, hz, wz)
    return ConvPattern(indptr, a_local, k_local, input_shape, kernel_shape, output_shape)


def _read_only(*arrays: NDArray) -> tuple[NDArray, ...]:
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _repeat(x: NDArray, times: int) -> NDArray:
    """``np.tile(x, times)`` for a 1-D ``x``, as one broadcast copy (np.tile is ~10x slower)."""
    return np.broadcast_to(x, (times, x.size)).ravel()


def _jacobian(data, indices, pattern: ConvPattern, wrt_shape, of, wrt) -> Jacobian:
    n_rows = pattern.indptr.size - 1
    n_cols = int(np.prod(wrt_shape))
    matrix = assemble_csr(data, indices, pattern.indptr, (n_rows, n_cols))
    return Jacobian(matrix, of, wrt, pattern.output_shape, wrt_shape)
