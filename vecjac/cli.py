"""The ``vecjac`` command: ``vecjac demo``, ``vecjac explain``.

Also runnable as ``python -m vecjac``.
"""

from __future__ import annotations

import argparse
import sys

from .symbolic import appendix_example, format_table

__all__ = ["main"]


def demo(args: argparse.Namespace) -> int:
    """The main job: the note's CNN on real digits, Jacobians, checks, training, figures."""
    from .demo import run

    return run(args.out, epochs=args.epochs, seed=args.seed, progress=not args.no_progress)


def explain(args: argparse.Namespace) -> int:
    """Print the note's appendix example with every entry as a symbol."""
    s = appendix_example()
    print("The note's appendix (section 4): A is 3x4, beta is 2x2, padding (1, 1), stride (1, 2).")
    print("Z = A * beta is 4x3 (rep.2):\n")
    print(format_table(s.Z))
    print("\ndvecZ/dvecbeta (12 x 4): rows vec(Z), columns vec(beta), entries from A\n")
    print(format_table(s.dZ_dbeta, s.row_labels, s.beta_labels))
    print("\ndvecZ/dvecA (12 x 12): rows vec(Z), columns vec(A), entries from beta\n")
    print(format_table(s.dZ_dA, s.row_labels, s.a_labels))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vecjac",
        description="Explicit sparse Jacobians of CNN back-propagation (vec, numerator layout).",
        epilog="examples:\n  vecjac demo\n  vecjac explain",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo",
        help="the note's CNN on real digits: Jacobians, gradient checks, training, figures",
        description="Build the default CNN for the shipped 8x8 digits; print every named "
        "Jacobian of the chain (symbol, shape, nnz, density, build time); check the three "
        "gradient methods against each other and central differences; train with "
        "Jacobian-form gradients; write sparsity patterns and the loss curve as PNG files. "
        "Exit code 1 if a check fails or test accuracy is under 90%%.",
        epilog="example:\n  vecjac demo --out /tmp/figures --epochs 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="vecjac-out", help="folder for the PNG files "
                   "(default ./vecjac-out)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=demo)
    p = sub.add_parser(
        "explain",
        help="print the note's appendix example symbolically",
        description="Print the appendix of the note: Z = A * beta entry by entry, and the "
        "symbolic matrices dvecZ/dvecbeta (12x4) and dvecZ/dvecA (12x12), 1-based.",
    )
    p.set_defaults(func=explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
