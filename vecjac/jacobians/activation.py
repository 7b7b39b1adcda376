r"""Jacobians of activations: the note's section 3.1.4 (and 3.1.1's ``dA3/dZ3``).

An element-wise activation ``I = f(Z)`` acts on every entry alone, so channel by channel

    dJ/d vecZ_j = dJ/d vecI_j  d vecI_j / d vecZ_j,    d vecI_j / d vecZ_j = diag(f'(vecZ_j)),

and the stacked ``d vecI / d vecZ = diag(f'(vecZ))`` is diagonal for any shape (conv feature
maps ``(C, H, W)``, batches, the FC layout ``(n, N)``).  ``f'`` is ``s (1 - s)`` (sigmoid),
``1 - tanh^2``, ``[z > 0]`` (ReLU; 0 at 0), ``[z > 0] + 0.01 [z <= 0]`` (leaky ReLU),
``sigmoid`` (softplus), 1 (identity).

Softmax couples the entries of one sample (section 3.1.1, ``dA3/dZ3`` with
``a_i = e^{z_i} / sum_k e^{z_k}``): ``da_i/dz_j = a_i (delta_ij - a_j)``, a dense
``diag(s) - s s^T`` block per sample, block diagonal over the samples (the columns of
``(n, N)``).

References: the note, sections 3.1.1, 3.1.4 and 3.1.6.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..budget import check_csr_budget, index_dtype
from ..direct.activation import ACTIVATIONS, FROM_OUTPUT, _derivative, activate, checked_output
from ..jacobian import Jacobian
from ..structure import BlockDiag, Diagonal, Lazy
from ..vec import as_float_array, check_choice, vec
from ._csr import assemble_csr

__all__ = ["activation"]


def activation(
    Z: ArrayLike,
    kind: str,
    *,
    of: str = "I",
    wrt: str = "Z",
    negative_slope: float = 0.01,
    max_bytes: int | None = None,
    structured: bool = True,
    output: NDArray | None = None,
) -> Jacobian:
    """``d vecI / d vecZ`` of ``I = f_activation(Z)``.

    Parameters
    ----------
    Z : array_like, any shape; (n,) or (n, N) for softmax
    kind : {"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity", "softmax"}
    of, wrt : str
        The note's names, e.g. ``"I1"`` and ``"Z1"``, or ``"A3"`` and ``"Z3"``.
    negative_slope : float
        Leaky ReLU's slope for ``z <= 0``.
    max_bytes : int, optional
        Memory budget for this call.
    structured : bool
        ``True`` (default): kept as the diagonal ``f'(vecZ)`` (softmax: its per-sample
        blocks), multiplied without building the matrix; ``False``: flat CSR.
    output : ndarray, optional
        ``f(Z)`` from the forward pass, of Z's shape and layout: sigmoid and tanh then take
        ``f'`` from it, as back-propagation does (``s (1 - s)``, ``1 - t^2``; see
        :func:`vecjac.direct.activation_derivative` for the accuracy), and softmax takes its
        ``s`` from it instead of computing it again.  Other kinds ignore it.

    Returns
    -------
    J : Jacobian, shape (Z.size, Z.size)
        Element-wise kinds: ``diag(f'(vecZ))``, built directly in CSR (``indptr = indices =
        arange``; equal to ``scipy.sparse.diags_array``), zeros of ``f'`` stored.  Softmax:
        block diagonal, one dense ``diag(s) - s s^T`` block of ``n x n`` per sample.
        Block ``(j, j)`` is the note's ``d vecI_j / d vecZ_j``.

    Examples
    --------
    >>> activation(np.array([-1.0, 0.0, 2.0]), "relu").toarray()
    array([[0., 0., 0.],
           [0., 0., 0.],
           [0., 0., 1.]])
    """
    check_choice(kind, "kind", ACTIVATIONS)
    Z = as_float_array(Z, "Z")
    output = checked_output(output, Z) if output is not None and kind in FROM_OUTPUT else None
    if kind == "softmax":
        return _softmax(Z, of, wrt, max_bytes, structured, output)
    n = Z.size
    check_csr_budget(n, (n, n), Z.dtype, f"activation ({n} x {n})", max_bytes)
    # f' acts entry by entry, so vec(f'(Z)) = f'(vec Z): the derivative of vec(Z), already
    # in the diagonal's order; vec(Z) is a view of a vector, or of maps in the vec layout (as
    # a network keeps them), and else a copy that the derivative overwrites.
    diagonal = vec(Z)
    out = np.empty_like(diagonal) if np.shares_memory(diagonal, Z) else diagonal
    output = None if output is None else vec(output)
    diagonal = _derivative(diagonal, kind, negative_slope, out, output)  # checked above
    storage = Diagonal(diagonal) if structured else _diagonal(diagonal)
    return Jacobian(storage, of, wrt, Z.shape, Z.shape)


def _diagonal(values: NDArray) -> sp.csr_array:
    """``diag(values)`` as CSR without the DIA detour: ``indptr = indices = arange``."""
    index = _arange(values.size)
    return assemble_csr(values, index[:-1], index, (values.size,) * 2)


@lru_cache(maxsize=8)
def _arange(n: int) -> NDArray:
    """``arange(n + 1)``, cached and read-only: the pattern of every ``n x n`` diagonal."""
    index = np.arange(n + 1, dtype=index_dtype(n, (n, n)))
    index.setflags(write=False)
    return index


def _softmax(Z: NDArray, of: str, wrt: str, max_bytes, structured: bool,
             output: NDArray | None) -> Jacobian:
    S = activate(Z, "softmax") if output is None else output
    columns = S[:, None] if S.ndim == 1 else S
    n, n_samples = columns.shape
    nnz = n_samples * n * n
    shape = (n * n_samples,) * 2
    itype = check_csr_budget(nnz, shape, Z.dtype, f"softmax ({n_samples} blocks of {n} x {n})",
                             max_bytes)
    s = columns.T  # (N, n): one row per sample

    def build() -> sp.csr_array:
        blocks = -s[:, :, None] * s[:, None, :]  # -s s^T
        blocks[:, np.arange(n), np.arange(n)] += s  # + diag(s)
        first = np.arange(n_samples, dtype=itype)[:, None, None] * n
        indices = np.broadcast_to(first + np.arange(n, dtype=itype), (n_samples, n, n)).ravel()
        indptr = np.arange(0, nnz + 1, n, dtype=itype)
        return assemble_csr(blocks.ravel(), indices, indptr, shape)

    if not structured:
        return Jacobian(build(), of, wrt, Z.shape, Z.shape)

    def rows(R):  # the blocks are symmetric: r (diag(s) - s s^T) = s * (r - (r . s))
        R3 = R.reshape(R.shape[0], n_samples, n)
        return (s * (R3 - np.einsum("kti,ti->kt", R3, s)[..., None])).reshape(R.shape[0], -1)

    return Jacobian(BlockDiag(n_samples, Lazy(build, shape, nnz), rows=rows), of, wrt, Z.shape,
                    Z.shape)
