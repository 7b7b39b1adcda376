r"""Products of a fixed sparse matrix with many blocks of one sparsity pattern.

The note's chain for ``dZ2/dX`` runs through a per-sample diagonal (the activation's
``f'(Z1)``) between layers whose blocks do not depend on the sample.  Every sample's block of
``diag(d_s) (I (x) M)`` then has ``M``'s pattern with its own values, and so has every product
with a shared block ``A`` on the left: entry ``(r, c)`` of ``A B_s`` is the sum over the paths
``r -> j -> c`` (``A[r, j]`` and ``B[j, c]`` stored) of ``A[r, j] B_s[j, c]``, the same paths
for every sample, linear in ``B_s``'s values with weights from ``A`` alone.  Written as a
matrix, the *path matrix* ``S`` has one row per entry ``(r, c)`` of the product, one column per
entry ``(j, c)`` of ``B`` and ``S[(r, c), (j, c)] = A[r, j]``; the values of every block of the
product are then ``S @ V`` with ``V[e, s]`` entry ``e`` of block ``s``: one sparse-times-dense
product for all samples, instead of one sparse product per sample.

``S`` itself comes from one sparse product and a sort within each row: with ``E[j, q] = 1``
for the entries ``q`` of row ``j`` of ``B``, numbered column by column, ``A @ E`` holds
``A[r, j]`` at ``(r, q)``, and sorting each of its rows by ``q`` groups the paths of one
output entry ``(r, c)`` together.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["shared_product", "clear_plans", "PLANS"]


def shared_product(A: sp.csr_array, pattern: sp.csr_array, values: NDArray
                   ) -> tuple[sp.csr_array, NDArray]:
    """``A @ B_s`` for every block ``B_s`` of one pattern.

    Parameters
    ----------
    A : csr_array, shape (p, q)
        The block shared by every sample.
    pattern : csr_array, shape (q, m)
        The pattern of every ``B_s`` (its values are not read), canonical (sorted indices,
        no duplicates).
    values : ndarray, shape (pattern.nnz, n)
        ``values[e, s]`` is entry ``e`` (in ``pattern``'s order) of block ``s``.

    Returns
    -------
    product_pattern : csr_array, shape (p, m)
        The pattern shared by every ``A @ B_s`` (sorted indices, entries 1.0): every entry
        reached by a path, kept even where the sum happens to be zero.
    product_values : ndarray, shape (product_pattern.nnz, n)

    The path matrix's pattern depends on the patterns of ``A`` and ``B`` alone; the last
    :data:`PLANS` of them are kept (:func:`clear_plans` forgets them), so a second product
    of the same shapes only gathers ``A``'s values along the paths and multiplies.
    """
    n = values.shape[1]
    if A.nnz == 0 or pattern.nnz == 0:
        empty = sp.csr_array((A.shape[0], pattern.shape[1]), dtype=np.float64)
        return empty, np.zeros((0, n), dtype=np.result_type(A.dtype, values.dtype))
    plan = _plan(A, pattern)
    S = sp.csr_array((A.data[plan.a_entry], plan.b_entry, plan.indptr),
                     shape=(plan.indptr.size - 1, pattern.nnz))
    return plan.pattern, np.asarray(S @ values)


PLANS = 4  # path-matrix patterns kept (each holds two indices per path)


class _Plan(NamedTuple):
    """The path matrix's pattern: for each output entry (its rows, ``indptr``) the paths, as
    the entry of ``A`` and the entry of ``B`` each multiplies; and the product's pattern."""

    pattern: sp.csr_array
    indptr: NDArray
    a_entry: NDArray
    b_entry: NDArray


_plans: OrderedDict = OrderedDict()


def clear_plans() -> None:
    """Forget the kept path-matrix patterns (they hold memory proportional to the paths)."""
    _plans.clear()


def _key(M: sp.csr_array) -> tuple:
    return M.shape, M.nnz, hash(M.indptr.tobytes()), hash(M.indices.tobytes())


def _plan(A: sp.csr_array, B: sp.csr_array) -> _Plan:
    key = (_key(A), _key(B))
    plan = _plans.get(key)
    if plan is not None and all(np.array_equal(x, y) for x, y in zip(
            plan.sources, (A.indptr, A.indices, B.indptr, B.indices), strict=True)):
        _plans.move_to_end(key)
        return plan.plan
    made = _make_plan(A, B)
    _plans[key] = _Kept(made, (A.indptr.copy(), A.indices.copy(), B.indptr.copy(),
                               B.indices.copy()))
    while len(_plans) > PLANS:
        _plans.popitem(last=False)
    return made


class _Kept(NamedTuple):
    plan: _Plan
    sources: tuple  # the patterns it was made from, compared on every hit


def _make_plan(A: sp.csr_array, B: sp.csr_array) -> _Plan:
    """One sparse product and a sort within each row (module docstring)."""
    (p, q), m, nnz_B = A.shape, B.shape[1], B.nnz
    row_B = np.repeat(np.arange(q), np.diff(B.indptr))
    by_column = np.lexsort((row_B, B.indices))  # B's entries numbered column by column
    rank = np.empty(nnz_B, dtype=np.int64)
    rank[by_column] = np.arange(nnz_B)
    E = sp.csr_array((np.ones(nnz_B), rank, B.indptr), shape=(q, nnz_B))
    A_entry = sp.csr_array((np.arange(1, A.nnz + 1, dtype=np.float64), A.indices, A.indptr),
                           shape=A.shape)  # entry numbers, 1-based: no stored zero
    paths = sp.csr_array(A_entry @ E)  # (r, q'): the entry of A on the path r -> j -> col(q')
    paths.sort_indices()  # within a row: by column of B, then by j
    column = B.indices[by_column][paths.indices]
    row = np.repeat(np.arange(p), np.diff(paths.indptr))
    first = np.ones(paths.nnz, dtype=bool)  # the first path of each output entry (r, c)
    first[1:] = (column[1:] != column[:-1]) | (row[1:] != row[:-1])
    starts = np.flatnonzero(first)
    product_pattern = sp.csr_array(
        (np.ones(starts.size), column[starts], np.searchsorted(starts, paths.indptr)),
        shape=(p, m))
    itype = np.int32 if max(A.nnz, nnz_B, paths.nnz) < 2**31 else np.int64
    return _Plan(product_pattern, np.append(starts, paths.nnz).astype(itype),
                 (paths.data - 1).astype(itype), by_column[paths.indices].astype(itype))
