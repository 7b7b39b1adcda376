r"""Jacobians of pooling: the note's section 3.1.3 (used again in 3.1.6), L2 pooling added.

Pooling acts channel by channel, ``A_j = f_pool(I_j)`` with ``I_j`` of size ``h_z x w_z`` and
``A_j`` of size ``h_a x w_a``, so ``d vecA / d vecI`` is block diagonal over channels (and
samples), with the ``(h_a w_a) x (h_z w_z)`` blocks ``d vecA_j / d vecI_j``:

* **average pooling**, literally as the note builds it:  ``A_j = I_j * P`` with
  ``P = 1/(h_l w_l)`` and the pool's padding and stride, so

      d vecA_j / d I_{j,pq} = vec( dI_j/dI_{j,pq} * P ),
      d vecA_j / d vecI_j   = [ vec(dI_j/dI_{j,11} * P)  ...  vec(dI_j/dI_{j,h_z w_z} * P) ],

  the convolution builder's ``d vecZ_j / d vecA_i`` for the kernel ``P``, the same for every
  channel.  Zeros of the padding count in the mean.
* **max pooling** by the "switches": ``dA_{j,xy} / dI_{j,pq} = 1`` if ``(p, q)`` is where the
  maximum of window ``(x, y)`` sits, else 0; one 1 per row, a selection matrix.
  ``ties="split"`` shares the 1 equally among tied maxima (see
  :func:`vecjac.direct.max_pool_shares`).  Padding acts as -inf.
* **L2-norm pooling** (left open in the note, completed here):  ``A_j = sqrt(I_j^2 * 1)``,
  the square taken entry by entry and ``1`` the all-ones ``h_l x w_l`` kernel, so

      dA_{j,xy} / dI_{j,pq} = I_{j,pq} / A_{j,xy}      ((p, q) in window (x, y); 0 if A_{j,xy} = 0)
      d vecA_j / d vecI_j   = diag(vecA_j)^{-1} C_1 diag(vecI_j),

  where ``C_1 = h_l w_l d vecA_j/d vecI_j (average)`` is the convolution block of the
  all-ones kernel.  It has the sparsity of average pooling (every window entry inside the
  input is stored, even where ``I_{j,pq} = 0``); its values are one gather.

References: the note, sections 2, 3.1.3 and 3.1.6.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..budget import check_csr_budget, index_dtype
from ..direct.pool import (
    PoolArgs,
    _tiled_spread,
    check_pool_args,
    max_pool_shares,
    max_pool_switches,
    pool2d,
    tiles,
)
from ..jacobian import Jacobian
from ..structure import BlockDiag
from ..vec import as_float_array, vec
from ._csr import assemble_csr
from .conv import conv_block_wrt_input, conv_nnz, conv_pattern, conv_wrt_input

__all__ = ["pool", "pool_block"]


def pool(
    I: ArrayLike,
    kind: str = "avg",
    size=2,
    stride=None,
    padding=0,
    ties: str = "first",
    *,
    of: str = "A",
    wrt: str = "I",
    max_bytes: int | None = None,
    structured: bool = True,
) -> Jacobian:
    """``d vecA / d vecI`` of ``A = f_pool(I)``, stacked over channels (and samples).

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
        The pooling layer's input (needed by max and L2 pooling; only its shape by average).
    kind : {"avg", "max", "l2"}
    size : int or (h_l, w_l)
    stride : int or pair, optional
        Default: the window size.
    padding : int or pair
        At most half the window for max pooling.
    ties : {"first", "split"}
        Max pooling's tie rule; ignored otherwise.
    of, wrt : str
        The note's names, e.g. ``"A2"`` and ``"I2"``.
    max_bytes : int, optional
        Memory budget for this call (default: :func:`vecjac.get_memory_budget`).
    structured : bool
        ``True`` (default): average pooling is stored as ``I_{N C} (x) M`` (one block for
        every channel and sample, the note's "the same for every channel"), max and L2
        pooling as their distinct diagonal blocks; ``False``: flat.

    Returns
    -------
    J : Jacobian, shape (C h_a w_a, C h_z w_z), or ``N`` times each for a batch
        Block diagonal; block ``(j, j)`` (``((n, j), (n, j))`` for a batch) is the note's
        ``d vecA_j / d vecI_j``, :func:`pool_block` of that channel.  No explicit zeros are
        stored, except L2 pooling's structural ones.

    Examples
    --------
    >>> import numpy as np
    >>> pool(np.zeros((16, 28, 28)), "avg")
    Jacobian dA/dI: 3136 x 12544, nnz 12544, density 0.0%
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, kind, size, stride, padding, ties)
    if args.kind == "avg":  # the conv builder's I_{N C} (x) M, or flat
        P = _kernel_P(args, I.dtype)
        J = conv_wrt_input(P, _folded(I.shape), args.stride, args.padding, max_bytes=max_bytes,
                           structured=structured)
        if structured and tiles(args, I.shape):  # R @ J: each entry spread over its window
            n, hw = J._structure.n, args.output_shape[-2:]
            rows = lambda R: _tiled_average_rows(R, n, args.size, hw)  # noqa: E731
            J = Jacobian(J._structure.with_rows(rows), of, wrt, args.output_shape, I.shape)
        return J.renamed(of, wrt, args.output_shape, I.shape)
    if args.kind == "l2":
        matrix = _l2(I, args, max_bytes)
    elif args.ties == "first":
        matrix = _max_first(I, args, max_bytes)
    else:
        matrix = _max_split(I, args, max_bytes)
    if structured:  # one distinct block per channel (and sample)
        matrix = BlockDiag(int(np.prod(I.shape[:-2])), matrix)
    return Jacobian(matrix, of, wrt, args.output_shape, I.shape)


def pool_block(
    I_j: ArrayLike, kind: str = "avg", size=2, stride=None, padding=0, ties: str = "first"
) -> Jacobian:
    """Block form: the note's ``d vecA_j / d vecI_j`` for one channel ``I_j``.

    Parameters
    ----------
    I_j : array_like, shape (h_z, w_z)
    kind, size, stride, padding, ties : as :func:`pool`

    Returns
    -------
    J : Jacobian ``dA_j/dI_j``, shape (h_a w_a, h_z w_z)
        For ``"avg"`` it is the convolution builder's block for the kernel ``P`` and does not
        depend on the values of ``I_j``: the same for every channel.
    """
    I_j = as_float_array(I_j, "I_j", ndims=(2,))
    args = check_pool_args(I_j.shape, kind, size, stride, padding, ties)
    if args.kind == "avg":
        P = _kernel_P(args, I_j.dtype)[0, 0]
        J = conv_block_wrt_input(P, I_j.shape, args.stride, args.padding)
    else:
        J = pool(I_j[None], args.kind, *args.geometry, args.ties)
    return Jacobian(J.matrix, "A_j", "I_j", args.output_shape, I_j.shape)


# --- builders -----------------------------------------------------------------------------
def _max_first(I: NDArray, args: PoolArgs, max_bytes) -> sp.csr_array:
    """Selection matrix built in CSR order: ``indptr = arange``, one switch per row, its
    column ``base + offsets[k]`` (window corner plus the switch's offset)."""
    n_rows = int(np.prod(args.output_shape))
    check_csr_budget(n_rows, (n_rows, I.size), I.dtype, "max-pooling", max_bytes)
    base, offsets, indptr = _window_index(I.shape, args)
    columns = offsets.ravel()[vec(max_pool_switches(I, *args.geometry))]  # rows in vec order
    columns += base.ravel()
    data = np.ones(n_rows, dtype=I.dtype)
    return assemble_csr(data, columns, indptr, (n_rows, I.size))  # copies the cached indptr


def _max_split(I: NDArray, args: PoolArgs, max_bytes) -> sp.csr_array:
    """Each row stores the shares ``1/t`` of its ``t`` tied maxima, columns ascending."""
    n_rows, nnz_bound = _window_counts(I, args)
    itype = check_csr_budget(nnz_bound, (n_rows, I.size), I.dtype, "max-pooling", max_bytes)
    base, offsets, _ = _window_index(I.shape, args)
    shares = max_pool_shares(I, *args.geometry, args.ties)  # (..., h_a, w_a, h_l, w_l)
    shares = np.swapaxes(np.swapaxes(shares, -3, -4), -1, -2)  # rows (w_a, h_a), entries (v, u)
    shares = shares.reshape(base.shape + (-1,))
    columns = base[..., None] + offsets.T.ravel()
    stored = shares != 0
    indptr = np.zeros(n_rows + 1, dtype=itype)
    np.cumsum(stored.sum(axis=-1).ravel(), out=indptr[1:])
    return assemble_csr(shares[stored], columns[stored], indptr, (n_rows, I.size))


def _l2(I: NDArray, args: PoolArgs, max_bytes) -> sp.csr_array:
    """The average-pooling pattern (cached), refilled: ``data = vecI[cols] / vecA[rows]``."""
    n_rows, nnz = _window_counts(I, args)
    check_csr_budget(nnz, (n_rows, I.size), I.dtype, "L2-pooling", max_bytes)
    kernel_shape = (1, 1) + args.size
    pattern = conv_pattern(_folded(I.shape), kernel_shape, args.stride, args.padding)
    A = vec(pool2d(I, "l2", *args.geometry))
    inverse = np.divide(1, A, out=np.zeros_like(A), where=A > 0)  # 0 where A_xy = 0
    data = vec(I)[pattern.a_index] * np.repeat(inverse, np.diff(pattern.indptr))
    return assemble_csr(data, pattern.a_index, pattern.indptr, (n_rows, I.size))


# --- helpers ------------------------------------------------------------------------------
def _kernel_P(args: PoolArgs, dtype) -> NDArray:
    """The note's ``P^{[l]}``: ``h_l x w_l``, every entry ``1/(h_l w_l)``, as conv kernels."""
    h_l, w_l = args.size
    return np.full((1, 1, h_l, w_l), 1.0 / (h_l * w_l), dtype=dtype)


def _tiled_average_rows(R: NDArray, n: int, size, output_hw) -> NDArray:
    """``R @ dA/dI`` for average pooling whose windows tile the input: rows in vec order are
    the output maps transposed (each channel's columns ``(w, h)``, ``h`` fastest), so this is
    the direct backward pass on the transposed maps, with the window transposed."""
    (h_a, w_a), k = output_hw, R.shape[0]
    return _tiled_spread(R.reshape(k * n, w_a, h_a), size[::-1]).reshape(k, -1)


def _folded(shape) -> tuple[int, int, int, int]:
    """(C, h, w) or (N, C, h, w) -> (N*C, 1, h, w): every channel a one-channel sample."""
    return (int(np.prod(shape[:-2])), 1) + tuple(shape[-2:])


def _window_counts(I: NDArray, args: PoolArgs) -> tuple[int, int]:
    """Rows, and stored entries of the window pattern (window entries inside the input)."""
    n_rows = int(np.prod(args.output_shape))
    return n_rows, conv_nnz(_folded(I.shape), (1, 1) + args.size, args.stride, args.padding)


@lru_cache(maxsize=32)
def _window_index(input_shape, args: PoolArgs) -> tuple[NDArray, NDArray, NDArray]:
    """vec(I) positions of the window entries, as ``base + offsets``; cached, read-only.

    ``base``, shape (N*C, w_a, h_a) (rows in vec order): the position of window ``(x, y)``'s
    corner ``(x h_s, y w_s)`` of channel ``(n, c)``; ``offsets``, shape (h_l, w_l): what the
    window offset ``(u, v)`` adds, ``(u - h_p) + (v - w_p) h_z``; and ``arange(rows + 1)``,
    the ``indptr`` of a selection matrix.
    """
    (h_l, w_l), (h_s, w_s), (h_p, w_p) = args.size, args.stride, args.padding
    h_a, w_a = args.output_shape[-2:]
    h_z, w_z = input_shape[-2:]
    n_blocks = int(np.prod(input_shape[:-2]))
    n_rows = n_blocks * h_a * w_a  # one switch per row: nnz = n_rows
    itype = index_dtype(n_rows, (n_rows, n_blocks * h_z * w_z))
    corner = np.arange(w_a, dtype=itype)[:, None] * (w_s * h_z) + np.arange(h_a, dtype=itype) * h_s
    base = np.arange(n_blocks, dtype=itype)[:, None, None] * (h_z * w_z) + corner
    offsets = ((np.arange(h_l)[:, None] - h_p) + (np.arange(w_l) - w_p) * h_z).astype(itype)
    indptr = np.arange(base.size + 1, dtype=itype)
    for array in (base, offsets, indptr):
        array.setflags(write=False)
    return base, offsets, indptr
