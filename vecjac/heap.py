"""One hint to glibc's allocator, so that the gradient paths do not page-fault every step.

A gradient step allocates tens of MB (the forward's maps and unfolded inputs) and frees them
at its end.  glibc's ``malloc`` hands the top of its heap back to the operating system
whenever more than its *trim threshold* is free there, and the next step touches those pages
again, one minor page fault per 4 KiB: on the benchmark's network N, 6,500 faults a step,
29 ms instead of 12 ms.  The threshold adapts (``mallopt(3)``, "dynamic mmap threshold"):
when a block that was allocated with ``mmap`` is freed, the mmap threshold rises to its size
(up to 32 MiB on 64-bit systems) and the trim threshold to twice that.  A program that once
frees a large array gets these thresholds by itself; :func:`raise_heap_thresholds` frees one
block of 30 MiB, never touched (so no page of it is faulted), the first time a network runs.

Nothing is configured: no allocator setting is written, and a process that set
``MALLOC_TRIM_THRESHOLD_`` or similar (which turns the adaptation off) keeps its own.  Other
allocators (macOS, musl) see one short-lived allocation.  The cost is that up to 60 MiB of
freed memory stays with the process instead of going back to the system between steps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["raise_heap_thresholds"]

BLOCK_BYTES = 30 * 2**20  # below glibc's 32 MiB cap on the dynamic threshold
_raised = False


def raise_heap_thresholds() -> None:
    """Allocate and free one untouched block of ``BLOCK_BYTES``, once per process."""
    global _raised
    if not _raised:
        _raised = True
        block = np.empty(BLOCK_BYTES, dtype=np.uint8)
        del block
