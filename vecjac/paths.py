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

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["shared_product"]


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
    """
    (p, q), m, n = A.shape, pattern.shape[1], values.shape[1]
    nnz_B = pattern.nnz
    if A.nnz == 0 or nnz_B == 0:
        empty = sp.csr_array((p, m), dtype=np.float64)
        return empty, np.zeros((0, n), dtype=np.result_type(A.dtype, values.dtype))
    row_B = np.repeat(np.arange(q), np.diff(pattern.indptr))
    by_column = np.lexsort((row_B, pattern.indices))  # B's entries numbered column by column
    rank = np.empty(nnz_B, dtype=np.int64)
    rank[by_column] = np.arange(nnz_B)
    E = sp.csr_array((np.ones(nnz_B, dtype=A.dtype), rank, pattern.indptr), shape=(q, nnz_B))
    paths = sp.csr_array(A @ E)  # (r, q'): A[r, j] on every path r -> j -> column of q'
    paths.sort_indices()  # within a row: by column of B, then by j
    column = pattern.indices[by_column][paths.indices]
    row = np.repeat(np.arange(p), np.diff(paths.indptr))
    first = np.ones(paths.nnz, dtype=bool)  # the first path of each output entry (r, c)
    first[1:] = (column[1:] != column[:-1]) | (row[1:] != row[:-1])
    starts = np.flatnonzero(first)
    product_pattern = sp.csr_array(
        (np.ones(starts.size), column[starts], np.searchsorted(starts, paths.indptr)),
        shape=(p, m))
    S = sp.csr_array((paths.data, by_column[paths.indices], np.append(starts, paths.nnz)),
                     shape=(starts.size, nnz_B))
    return product_pattern, np.asarray(S @ values)
