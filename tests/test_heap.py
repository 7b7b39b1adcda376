"""The one allocator hint (``vecjac.heap``): after it, a gradient step re-uses the heap pages
of the step before instead of faulting fresh ones in (glibc's dynamic mmap threshold)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from vecjac import heap

STEPS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import vecjac as vj
    if sys.argv[1] == "without":  # the hint counted as given: glibc's defaults stay
        vj.heap._raised = True
    net = vj.CNN(input_shape=(1, 28, 28), channels=(8, 16), kernel_size=3, padding=1,
                 activation="sigmoid", pool="avg", n_out=10, output="softmax",
                 loss="cross_entropy", seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 1, 28, 28)), rng.integers(0, 10, 64)
    for _ in range(3):
        net.gradients(X, y, method="direct")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        net.gradients(X, y, method="direct")
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _faults_per_step(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                         check=True, env=env)
    return float(out.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="the hint concerns glibc's malloc (Linux)")
def test_a_step_of_network_n_faults_no_fresh_pages_after_the_hint():
    """A step of N holds about 25 MB at its peak: 6,000 pages if they were faulted in again
    every step, as they are with glibc's starting thresholds (measured too, so that the test
    shows the hint is what makes the difference)."""
    with_hint, without = _faults_per_step("with"), _faults_per_step("without")
    assert with_hint < 200, with_hint
    assert with_hint <= without, (without, with_hint)
    if not _huge_pages_always():  # 4 KiB pages: every freed page came back as a fault
        assert without > 10 * max(with_hint, 100), (without, with_hint)


def _huge_pages_always() -> bool:
    """Whether the kernel backs all anonymous memory with 2 MiB pages (then a re-faulted
    heap costs 512 times fewer faults, and counting them tells less)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


def test_the_hint_is_one_uninitialised_block_once(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_raised", False)
    monkeypatch.setattr(heap, "np", SimpleNamespace(
        empty=lambda *a, **k: calls.append((a, k)), uint8=np.uint8))
    heap.raise_heap_thresholds()
    heap.raise_heap_thresholds()
    assert calls == [((heap.BLOCK_BYTES,), {"dtype": np.uint8})]
