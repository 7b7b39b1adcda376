"""Sparsity-pattern figures of Jacobians; the only module that imports matplotlib.

Figures are drawn on ``matplotlib.figure.Figure`` objects (the Agg canvas), never through
``pyplot``, so they work headless and leave no global state behind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .jacobian import Jacobian

__all__ = ["spy", "save_spy", "chain_figure", "loss_curve", "annotated_matrix", "symbol"]


def symbol(name: str) -> str:
    """``"dZ2/dA1"`` -> ``"dvecZ2/dvecA1"``, the note's way of writing a Jacobian."""
    of, wrt = name[1:].split("/d", 1)
    return f"dvec{of}/dvec{wrt}"


def _boundaries(shape: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Channel-block and sample/kernel-block boundaries along one side of a Jacobian."""
    size = int(np.prod(shape))
    if len(shape) >= 3:
        block = shape[-1] * shape[-2]
        outer = block * shape[-3]
        return list(range(block, size, block)), (
            list(range(outer, size, outer)) if len(shape) == 4 else []
        )
    if len(shape) == 2 and shape[1] > 1:  # FC layout (n, N): one block per sample
        return [], list(range(shape[0], size, shape[0]))
    return [], []


def _describe(name: str, shape: tuple[int, ...]) -> str:
    if not shape:
        return f"{name} (scalar)"
    return f"vec({name}), shape {'x'.join(map(str, shape))}"


def spy(J: Jacobian, ax, markersize: float | None = None, grid: bool = True) -> None:
    """Draw the sparsity pattern of ``J`` on ``ax``, with channel-block grid and labels.

    Thin lines separate channel blocks (the note's ``d vecZ_j / d vecA_i``); thick lines
    separate samples of a batch (or kernels, for a kernel variable).
    """
    n_rows, n_cols = J.shape
    coo = J.matrix.tocoo()
    if markersize is None:
        markersize = max(0.2, min(4.0, 300.0 / max(n_rows, n_cols)))
    ax.plot(coo.col, coo.row, "s", markersize=markersize, color="#1f4e79", markeredgewidth=0)
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_aspect("equal" if max(n_rows, n_cols) / max(1, min(n_rows, n_cols)) < 8 else "auto")
    if grid:
        for axis_line, shape in ((ax.axhline, J.of_shape), (ax.axvline, J.wrt_shape)):
            thin, thick = _boundaries(shape)
            for b in thin:
                axis_line(b - 0.5, color="#bbbbbb", linewidth=0.5)
            for b in thick:
                axis_line(b - 0.5, color="#c0392b", linewidth=1.0)
    ax.set_title(symbol(J.name), fontsize=10)
    ax.set_ylabel(_describe(J.of, J.of_shape), fontsize=7)
    ax.set_xlabel(
        f"{_describe(J.wrt, J.wrt_shape)}\n{n_rows} x {n_cols}, nnz {J.nnz}, "
        f"density {100 * J.density:.2f}%",
        fontsize=7,
    )
    ax.tick_params(labelsize=6)


def save_spy(J: Jacobian, path, size: float = 5.0, dpi: int = 120) -> Path:
    """Write the spy plot of ``J`` to a PNG file and return its path."""
    fig = Figure(figsize=(size, size))
    spy(J, fig.add_subplot())
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)


def chain_figure(jacobians: Sequence[Jacobian] | Mapping[str, Jacobian], path,
                 columns: int = 4, title: str | None = None, dpi: int = 110) -> Path:
    """One figure with the spy plot of each Jacobian, in the order given (the chain's)."""
    items = list(jacobians.values() if isinstance(jacobians, Mapping) else jacobians)
    rows = math.ceil(len(items) / columns)
    fig = Figure(figsize=(4 * columns, 4 * rows))
    for k, J in enumerate(items):
        spy(J, fig.add_subplot(rows, columns, k + 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)


def loss_curve(histories: Mapping[str, Mapping[str, Sequence[float]]], path,
               dpi: int = 110) -> Path:
    """Loss and test accuracy per epoch, one line per labelled history (e.g. per method)."""
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    styles = ["-o", "--x", ":s", "-.^"]
    for (label, history), style in zip(histories.items(), styles * 4):
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax_loss.plot(epochs, history["loss"], style, label=label)
        if history.get("test_accuracy"):
            ax_acc.plot(epochs, history["test_accuracy"], style, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss per sample", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)


def annotated_matrix(cells: Sequence[Sequence[str]], row_labels, col_labels, path,
                     title: str = "", dpi: int = 120) -> Path:
    """A symbolic matrix drawn as a grid, each non-zero cell labelled with its symbol."""
    n_rows, n_cols = len(cells), len(cells[0])
    fig = Figure(figsize=(0.75 * n_cols + 1.5, 0.38 * n_rows + 1.2))
    ax = fig.add_subplot()
    nonzero = np.array([[cell != "0" for cell in row] for row in cells], dtype=float)
    ax.imshow(nonzero, cmap="Blues", vmin=0, vmax=2.5, aspect="auto")
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell != "0":
                ax.text(c, r, cell.replace("beta", "β"), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(n_cols), [label.replace("beta", "β") for label in col_labels],
                  fontsize=7, rotation=90)
    ax.set_yticks(range(n_rows), row_labels, fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)
