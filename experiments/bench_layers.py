"""Benchmark rows for pooling and activation Jacobians: their build speed against yardsticks.

For a batch of 64 feature maps of 16 x 28 x 28 (float64), each layer reports the time to
build its stacked Jacobian, the direct forward + backward of the same layer, and a copy of as
many bytes as the Jacobian's CSR arrays (the floor: a builder has to write at least that
much).  Times are medians of ``repeat`` runs, in milliseconds.

Run ``python experiments/bench_layers.py`` for a table; ``experiments/benchmark.py`` calls
:func:`rows`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import vecjac as vj

SHAPE = (64, 16, 28, 28)
POOLS = ("avg", "max", "l2")
KEYS = ("layer", "nnz", "MB", "build_ms", "direct_ms", "copy_ms", "build/direct", "build/copy")
ACTIVATIONS = ("sigmoid", "relu")


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _row(layer: str, build, direct, repeat: int) -> dict:
    J = build()  # warm-up; also fills the pattern cache, as a training loop would
    buffer = np.ones(J.nbytes, dtype=np.uint8)
    build_ms = _median_ms(build, repeat)
    direct_ms = _median_ms(direct, repeat)
    copy_ms = _median_ms(lambda: np.copy(buffer), repeat)
    return {
        "layer": layer,
        "nnz": J.nnz,
        "MB": J.nbytes / 1e6,
        "build_ms": build_ms,
        "direct_ms": direct_ms,
        "copy_ms": copy_ms,
        "build/direct": build_ms / direct_ms,
        "build/copy": build_ms / copy_ms,
    }


def rows(repeat: int = 20) -> list[dict]:
    """One row per layer: pooling (2 x 2) avg / max / l2, then sigmoid and ReLU activation."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal(SHAPE)
    out = []
    for kind in POOLS:
        dA = np.ones(vj.direct.check_pool_args(SHAPE, kind, 2).output_shape)
        out.append(
            _row(
                f"pool {kind} 2x2",
                lambda kind=kind: vj.jacobians.pool(X, kind, 2, structured=False),
                lambda kind=kind, dA=dA: (
                    vj.direct.pool2d(X, kind, 2),
                    vj.direct.pool2d_backward(dA, X, kind, 2),
                ),
                repeat,
            )
        )
    for kind in ACTIVATIONS:
        out.append(
            _row(
                f"activation {kind}",
                lambda kind=kind: vj.jacobians.activation(X, kind, structured=False),
                lambda kind=kind: (
                    vj.direct.activate(X, kind),
                    vj.direct.activate_backward(X, X, kind),
                ),
                repeat,
            )
        )
    return out


def main() -> None:
    print(f"batch {SHAPE}, float64, medians in ms")
    print(" | ".join(f"{key:>18}" for key in KEYS))
    for row in rows():
        cells = (row[key] for key in KEYS)
        print(" | ".join(f"{v:>18.2f}" if isinstance(v, float) else f"{v:>18}" for v in cells))


if __name__ == "__main__":
    main()
