"""Symbolic convolution Jacobians: every entry labelled by the symbol it copies.

The gather map of a convolution pattern (:mod:`vecjac.jacobians.conv`) says, for every stored
entry of ``dvecZ/dvecA``, which kernel entry it copies, and for every entry of
``dvecZ/dvecbeta``, which input entry.  Reading those maps with 1-based names reproduces the
note's appendix (section 4): ``rep.2`` (each ``z_pq`` as a sum of products), the 12 x 4 matrix
``dvecZ/dvecbeta`` whose entries are ``a_rs`` and the 12 x 12 matrix ``dvecZ/dvecA`` whose
entries are ``beta_rs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .jacobians.conv import conv_pattern
from .vec import as_pair

__all__ = ["SymbolicConv", "symbolic_conv", "appendix_example", "format_table", "to_latex"]


@dataclass(frozen=True)
class SymbolicConv:
    """The symbolic forward and Jacobians of a one-channel convolution ``Z = A * beta``.

    Attributes
    ----------
    Z : list of list of str, shape (h_z, w_z)
        ``Z[p][q]`` is ``z_{p+1,q+1}`` as a sum of products, terms in the kernel's row-major
        order, as the note's rep.2 writes them (``"0"`` where every window entry is padding).
    dZ_dbeta : list of list of str, shape (h_z w_z, h_k w_k)
        ``dvecZ/dvecbeta``: ``a_rs`` or ``"0"``; rows in ``vec(Z)`` order, columns in
        ``vec(beta)`` order.
    dZ_dA : list of list of str, shape (h_z w_z, h_a w_a)
        ``dvecZ/dvecA``: ``beta_rs`` or ``"0"``.
    row_labels, beta_labels, a_labels : list of str
        ``z_pq`` for each row, ``beta_rs`` and ``a_rs`` for each column, in vec order.
    """

    Z: list
    dZ_dbeta: list
    dZ_dA: list
    row_labels: list
    beta_labels: list
    a_labels: list

    def to_latex(self) -> str:
        """The three as LaTeX (``amsmath``): ``Z`` entry by entry (the note's rep.2), then
        ``dvecZ/dvecbeta`` and ``dvecZ/dvecA`` as ``bmatrix`` environments."""
        d = r"\frac{\partial\,\mathrm{vec}\,Z}{\partial\,\mathrm{vec}\,"
        k = _latex_symbol(self.beta_labels[0].split("_")[0])
        a = _latex_symbol(self.a_labels[0].split("_")[0])
        return "\n\n".join([
            "Z = " + to_latex(self.Z),
            f"{d}{k}}} = " + to_latex(self.dZ_dbeta),
            f"{d}{a}}} = " + to_latex(self.dZ_dA),
        ])


def symbolic_conv(
    input_size, kernel_size, stride=1, padding=0, a: str = "a", k: str = "beta"
) -> SymbolicConv:
    """Label every entry of a one-channel convolution's Jacobians by the symbol it copies.

    Parameters
    ----------
    input_size : int or (h_a, w_a)
    kernel_size : int or (h_k, w_k)
    stride, padding : int or pair
    a, k : str
        Names of the input and kernel entries (``a_rs``, ``beta_rs``; 1-based subscripts).
    """
    ha, wa = as_pair(input_size, "input_size", 1)
    hk, wk = as_pair(kernel_size, "kernel_size", 1)
    pattern = conv_pattern((1, ha, wa), (1, 1, hk, wk), stride, padding)
    hz, wz = pattern.output_shape[1:]
    a_labels, beta_labels = _vec_labels(a, ha, wa), _vec_labels(k, hk, wk)
    row_labels = _vec_labels("z", hz, wz)

    n_rows = hz * wz
    dZ_dbeta = [["0"] * (hk * wk) for _ in range(n_rows)]
    dZ_dA = [["0"] * (ha * wa) for _ in range(n_rows)]
    terms: list[list[tuple[int, str]]] = [[] for _ in range(n_rows)]
    row_of_entry = np.repeat(np.arange(n_rows), np.diff(pattern.indptr))
    for row, ai, ki in zip(row_of_entry, pattern.a_index, pattern.k_index, strict=True):
        dZ_dbeta[row][ki] = a_labels[ai]
        dZ_dA[row][ai] = beta_labels[ki]
        u, v = ki % hk, ki // hk
        terms[row].append((u * wk + v, f"{a_labels[ai]} {beta_labels[ki]}"))

    Z = [["0"] * wz for _ in range(hz)]
    for row in range(n_rows):
        p, q = row % hz, row // hz
        if terms[row]:
            Z[p][q] = " + ".join(text for _, text in sorted(terms[row]))
    return SymbolicConv(Z, dZ_dbeta, dZ_dA, row_labels, beta_labels, a_labels)


def appendix_example() -> SymbolicConv:
    """The note's appendix: A 3x4, beta 2x2, padding (1, 1), stride (1, 2), Z 4x3."""
    return symbolic_conv((3, 4), (2, 2), stride=(1, 2), padding=(1, 1))


def format_table(cells, row_labels=None, col_labels=None) -> str:
    """Align a table of strings in columns, with optional row and column labels."""
    rows = [list(r) for r in cells]
    if col_labels is not None:
        rows.insert(0, list(col_labels))
    if row_labels is not None:
        labels = ([""] if col_labels is not None else []) + list(row_labels)
        rows = [[label] + r for label, r in zip(labels, rows, strict=True)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(lines)


def to_latex(cells) -> str:
    r"""A table of symbolic entries as a LaTeX ``bmatrix``: ``a_32 beta_12`` becomes
    ``a_{32}\beta_{12}``, ``"0"`` stays ``0``.

    Examples
    --------
    >>> to_latex([["a_11 beta_22", "0"], ["beta_12", "a_3,10"]])
    '\\begin{bmatrix}\na_{11}\\beta_{22} & 0 \\\\\n\\beta_{12} & a_{3,10}\n\\end{bmatrix}'
    """
    rows = [" & ".join(_latex_entry(cell) for cell in row) for row in cells]
    return "\\begin{bmatrix}\n" + " \\\\\n".join(rows) + "\n\\end{bmatrix}"


def _latex_entry(text: str) -> str:
    return " + ".join("".join(_latex_factor(f) for f in term.split())
                      for term in text.split(" + "))


def _latex_factor(factor: str) -> str:
    name, _, index = factor.partition("_")
    return _latex_symbol(name) + (f"_{{{index}}}" if index else "")


def _latex_symbol(name: str) -> str:
    greek = {"alpha", "beta", "gamma", "delta", "kappa", "lambda", "mu", "sigma", "theta"}
    return f"\\{name}" if name in greek else name


def _vec_labels(name: str, h: int, w: int) -> list[str]:
    """``name_rs`` (1-based) for each position of ``vec`` of an ``h x w`` matrix."""
    sep = "," if max(h, w) > 9 else ""  # a_12 is row 1, column 2; a_1,12 once sizes pass 9
    return [f"{name}_{p % h + 1}{sep}{p // h + 1}" for p in range(h * w)]
