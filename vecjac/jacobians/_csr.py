"""CSR assembly from cached patterns, with one rule for who owns the index arrays.

Builders keep sparsity patterns (``indptr``, ``indices``) in read-only caches, so a second
build with new values only fills ``data``.  By default every returned matrix gets its own
copy of the index arrays: in-place scipy operations on it (``eliminate_zeros``,
``sort_indices``) then work and cannot corrupt the cache.  Inside :func:`shared_patterns`
the matrices use the cached arrays themselves, which saves a copy of every index array;
the network's gradient path does this for Jacobians that are only multiplied and dropped.
"""

from __future__ import annotations

import contextlib
import contextvars

import scipy.sparse as sp

__all__ = ["shared_patterns", "csr_from_pattern"]

_SHARE = contextvars.ContextVar("vecjac_share_patterns", default=False)


@contextlib.contextmanager
def shared_patterns():
    """Within this block, builders return matrices that share the cached index arrays."""
    token = _SHARE.set(True)
    try:
        yield
    finally:
        _SHARE.reset(token)


def csr_from_pattern(data, indices, indptr, shape) -> sp.csr_array:
    """``csr_array((data, indices, indptr))``, copying the index arrays unless shared."""
    if not _SHARE.get():
        indices, indptr = indices.copy(), indptr.copy()
    return sp.csr_array((data, indices, indptr), shape=shape, copy=False)
