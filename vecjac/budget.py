"""A memory budget for Jacobians, checked before anything large is allocated.

Every builder computes the exact number of stored entries of what it is about to build from
shapes alone (the sparsity pattern depends only on shapes, stride and padding), turns it into
bytes with :func:`csr_nbytes`, and calls :func:`check_budget` before allocating.  The default
budget is 4 GiB; raise it for one call with the builder's ``max_bytes=`` argument or for the
whole process with :func:`set_memory_budget`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MemoryBudgetError", "set_memory_budget", "get_memory_budget", "csr_nbytes"]

_DEFAULT_BUDGET = 4 * 2**30
_budget = _DEFAULT_BUDGET


class MemoryBudgetError(ValueError):
    """A Jacobian would need more memory than the budget allows."""


def set_memory_budget(nbytes: int | None) -> int:
    """Set the process-wide budget in bytes (``None`` restores 4 GiB); return the old one."""
    global _budget
    old = _budget
    if nbytes is None:
        _budget = _DEFAULT_BUDGET
        return old
    if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, bool) or nbytes <= 0:
        raise ValueError(f"memory budget must be a positive int of bytes, got {nbytes!r}")
    _budget = int(nbytes)
    return old


def get_memory_budget() -> int:
    """The process-wide budget in bytes."""
    return _budget


def csr_nbytes(nnz: int, n_rows: int, itemsize: int = 8) -> int:
    """Bytes of a CSR array: data, int32-or-int64 indices, and ``indptr``."""
    index_size = 4 if max(nnz, n_rows) < 2**31 else 8
    return int(nnz) * (itemsize + index_size) + (int(n_rows) + 1) * index_size


def check_csr_budget(
    nnz: int, n_rows: int, dtype, what: str, max_bytes: int | None = None
) -> type:
    """:func:`check_budget` for a CSR array of ``nnz`` entries and ``n_rows`` rows of
    ``dtype``; returns the index dtype that ``csr_nbytes`` assumed (int32 when it fits)."""
    nbytes = csr_nbytes(nnz, n_rows, np.dtype(dtype).itemsize)
    check_budget(nbytes, f"{what} Jacobian ({nnz} stored entries)", max_bytes)
    return np.int32 if max(nnz, n_rows) < 2**31 else np.int64


def check_budget(nbytes: int, what: str, max_bytes: int | None = None) -> None:
    """Raise :class:`MemoryBudgetError` if ``nbytes`` exceeds the budget.

    ``max_bytes`` overrides the process-wide budget for this call.
    """
    limit = _budget if max_bytes is None else int(max_bytes)
    if nbytes > limit:
        raise MemoryBudgetError(
            f"{what} would need about {_human(nbytes)} ({nbytes} bytes), over the memory "
            f"budget of {_human(limit)}; pass max_bytes={nbytes} (or more) to this call, or "
            f"raise the budget for the process with vecjac.set_memory_budget({nbytes})"
        )


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{nbytes} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
