"""The ``vecjac`` command: ``vecjac demo``, ``vecjac explain``.

Also runnable as ``python -m vecjac``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import direct
from .jacobians import conv_wrt_bias, conv_wrt_input, conv_wrt_kernel
from .symbolic import appendix_example, format_table
from .vec import unvec, vec

__all__ = ["main"]

_TOLERANCE = 1e-10


def demo(args: argparse.Namespace) -> int:
    """Build one conv layer's Jacobians and check them against the direct implementation."""
    rng = np.random.default_rng(args.seed)
    stride, padding = 2, 1
    A = rng.standard_normal((4, 2, 12, 12))  # N=4 samples, C_in=2, 12x12
    K = rng.standard_normal((3, 2, 3, 3))  # C_out=3
    b = rng.standard_normal(3)
    Z = direct.conv2d(A, K, b, stride, padding)
    Z_conv = direct.conv2d(A, K, None, stride, padding)  # Z = Z_conv + bias: each part linear
    dZ = rng.standard_normal(Z.shape)
    dA, dK, db = direct.conv2d_backward(dZ, A, K, stride, padding)

    print(f"conv layer: A {A.shape} * K {K.shape} + b, stride {stride}, padding {padding}"
          f" -> Z {Z.shape}")
    builds = {  # name: (builder, variable x, the part of Z linear in x, direct gradient)
        "dZ/dA": (lambda: conv_wrt_input(K, A.shape, stride, padding), A, Z_conv, dA),
        "dZ/dK": (lambda: conv_wrt_kernel(A, K.shape, stride, padding), K, Z_conv, dK),
        "dZ/db": (lambda: conv_wrt_bias(Z.shape), b, Z - Z_conv, db),
    }
    header = f"{'Jacobian':8} {'shape':>13} {'nnz':>8} {'density':>8} {'build ms':>9}"
    print(header + f" {'|J x - Z|':>10} {'|J^T dZ - grad|':>16}")
    print("(J x is compared with the part of Z that is linear in x, J^T dZ with direct backprop)")
    ok = True
    for name, (build, x, Z_x, grad) in builds.items():
        start = time.perf_counter()
        J = build()
        ms = 1e3 * (time.perf_counter() - start)
        err_forward = float(np.abs(J @ vec(x) - vec(Z_x)).max())
        err_backward = float(np.abs(unvec(J.T @ vec(dZ), x.shape) - grad).max())
        ok &= err_forward < _TOLERANCE and err_backward < _TOLERANCE
        shape = f"{J.shape[0]}x{J.shape[1]}"
        print(f"{name:8} {shape:>13} {J.nnz:>8} {100 * J.density:>7.2f}% {ms:>9.2f}"
              f" {err_forward:>10.1e} {err_backward:>16.1e}")
    print("all checks passed" if ok else f"CHECK FAILED (tolerance {_TOLERANCE})")
    return 0 if ok else 1


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
        help="build a conv layer's Jacobians and check them against direct conv",
        description="Build dZ/dA, dZ/dK, dZ/db of a 2-in, 3-out conv layer (stride 2, "
        "padding 1) on seeded random data; print shape, nnz, density, build time and the "
        "error against the direct forward and backward. Exit code 1 if a check fails.",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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
