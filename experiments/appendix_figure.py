"""The note's appendix, drawn (README figure 2).

Section 4 of the note convolves ``A`` (3x4) with ``beta`` (2x2), padding (1, 1), stride
(1, 2), and writes out ``dvecZ/dvecbeta`` (12 x 4, entries of ``A``) and ``dvecZ/dvecA``
(12 x 12, entries of ``beta``).  vecjac reads both from the gather maps of the convolution
builder (:mod:`vecjac.symbolic`); this script draws them with every non-zero cell labelled
by its symbol, and checks that substituting numbers for the symbols gives exactly the
numeric Jacobians ``conv_wrt_kernel`` and ``conv_wrt_input`` build.

Writes ``appendix.png`` (both matrices side by side; also what ``vecjac explain --png``
draws), ``appendix_dZ_dbeta.png`` and ``appendix_dZ_dA.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import plot
from vecjac.symbolic import appendix_example, format_table

STRIDE, PADDING = (1, 2), (1, 1)


def substitute(cells, symbols: dict[str, float]) -> np.ndarray:
    """The numeric matrix of a symbolic one: each ``a_rs`` / ``beta_rs`` by its value."""
    return np.array([[symbols.get(cell, 0.0) for cell in row] for row in cells])


def check_against_builders(example, seed: int = 0) -> float:
    """Largest difference between the symbolic matrices, evaluated, and the built ones."""
    rng = np.random.default_rng(seed)
    A, beta = rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 1, 2, 2))
    values = {label: v for label, v in zip(example.a_labels, vj.vec(A), strict=True)}
    values |= {label: v for label, v in zip(example.beta_labels, vj.vec(beta), strict=True)}
    dZ_dbeta = vj.jacobians.conv_wrt_kernel(A, beta.shape, STRIDE, PADDING).toarray()
    dZ_dA = vj.jacobians.conv_wrt_input(beta, A.shape, STRIDE, PADDING).toarray()
    return max(np.abs(substitute(example.dZ_dbeta, values) - dZ_dbeta).max(),
               np.abs(substitute(example.dZ_dA, values) - dZ_dA).max())


def main(argv: list[str] | None = None) -> int:
    args = figure_args(__doc__, "same figures (already fast)", argv)

    s = appendix_example()
    print("dvecZ/dvecbeta (12 x 4), entries of A:\n")
    print(format_table(s.dZ_dbeta, s.row_labels, s.beta_labels))
    print("\ndvecZ/dvecA (12 x 12), entries of beta:\n")
    print(format_table(s.dZ_dA, s.row_labels, s.a_labels))
    error = check_against_builders(s)
    print(f"\nsymbols evaluated vs conv_wrt_kernel / conv_wrt_input: max difference {error:.1e}")

    plot.appendix_figure(s, args.out / "appendix.png", dpi=100)
    plot.annotated_matrix(s.dZ_dbeta, s.row_labels, s.beta_labels,
                          args.out / "appendix_dZ_dbeta.png", dpi=100,
                          title=r"$\partial\,\mathrm{vec}\,Z / \partial\,\mathrm{vec}\,\beta$"
                          "  (12 × 4): entries of A")
    plot.annotated_matrix(s.dZ_dA, s.row_labels, s.a_labels, args.out / "appendix_dZ_dA.png",
                          dpi=100,
                          title=r"$\partial\,\mathrm{vec}\,Z / \partial\,\mathrm{vec}\,A$"
                          "  (12 × 12): entries of β")
    print(f"wrote appendix.png, appendix_dZ_dbeta.png, appendix_dZ_dA.png to {args.out}/")
    return 0 if error == 0.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
