"""A memory budget for Jacobians, checked before anything large is allocated.

Every builder computes the exact number of stored entries of what it is about to build from
shapes alone (the sparsity pattern depends only on shapes, stride and padding), turns it into
bytes with :func:`csr_nbytes`, and calls :func:`check_budget` before allocating.  The default
budget is 4 GiB; raise it for one call with the builder's ``max_bytes=`` argument or for the
whole process with :func:`set_memory_budget`.

The module also owns the index-dtype rule of every CSR array the builders make,
:func:`index_dtype` (int32 when every index and ``nnz`` fit, else int64), since the bytes a
Jacobian needs depend on it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MemoryBudgetError",
    "set_memory_budget",
    "get_memory_budget",
    "csr_nbytes",
    "index_dtype",
]

_DEFAULT_BUDGET = 4 * 2**30
_INT32_MAX = int(np.iinfo(np.int32).max)
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


def index_dtype(nnz: int, shape: tuple[int, int]) -> type[np.signedinteger]:
    """The index dtype of a CSR array with ``nnz`` stored entries and ``shape``.

    ``np.int32`` when every value its index arrays can hold fits in int32: the column
    indices (below ``shape[1]``), the row pointers (at most ``nnz``) and, as scipy also
    demands, both dimensions; ``np.int64`` otherwise.  This is the one rule of the package:
    every builder makes its index arrays with this dtype (so scipy neither converts nor scans
    them) and :func:`csr_nbytes` counts index bytes with it.

    Examples
    --------
    >>> index_dtype(10, (4, 5)).__name__
    'int32'
    >>> index_dtype(2**31, (4, 5)).__name__
    'int64'
    """
    largest = max(int(nnz), *map(int, shape))
    return np.int32 if largest <= _INT32_MAX else np.int64


def csr_nbytes(nnz: int, n_rows: int, itemsize: int = 8, n_cols: int = 0) -> int:
    """Bytes of a CSR array: data, indices and ``indptr`` of :func:`index_dtype`."""
    index_size = np.dtype(index_dtype(nnz, (n_rows, n_cols))).itemsize
    return int(nnz) * (itemsize + index_size) + (int(n_rows) + 1) * index_size


def check_csr_budget(
    nnz: int, shape: tuple[int, int], dtype, what: str, max_bytes: int | None = None
) -> type[np.signedinteger]:
    """:func:`check_budget` for a CSR array of ``nnz`` entries, ``shape`` and ``dtype``;
    returns its :func:`index_dtype`, the one :func:`csr_nbytes` counted with."""
    n_rows, n_cols = (int(n) for n in shape)
    nbytes = csr_nbytes(nnz, n_rows, np.dtype(dtype).itemsize, n_cols)
    check_budget(nbytes, f"{what} Jacobian ({nnz} stored entries)", max_bytes)
    return index_dtype(nnz, (n_rows, n_cols))


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
