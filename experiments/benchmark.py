"""Speed of vecjac's Jacobian builders, as ratios measured in one run.

Yardsticks (DESIGN.md section 4, issue 2):

* the direct path: one ``conv2d`` forward + ``conv2d_backward`` of the same layer;
* the memory-bandwidth floor: ``numpy.copy`` of as many bytes as the Jacobian's CSR arrays.

Targets: a build with a cached pattern within 3x of the copy floor, a build from scratch
within 10x.  Run ``python experiments/benchmark.py`` (``--quick`` for fewer repeats); it
prints a Markdown table that the README quotes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))  # sibling benchmark modules

import vecjac as vj  # noqa: E402
from vecjac.jacobians import clear_pattern_cache, conv_wrt_input, conv_wrt_kernel  # noqa: E402

CONV_LAYERS = {  # name: (input shape, kernel shape, stride, padding)
    "A": ((1, 28, 28), (8, 1, 3, 3), 1, 1),
    "B": ((8, 14, 14), (16, 8, 3, 3), 1, 1),
    "C": ((3, 32, 32), (16, 3, 5, 5), 2, 2),
}


def median_ms(fn, repeat: int, setup=None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeat`` runs (after one warm-up)."""
    fn() if setup is None else (setup(), fn())
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def copy_floor_ms(nbytes: int, repeat: int) -> float:
    """Time to copy ``nbytes`` once: the memory-bandwidth floor of building them."""
    buffer = np.ones(nbytes, dtype=np.uint8)
    return median_ms(lambda: np.copy(buffer), repeat)


def conv_rows(repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, (in_shape, k_shape, stride, padding) in CONV_LAYERS.items():
        A = rng.standard_normal(in_shape)
        K = rng.standard_normal(k_shape)
        Z = vj.direct.conv2d(A, K, None, stride, padding)
        dZ = rng.standard_normal(Z.shape)

        def direct_step(A=A, K=K, dZ=dZ, stride=stride, padding=padding):
            vj.direct.conv2d(A, K, None, stride, padding)
            vj.direct.conv2d_backward(dZ, A, K, stride, padding)

        direct_ms = median_ms(direct_step, repeat)
        builders = {
            "dZ/dA": lambda A=A, K=K, s=stride, p=padding: conv_wrt_input(K, A.shape, s, p),
            "dZ/dK": lambda A=A, K=K, s=stride, p=padding: conv_wrt_kernel(A, K.shape, s, p),
        }
        for jac_name, build in builders.items():
            J = build()
            copy_ms = copy_floor_ms(J.nbytes, repeat)
            scratch_ms = median_ms(build, repeat, setup=clear_pattern_cache)
            cached_ms = median_ms(build, repeat)
            rows.append({
                "layer": f"{name} {jac_name}",
                "shape": f"{J.shape[0]}x{J.shape[1]}",
                "nnz": J.nnz,
                "MB": J.nbytes / 1e6,
                "direct_ms": direct_ms,
                "copy_ms": copy_ms,
                "scratch_ms": scratch_ms,
                "cached_ms": cached_ms,
                "scratch/copy": scratch_ms / copy_ms,
                "cached/copy": cached_ms / copy_ms,
                "cached/direct": cached_ms / direct_ms,
            })
    return rows


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 50")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 50)
    print(f"vecjac {vj.__version__} benchmark, {datetime.date.today()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}; median of {repeat}")
    print("\nConvolution Jacobians (one sample, float64; times in ms):\n")
    print(markdown(conv_rows(repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
