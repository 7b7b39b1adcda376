"""The one place where builders turn ``(data, indices, indptr)`` into a ``csr_array``.

Every builder of :mod:`vecjac.jacobians` writes its arrays directly in CSR row order (no COO,
no sort) and hands them to :func:`assemble_csr`, which applies the package's two rules:

* **Index dtype.**  ``indices`` and ``indptr`` get :func:`vecjac.budget.index_dtype`
  (int32 when every index and ``nnz`` fit, else int64).  Builders already make them with that
  dtype, so the cast is free; scipy then neither converts nor scans them.
* **Ownership.**  Builders keep sparsity patterns (``indptr``, ``indices``) in read-only
  caches, so a second build with new values only fills ``data``.  A read-only array handed
  to :func:`assemble_csr` is taken to be such a cache's (or a read-only view of an input,
  such as a broadcast), and by default the returned matrix gets its own copy of it: in-place
  scipy operations on the matrix (``eliminate_zeros``, ``sort_indices``, writing ``data``)
  then work and cannot corrupt the cache or the caller's arrays.  Writeable arrays are
  freshly built by the builder and are used as they are.  Inside :func:`shared_patterns` the
  matrices use cached index arrays themselves, which saves a copy of every index array; the
  network's gradient path does this for Jacobians that are only multiplied and dropped.
  ``data`` is always the matrix's own (copied if read-only), shared patterns or not.

Caches must therefore store read-only arrays only (``array.setflags(write=False)``); every
cache in this package does.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..budget import index_dtype

__all__ = ["shared_patterns", "assemble_csr", "index_dtype"]

_SHARE = contextvars.ContextVar("vecjac_share_patterns", default=False)


@contextlib.contextmanager
def shared_patterns():
    """Within this block, builders return matrices that share the cached index arrays."""
    token = _SHARE.set(True)
    try:
        yield
    finally:
        _SHARE.reset(token)


def assemble_csr(data: NDArray, indices: NDArray, indptr: NDArray, shape) -> sp.csr_array:
    """``csr_array((data, indices, indptr), shape)`` with the package's dtype and ownership.

    Parameters
    ----------
    data, indices : ndarray, shape (nnz,)
        Values and column indices, already in CSR row order (nothing is sorted or summed).
    indptr : ndarray, shape (n_rows + 1,)
    shape : (n_rows, n_cols)

    Returns
    -------
    scipy.sparse.csr_array
        Index arrays of :func:`~vecjac.budget.index_dtype` ``(nnz, shape)``.  Outside
        :func:`shared_patterns` every array of it is writeable and its own: a read-only
        argument (a cached pattern, a broadcast view) is copied, a writeable one is used as
        it is.  Inside :func:`shared_patterns` read-only index arrays are used as they are.
    """
    shape = (int(shape[0]), int(shape[1]))
    itype = index_dtype(int(indptr[-1]), shape)
    share = _SHARE.get()
    indices = _index_array(indices, itype, share)
    indptr = _index_array(indptr, itype, share)
    data = np.ravel(data)
    if not data.flags.writeable:
        data = data.copy()
    return sp.csr_array((data, indices, indptr), shape=shape, copy=False)


def _index_array(array: NDArray, itype, share: bool) -> NDArray:
    array = np.ravel(array)
    if array.dtype != itype:
        return array.astype(itype)  # a new array, the matrix's own
    if array.flags.writeable or share:
        return array
    return array.copy()
