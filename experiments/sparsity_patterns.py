"""Sparsity patterns of every named Jacobian of the note's default CNN (README figure 1).

The default network, ``vj.CNN()``: input 1x8x8, conv 4x1x3x3 (padding 1), sigmoid, 2x2
average pooling, conv 8x4x3x3 (padding 1), sigmoid, 2x2 average pooling, FC 32 -> 10,
softmax, cross-entropy.  It is fed a batch of two shipped digits, so every Jacobian shows
the sample boundary (red lines) as well as the channel blocks (grey lines).

Writes, into ``--out`` (default ``./vecjac-out/figures``; ``--out experiments/figures``
refreshes the README's copies):

* ``sparsity/<dOF_dWRT>.png``: one spy plot per named Jacobian of the chain, titled with the
  note's symbol (``∂ vec Z_2 / ∂ vec A_1``), axes saying what rows and columns index, shape /
  nnz / density in the caption;
* ``sparsity_chain.png``: all of them in one figure, in the order of the chain;
* ``sparsity_end_to_end.png``: the end-to-end products ``dA3/dX``, ``dA3/dK1``, ``dZ2/dX``.

Run ``python experiments/sparsity_patterns.py`` (``--quick``: only two of the single plots).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import plot

END_TO_END = [("A3", "X"), ("A3", "K1"), ("Z2", "X")]
QUICK_SINGLES = ("dZ2/dA1", "dZ1/dK1")


def file_name(name: str) -> str:
    """``"dZ2/dA1"`` -> ``"dZ2_dA1.png"``."""
    return name.replace("/", "_") + ".png"


def print_table(jacobians: dict) -> None:
    print(f"{'symbol':18} {'shape':>11} {'nnz':>7} {'density':>9} {'CSR KB':>8} {'dense KB':>9}")
    for name, J in jacobians.items():
        rows, cols = J.shape
        print(f"{plot.symbol(name):18} {f'{rows}x{cols}':>11} {J.nnz:>7} "
              f"{100 * J.density:>8.2f}% {J.nbytes / 1e3:>8.1f} {rows * cols * 8 / 1e3:>9.1f}")


def main(argv: list[str] | None = None) -> int:
    args = figure_args(__doc__, "draw fewer single plots", argv)
    (args.out / "sparsity").mkdir(parents=True, exist_ok=True)

    data = vj.data.load_digits()
    X, y = data.X_train[:2], data.y_train[:2]
    net = vj.CNN()
    print(f"{net}\nbatch of {len(X)} digits; every named Jacobian of the chain:\n")
    jacobians = net.jacobians(X, y)
    print_table(jacobians)

    singles = [n for n in jacobians if not args.quick or n in QUICK_SINGLES]
    for name in singles:
        plot.save_spy(jacobians[name], args.out / "sparsity" / file_name(name), dpi=150)
    plot.chain_figure(jacobians, args.out / "sparsity_chain.png", dpi=100, panel=3.6,
                      title="Every Jacobian of the chain of vj.CNN(), from the loss down, "
                      "on 2 digits   (grey lines: channels, red lines: samples / kernels)")

    products = [net.jacobian(X, of, wrt, y=y) for of, wrt in END_TO_END]
    print("\nend-to-end products (sparse chain rule):\n")
    print_table({J.name: J for J in products})
    plot.chain_figure(products, args.out / "sparsity_end_to_end.png", columns=3, dpi=100,
                      panel=4.6, title="End-to-end Jacobians as products along the chain, "
                      "on 2 digits   (grey lines: channels, red lines: samples / kernels)")
    print(f"\nwrote {len(singles)} single plots to {args.out / 'sparsity'}/, "
          f"sparsity_chain.png and sparsity_end_to_end.png to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
