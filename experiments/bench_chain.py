"""Benchmark rows for ``net.jacobian(order=...)``: reverse, forward and optimal bracketing.

Network: the note's CNN on 28 x 28 inputs (channels 8 and 16, 3 x 3 kernels with padding 1,
sigmoid, 2 x 2 average pooling, 10 softmax outputs), a batch of 64 random inputs, float64.
For ``dA3/dX``, ``dA3/dK1`` and ``dZ2/dX`` each order is timed as a user calls it,
``net.jacobian(X, of, wrt, order=...)``: forward pass, building the chain's Jacobians and
the products; for ``"optimal"`` also the cost model and the dynamic programme.  Times are
medians of ``repeat`` runs in milliseconds, the orders interleaved within each run.

Target: ``optimal / min(reverse, forward) <= 1.1`` (choosing the bracketing must not cost
more than it saves).  Run ``python experiments/bench_chain.py`` for a Markdown table;
``experiments/benchmark.py`` can call :func:`chain_order_rows`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))  # bench_common
from bench_common import cnn, interleaved_ms  # noqa: E402

TARGETS = (("A3", "X"), ("A3", "K1"), ("Z2", "X"))
ORDERS = ("reverse", "forward", "optimal")
BATCH = 64
TARGET_RATIO = 1.1
KEYS = ("Jacobian", "reverse_ms", "forward_ms", "optimal_ms", "optimal/best", "madds/best")


def chain_order_rows(repeat: int = 5) -> list[dict]:
    """One row per target: median ms of each order and ``optimal / min(reverse, forward)``.

    Each row also holds the multiply-adds of each order as performed (``madds``, from the
    report), the optimal bracketing, and ``ok`` (the ratio within ``TARGET_RATIO``).
    """
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    net = cnn()
    X = np.random.default_rng(0).standard_normal((BATCH,) + net.input_shape)
    rows = []
    for of, wrt in TARGETS:
        reports = {}
        for order in ORDERS:  # warm-up (pattern caches), and the reports, untimed
            _, reports[order] = net.jacobian(X, of, wrt, order=order, report=True)
        ms = interleaved_ms({o: lambda o=o, of=of, wrt=wrt: net.jacobian(X, of, wrt, order=o)
                             for o in ORDERS}, repeat, block=1, settle=0)
        best = min(("reverse", "forward"), key=ms.get)
        madds = {order: reports[order].performed_cost for order in ORDERS}
        ratio = ms["optimal"] / ms[best]
        rows.append({
            "Jacobian": f"d{of}/d{wrt}",
            **{f"{order}_ms": ms[order] for order in ORDERS},
            "best": best,
            "optimal/best": ratio,
            "madds": madds,
            "madds/best": madds["optimal"] / min(madds["reverse"], madds["forward"]),
            "bracketing": reports["optimal"].bracketing,
            "ok": ratio <= TARGET_RATIO,
        })
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table, then each optimal bracketing."""
    head = ("| Jacobian | reverse ms | forward ms | optimal ms | optimal / min(rev, fwd) | "
            f"target <= {TARGET_RATIO} | multiply-adds optimal / min(rev, fwd) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        lines.append(
            f"| {r['Jacobian']} | {r['reverse_ms']:.1f} | {r['forward_ms']:.1f} | "
            f"{r['optimal_ms']:.1f} | {r['optimal/best']:.2f} (vs {r['best']}) | "
            f"{'met' if r['ok'] else 'missed'} | {r['madds/best']:.2f} |")
    lines.append("")
    lines += [f"- {r['Jacobian']}: `{r['bracketing']}`" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per order (5)")
    args = parser.parse_args(argv)
    print(f"vj.CNN 28x28, channels (8, 16), batch {BATCH}, float64; median of {args.repeat} "
          "calls of net.jacobian (forward pass, build and products), ms\n")
    print(markdown(chain_order_rows(args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
