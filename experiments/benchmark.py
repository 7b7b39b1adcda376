"""Speed of vecjac's Jacobian builders, as ratios measured in one run.

Yardsticks:

* the direct path: one ``conv2d`` forward + ``conv2d_backward`` of the same layer;
* the memory-bandwidth floor: ``numpy.copy`` of as many bytes as the Jacobian's CSR arrays.

Conv builds are timed three ways: from scratch (pattern cache cleared), with the pattern
cached (the default: the matrix gets its own copy of the index arrays), and with the pattern
cached inside ``shared_patterns()`` (the matrix uses the cache's arrays, as the network's
gradient path does).

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
import scipy

sys.path.insert(0, os.path.dirname(__file__))  # sibling benchmark modules

import bench_beyond  # noqa: E402
import bench_chain  # noqa: E402
import bench_layers  # noqa: E402
from bench_common import cnn, interleaved_ms, optional_torch, torch_logits  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac.budget import csr_nbytes  # noqa: E402
from vecjac.jacobians import (  # noqa: E402
    clear_pattern_cache,
    conv_wrt_input,
    conv_wrt_kernel,
    shared_patterns,
)

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
            "dZ/dA": lambda A=A, K=K, s=stride, p=padding: conv_wrt_input(
                K, A.shape, s, p, structured=False),
            "dZ/dK": lambda A=A, K=K, s=stride, p=padding: conv_wrt_kernel(
                A, K.shape, s, p, structured=False),
        }
        for jac_name, build in builders.items():
            J = build()
            copy_ms = copy_floor_ms(J.nbytes, repeat)
            scratch_ms = median_ms(build, repeat, setup=clear_pattern_cache)
            cached_ms = median_ms(build, repeat)
            with shared_patterns():  # as the network's gradient path builds them
                shared_ms = median_ms(build, repeat)
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
                "shared_ms": shared_ms,
                "shared/copy": shared_ms / copy_ms,
            })
    return rows


TORCH_REFERENCE_MS = 4.7  # PyTorch CPU autograd on network N, float32, as first quoted
PAIR_RUNS = 3  # the network rows time the direct and Jacobian-form steps 3x repeat times

NETWORKS = {  # name: (input shape, CNN settings), each on a batch of 64
    "N (1x28x28, conv 8, 16)": ((1, 28, 28), dict(channels=(8, 16))),
    "N3 (1x28x28, conv 8, 16, 32)": ((1, 28, 28), dict(channels=(8, 16, 32))),
    "L (3x32x32, conv 32, 64)": ((3, 32, 32), dict(channels=(32, 64))),
}


def network_rows(repeat: int) -> list[dict]:
    """The note's network N, a 3-conv network N3 and a larger network L, batch 64."""
    return [_network_row(name, shape, settings, repeat)
            for name, (shape, settings) in NETWORKS.items()]


def _flat_bytes(J) -> int:
    """Bytes of ``J``'s flat CSR form, from its shape and nnz (nothing is built)."""
    return csr_nbytes(J.nnz, J.shape[0], J.dtype.itemsize, J.shape[1])


def _network_row(name: str, input_shape, settings: dict, repeat: int) -> dict:
    import tracemalloc

    rng = np.random.default_rng(0)
    net = cnn(input_shape, **settings)
    X, y = rng.random((64,) + input_shape), rng.integers(0, 10, 64)
    grad = {m: (lambda m=m: net.gradients(X, y, method=m)) for m in ("direct", "jacobian",
                                                                      "paper")}
    # the two NumPy paths take turns run by run (no pause needed between them), over
    # PAIR_RUNS x repeat runs: their ratio is the target's and small differences matter
    pair = interleaved_ms({"direct": grad["direct"], "jacobian": grad["jacobian"]},
                          PAIR_RUNS * repeat, block=1, settle=0)
    direct_ms, cached_ms = pair["direct"], pair["jacobian"]
    torch_step = _torch_step(net, X, y)
    torch_ms, direct_vs_torch = TORCH_REFERENCE_MS, direct_ms / TORCH_REFERENCE_MS
    if torch_step is not None:  # in blocks after a pause: each library's threads settle
        versus = interleaved_ms({"direct": grad["direct"], "torch": torch_step}, repeat)
        torch_ms, direct_vs_torch = versus["torch"], versus["direct"] / versus["torch"]
    paper_ms = median_ms(grad["paper"], max(3, repeat // 5))
    jacobians = net.jacobians(X, y)
    nbytes = sum(J.nbytes for J in jacobians.values())
    flat = sum(_flat_bytes(J) for J in jacobians.values())
    tracemalloc.start()
    grad["jacobian"]()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = {
        "network": name,
        "direct_ms": direct_ms,
        "jacobian_ms": cached_ms,
        "paper_ms": paper_ms,
        "jacobian/direct": cached_ms / direct_ms,
        "MB": nbytes / 1e6,
        "flat_MB": flat / 1e6,
        "MB/flat_MB": nbytes / flat,
        "peak_MB": peak / 1e6,
        "peak/MB": peak / nbytes,
        "torch_ms": torch_ms,
        "direct/torch": direct_vs_torch,
    }
    if flat < 2e9:  # dZ2/dX: through the factors (order="optimal") against flat reverse products
        e2e = {s: median_ms(lambda s=s: net.jacobian(X, "Z2", "X", structured=s,
                                                     order="optimal" if s else "reverse"),
                            max(3, repeat // 5)) for s in (True, False)}
        row.update({"dZ2/dX_ms": e2e[True], "dZ2/dX_flat_ms": e2e[False],
                    "flat/structured": e2e[False] / e2e[True]})
    return row


def _torch_step(net, X, y):
    """One step of PyTorch CPU autograd on the same network (float64), if torch is
    installed; else ``None`` (the row then quotes the reference, 4.7 ms, float32, N)."""
    torch = optional_torch()
    if torch is None:
        return None
    p = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step():  # the last layer, softmax, is fused into cross_entropy
        logits = torch_logits(torch, net, p, Xt)
        torch.nn.functional.cross_entropy(logits, yt, reduction="sum").backward()

    return step


def _malloc_settings() -> str:
    """The glibc allocator tunables set in the environment (the README explains why they
    matter: freed large temporaries go back to the OS and are page-faulted in again)."""
    names = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
    set_ = [f"{n}={os.environ[n]}" for n in names if n in os.environ]
    return ", ".join(set_) or "defaults"


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return ""
    return f", torch {torch.__version__}"


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown_rows(rows: list[dict]) -> str:
    """Rows with different keys (a network too large for the flat comparison) in one table."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return markdown([{k: row.get(k, "-") for k in keys} for row in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 50")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 50)
    print(f"vecjac {vj.__version__} benchmark, {datetime.date.today()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}{_torch_version()}; median of {repeat}; glibc malloc: "
          f"{_malloc_settings()}")
    print("\nConvolution Jacobians, flat builds (one sample, float64; times in ms):\n")
    print(markdown(conv_rows(repeat)))
    print("\nPooling and activation Jacobians, flat builds, batch 64x16x28x28 (times in ms):\n")
    print(markdown(bench_layers.rows(repeat)))
    print("\nNetworks, batch 64: gradient of the summed loss three ways, bytes held by the "
          "Jacobians (structured) against their flat CSR bytes, the end-to-end dZ2/dX through "
          "the factors in the optimal order against flat products in reverse order (times in "
          f"ms; direct and jacobian take turns run by run, {PAIR_RUNS}x the repeats; "
          "direct/torch is from direct and PyTorch's CPU autograd taking turns in blocks, "
          f"float64, if torch is installed, else against the float32 reference "
          f"{TORCH_REFERENCE_MS} ms):\n")
    print(_markdown_rows(network_rows(repeat)))
    print("\nEnd-to-end Jacobians of network N (batch 64) in three orders, as net.jacobian "
          "is called (times in ms):\n")
    chain = bench_chain.chain_order_rows(max(3, repeat // 5))
    print(markdown([{k: row[k] for k in bench_chain.KEYS} for row in chain]))
    print("\nBeyond gradients (times in ms; PyTorch and BackPACK when installed, results "
          "checked equal first):\n")
    print(_markdown_rows(bench_beyond.beyond_rows(max(3, repeat // 2))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
