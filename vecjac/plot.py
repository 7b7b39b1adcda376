"""Figures of Jacobians: sparsity patterns, the appendix drawn, scaling and chain-order charts.

The only module that imports matplotlib.  Figures are drawn on ``matplotlib.figure.Figure``
objects (saving a PNG uses the Agg canvas), never through ``pyplot``, so they work headless
and leave no global state behind.  Every function that takes a ``path`` writes one figure
there and returns the path; PNGs are stored with a 256-colour palette (through Pillow,
which matplotlib itself depends on), so the committed figures stay small.

How a sparsity pattern is drawn (:func:`spy`): rows index ``vec(of)`` and columns
``vec(wrt)`` (numerator layout), row 0 at the top.  Thin grey lines separate channel blocks
(the note's ``d vecZ_j / d vecA_i``); red lines separate samples of a batch, kernels ``K_j``
of a kernel variable, or the columns of an FC weight / feature matrix.  Small matrices are
drawn cell by cell (``imshow``); large ones as one square marker per stored entry, sized to
the cell or at least a visible dot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator
from PIL import Image

from .jacobian import Jacobian

__all__ = [
    "spy",
    "save_spy",
    "chain_figure",
    "spy_grid",
    "loss_curve",
    "annotated_matrix",
    "appendix_figure",
    "scaling_figure",
    "bar_chart",
    "symbol",
]

_INK = "#1f4e79"
_PATTERN = ListedColormap([_INK])


def symbol(name: str) -> str:
    """``"dZ2/dA1"`` -> ``"dvecZ2/dvecA1"``, the note's way of writing a Jacobian."""
    of, wrt = name[1:].split("/d", 1)
    return f"dvec{of}/dvec{wrt}"


def _save(fig: Figure, path, dpi: int) -> Path:
    """Write ``fig``; a ``.png`` is stored with a 256-colour palette, so committed figures stay
    small (a third of the size of matplotlib's RGBA PNG, no visible change for these plots).
    Any other suffix is left to matplotlib (``.svg``, ``.pdf``)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        fig.savefig(path, dpi=dpi)
        return path
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256).save(path, format="PNG", optimize=True)
    return path


# --- one spy plot ---------------------------------------------------------------------------
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


def _axes_names(name: str, shape: tuple[int, ...]) -> str:
    """What each axis of the variable indexes, in the order ``vec`` reads them backwards."""
    if name.startswith("K") and len(shape) == 4:
        return "(C_out, C_in, h_k, w_k)"
    if name.startswith("W") and len(shape) == 2:
        return "(n_in, n_out)"
    return {4: "(n, c, h, w)", 3: "(c, h, w)", 2: "(unit, n)", 1: "(unit)"}.get(len(shape), "")


def _describe(name: str, shape: tuple[int, ...]) -> str:
    """Axis label: ``vec(Z2) over (n, c, h, w) = 2x8x4x4``."""
    if not shape:
        return f"{name} (scalar)"
    return f"vec({name}) over {_axes_names(name, shape)} = {'x'.join(map(str, shape))}"


def _red_lines(name: str, shape: tuple[int, ...]) -> str:
    if name.startswith("K") and len(shape) == 4:
        return "kernels"
    if name.startswith("W") and len(shape) == 2:
        return "output units"
    return "samples" if len(shape) in (2, 4) else ""


def grid_legend(J: Jacobian) -> str:
    """One line saying what the grid lines of ``spy(J)`` separate."""
    parts = []
    if len(J.of_shape) >= 3 or len(J.wrt_shape) >= 3:
        parts.append("grey lines: channels")
    red = sorted({w for w in (_red_lines(J.of, J.of_shape), _red_lines(J.wrt, J.wrt_shape))
                  if w and any(_boundaries(s)[1] for s in (J.of_shape, J.wrt_shape))})
    if red:
        parts.append(f"red lines: {' / '.join(red)}")
    return "; ".join(parts)


def _aspect(n_rows: int, n_cols: int) -> float:
    """Axes aspect (y unit / x unit): true shape, but no thinner than 1 : 4 on screen."""
    ratio = n_rows / n_cols
    if 1 / 8 <= ratio <= 8:
        return 1.0
    return 4 / ratio if ratio > 8 else 1 / (4 * ratio)


def _cell_points(ax, n_rows: int, n_cols: int, aspect: float) -> float:
    """Side of one matrix cell in points (the shorter side), from the axes' size."""
    width_in, height_in = ax.figure.get_size_inches()
    box = ax.get_position()
    width, height = 72 * box.width * width_in, 72 * box.height * height_in
    shown = aspect * n_rows / n_cols  # displayed height / width
    if height / width > shown:
        height = width * shown
    else:
        width = height / shown
    return min(width / n_cols, height / n_rows)


def _draw_pattern(ax, J: Jacobian, values: bool, cmap: str, aspect: float, clim=None):
    n_rows, n_cols = J.shape
    coo = J.matrix.tocoo()
    cell = _cell_points(ax, n_rows, n_cols, aspect)
    pixels = cell * ax.figure.dpi / 72
    if pixels >= 2 and n_rows * n_cols <= 4_000_000:  # small: draw every cell exactly
        image = np.full((n_rows, n_cols), np.nan)
        image[coo.row, coo.col] = coo.data if values else 1.0
        return ax.imshow(np.ma.masked_invalid(image), cmap=cmap if values else _PATTERN,
                         interpolation="nearest", aspect=aspect,
                         **(dict(vmin=clim[0], vmax=clim[1]) if values and clim else {}))
    size = max(0.6, 0.9 * cell)
    if values:
        return ax.scatter(coo.col, coo.row, c=coo.data, s=size**2, marker="s", cmap=cmap,
                          linewidths=0, **(dict(vmin=clim[0], vmax=clim[1]) if clim else {}))
    ax.plot(coo.col, coo.row, "s", markersize=size, color=_INK, markeredgewidth=0)
    return None


def spy(J: Jacobian, ax, markersize: float | None = None, grid: bool = True, *,
        values: bool = False, cmap: str = "viridis", clim: tuple[float, float] | None = None,
        title: str | None = None, caption: bool = True, labels: bool = True):
    """Draw the sparsity pattern of ``J`` on ``ax``, with channel-block grid and labels.

    Parameters
    ----------
    J : Jacobian
    ax : matplotlib Axes
    markersize : float, optional
        Ignored (kept for compatibility): the cell size is derived from the axes.
    grid : bool
        Thin grey lines between channel blocks (the note's ``d vecZ_j / d vecA_i``); red lines
        between samples of a batch (or kernels, for a kernel variable).
    values : bool
        Colour every stored entry by its value (with ``cmap``) instead of one colour; with a
        kernel ``K = 1, 2, ..., h_k w_k`` this shows which kernel entry each entry copies.
    clim : (low, high), optional
        Colour limits when ``values`` is true (default: the data's range).
    title : str, optional
        Default: the note's symbol, ``dvecZ2/dvecA1``.
    caption, labels : bool
        Shape / nnz / density under the x label; axis labels saying what rows and columns
        index.

    Returns
    -------
    The image or collection drawn when ``values`` is true (for a colour bar), else None.
    """
    del markersize
    n_rows, n_cols = J.shape
    aspect = _aspect(n_rows, n_cols)
    drawn = _draw_pattern(ax, J, values, cmap, aspect, clim)
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_aspect(aspect)
    if grid:
        for axis_line, shape in ((ax.axhline, J.of_shape), (ax.axvline, J.wrt_shape)):
            thin, thick = _boundaries(shape)
            for b in thin:
                axis_line(b - 0.5, color="#bbbbbb", linewidth=0.5)
            for b in thick:
                axis_line(b - 0.5, color="#c0392b", linewidth=1.0)
    ax.set_title(symbol(J.name) if title is None else title, fontsize=10)
    xlabel = _describe(J.wrt, J.wrt_shape) if labels else ""
    if caption:
        xlabel += (f"\n{n_rows} x {n_cols}, nnz {J.nnz}, density {100 * J.density:.2f}%")
    ax.set_xlabel(xlabel.strip("\n"), fontsize=7)
    if labels:
        ax.set_ylabel(_describe(J.of, J.of_shape), fontsize=7)
    ax.tick_params(labelsize=6)
    for axis, n in ((ax.xaxis, n_cols), (ax.yaxis, n_rows)):
        axis.set_major_locator(MaxNLocator(nbins="auto", integer=True) if n > 1 else
                               FixedLocator([0]))
    return drawn


def save_spy(J: Jacobian, path, size: float = 5.0, dpi: int = 120, *,
             values: bool = False, title: str | None = None) -> Path:
    """Write the spy plot of ``J`` to a PNG file and return its path.

    The figure's footer says what the grid lines separate.
    """
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    drawn = spy(J, ax, values=values, title=title)
    if drawn is not None:
        bar = fig.colorbar(drawn, ax=ax, fraction=0.04, pad=0.03)
        bar.ax.tick_params(labelsize=7)
    legend = grid_legend(J)
    fig.tight_layout(rect=(0, 0.03 if legend else 0, 1, 1))
    if legend:
        fig.text(0.5, 0.01, legend, ha="center", fontsize=7, color="#555555")
    return _save(fig, path, dpi)


# --- many spy plots -------------------------------------------------------------------------
def chain_figure(jacobians: Sequence[Jacobian] | Mapping[str, Jacobian], path,
                 columns: int = 4, title: str | None = None, dpi: int = 110,
                 panel: float = 4.0) -> Path:
    """One figure with the spy plot of each Jacobian, in the order given (the chain's)."""
    items = list(jacobians.values() if isinstance(jacobians, Mapping) else jacobians)
    columns = min(columns, len(items))
    rows = math.ceil(len(items) / columns)
    fig = Figure(figsize=(panel * columns, panel * rows + (0.4 if title else 0)))
    for k, J in enumerate(items):
        spy(J, fig.add_subplot(rows, columns, k + 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / fig.get_size_inches()[1]) if title else None)
    return _save(fig, path, dpi)


def spy_grid(grid: Sequence[Sequence[Jacobian | None]], path, *,
             row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
             title: str | None = None, values: bool = False, cmap: str = "viridis",
             colorbar_label: str | None = "value", panel: float = 2.6, dpi: int = 100,
             footer: str | None = None) -> Path:
    """A table of spy plots: ``grid[r][c]`` drawn in row ``r``, column ``c``.

    Row and column labels go on the left and on top (e.g. stride down, padding across);
    each panel's own caption gives its shape and nnz.  ``None`` leaves a panel empty.  With
    ``values``, every panel shares one colour scale, shown by one colour bar, unless
    ``colorbar_label`` is None: then each panel spans its own range and there is no bar.
    """
    n_rows, n_cols = len(grid), max(len(row) for row in grid)
    fig = Figure(figsize=(panel * n_cols + (1.2 if values and colorbar_label else 0.6),
                          panel * n_rows + 0.9),
                 layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    present = [J for row in grid for J in row if J is not None and J.nnz]
    shared = values and present and colorbar_label is not None
    clim = (min(J.matrix.data.min() for J in present),
            max(J.matrix.data.max() for J in present)) if shared else None
    drawn = None
    for r in range(n_rows):
        for c in range(n_cols):
            ax, J = axes[r][c], grid[r][c] if c < len(grid[r]) else None
            if J is None:
                ax.set_axis_off()
                continue
            head = col_labels[c] if r == 0 and c < len(col_labels) else ""
            drawn = spy(J, ax, values=values, cmap=cmap, clim=clim, labels=False,
                        title=head + ("\n" if head else "") + f"{J.shape[0]} x {J.shape[1]}")
            ax.set_xlabel(f"nnz {J.nnz}, density {100 * J.density:.1f}%", fontsize=7)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=9)
    if shared and drawn is not None:
        bar = fig.colorbar(drawn, ax=axes, shrink=0.6, aspect=30)
        bar.set_label(colorbar_label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    if footer:
        fig.supxlabel(footer, fontsize=7, color="#555555")
    return _save(fig, path, dpi)


# --- training -------------------------------------------------------------------------------
def loss_curve(histories: Mapping[str, Mapping[str, Sequence[float]]], path,
               dpi: int = 110, title: str | None = None) -> Path:
    """Loss and test accuracy per epoch, one line per labelled history (e.g. per method).

    Later histories are drawn thinner on top of earlier ones, so identical curves (the
    Jacobian form and direct back-propagation) show as one line with a line inside it.
    """
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    styles = [dict(marker="o", linestyle="-", linewidth=3.5, markersize=8, alpha=0.45),
              dict(marker="x", linestyle="--", linewidth=1.2, markersize=6),
              dict(marker="s", linestyle=":", linewidth=1.2, markersize=4),
              dict(marker="^", linestyle="-.", linewidth=1.2, markersize=4)]
    for (label, history), style in zip(histories.items(), styles * len(histories), strict=False):
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax_loss.plot(epochs, history["loss"], label=label, **style)
        if history.get("test_accuracy"):
            ax_acc.plot(epochs, history["test_accuracy"], label=label, **style)
    ax_loss.set(xlabel="epoch", ylabel="loss per sample", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


# --- the appendix, drawn --------------------------------------------------------------------
def _greek(label: str) -> str:
    return label.replace("beta", "β")


def _annotate(ax, cells, row_labels, col_labels, title: str) -> None:
    n_rows, n_cols = len(cells), len(cells[0])
    nonzero = np.array([[cell != "0" for cell in row] for row in cells], dtype=float)
    ax.imshow(nonzero, cmap="Blues", vmin=0, vmax=2.5, aspect="auto")
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell != "0":
                ax.text(c, r, _greek(cell), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(n_cols), [_greek(label) for label in col_labels], fontsize=7,
                  rotation=90)
    ax.set_yticks(range(n_rows), row_labels, fontsize=7)
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title, fontsize=10)


def annotated_matrix(cells: Sequence[Sequence[str]], row_labels, col_labels, path,
                     title: str = "", dpi: int = 120) -> Path:
    """A symbolic matrix drawn as a grid, each non-zero cell labelled with its symbol."""
    n_rows, n_cols = len(cells), len(cells[0])
    fig = Figure(figsize=(0.75 * n_cols + 1.5, 0.38 * n_rows + 1.2))
    _annotate(fig.add_subplot(), cells, row_labels, col_labels, title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def appendix_figure(example, path, dpi: int = 110) -> Path:
    """The note's appendix in one figure: ``dvecZ/dvecbeta`` beside ``dvecZ/dvecA``.

    Parameters
    ----------
    example : :class:`vecjac.symbolic.SymbolicConv`
        E.g. ``vecjac.symbolic.appendix_example()``: each non-zero cell is labelled with the
        symbol it copies (``a_32``, ``beta_12``).
    """
    s = example
    n_beta, n_a = len(s.beta_labels), len(s.a_labels)
    fig = Figure(figsize=(0.62 * (n_beta + n_a) + 3.2, 0.36 * len(s.row_labels) + 1.6))
    ax_beta, ax_a = fig.subplots(1, 2, width_ratios=[n_beta + 1.5, n_a])
    _annotate(ax_beta, s.dZ_dbeta, s.row_labels, s.beta_labels,
              f"dvecZ/dvecβ  ({len(s.row_labels)} x {n_beta}):\nentries of A")
    _annotate(ax_a, s.dZ_dA, s.row_labels, s.a_labels,
              f"dvecZ/dvecA  ({len(s.row_labels)} x {n_a}): entries of β")
    fig.suptitle("The note's appendix: Z = A * β, A 3x4, β 2x2, padding (1, 1), stride (1, 2)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


# --- measurements ---------------------------------------------------------------------------
def scaling_figure(sweeps: Mapping[str, Mapping], path, dpi: int = 100,
                   title: str | None = None) -> Path:
    """Log-log panels of Jacobian size against a swept setting, one row per sweep.

    Parameters
    ----------
    sweeps : mapping ``label -> {"x": [...], "xlabel": str, "series": {name: metrics}}``
        ``metrics`` holds equal-length lists ``nnz``, ``mb``, ``ms``, ``density`` and
        ``dense_mb`` (the size the same Jacobian would need stored dense), one entry per
        ``x``, and optionally ``ms_cached`` (build time with a cached pattern).  Columns of
        the figure: nnz, megabytes (sparse solid, dense dashed), build time (from scratch
        solid, cached dashed), density.
    """
    panels = [("nnz", "stored entries (nnz)"), ("mb", "megabytes"), ("ms", "build time (ms)"),
              ("density", "density")]
    fig = Figure(figsize=(15, 3.4 * len(sweeps) + (0.4 if title else 0)))
    axes = fig.subplots(len(sweeps), len(panels), squeeze=False)
    colours = [f"C{k}" for k in range(10)]
    for row, (label, sweep) in zip(axes, sweeps.items(), strict=True):
        x = np.asarray(sweep["x"], dtype=float)
        for (name, metrics), colour in zip(sweep["series"].items(), colours * 4, strict=False):
            for ax, (key, _) in zip(row, panels, strict=True):
                ax.loglog(x, metrics[key], "o-", color=colour, markersize=3, linewidth=1.2,
                          label=symbol(name))
            row[1].loglog(x, metrics["dense_mb"], "--", color=colour, linewidth=0.9)
            if "ms_cached" in metrics:
                row[2].loglog(x, metrics["ms_cached"], "--", color=colour, linewidth=0.9)
        for ax, (_, ylabel) in zip(row, panels, strict=True):
            ax.set_xlabel(sweep["xlabel"], fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_xticks(x, [f"{v:g}" for v in x], fontsize=7)
            ax.minorticks_off()
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3, which="both")
        row[0].set_title(label, fontsize=9, loc="left")
        row[1].set_title("solid: sparse CSR, dashed: dense", fontsize=8)
        row[2].set_title("solid: from scratch, dashed: pattern cached", fontsize=8)
        row[-1].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi)


def bar_chart(groups: Sequence[str], bars: Mapping[str, Mapping[str, Sequence[float]]],
              path, *, log: bool = False, columns: int = 2, title: str | None = None,
              dpi: int = 100) -> Path:
    """Grouped bars, one panel per metric, each bar labelled with its value.

    Parameters
    ----------
    groups : labels along x (e.g. the end-to-end Jacobians ``dA3/dX``)
    bars : mapping ``metric -> {series: values}``, one value per group in each series
        (e.g. ``{"flops": {"reverse": [...], "forward": [...]}}``).
    log : bool
        Logarithmic y axes (for values spanning decades).
    columns : int
        Panels per row.
    """
    columns = min(columns, len(bars))
    rows = math.ceil(len(bars) / columns)
    fig = Figure(figsize=(5.2 * columns, 3.4 * rows + (0.3 if title else 0)))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    x = np.arange(len(groups))
    for ax, (metric, series) in zip(axes, bars.items(), strict=False):
        width = 0.8 / len(series)
        for k, (label, values) in enumerate(series.items()):
            shift = (k - (len(series) - 1) / 2) * width
            rects = ax.bar(x + shift, values, width, label=label, color=f"C{k}")
            ax.bar_label(rects, [f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" for v in values],
                         fontsize=7, padding=1)
        ax.set_xticks(x, groups, fontsize=8)
        ax.set_title(metric, fontsize=9)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    for ax in axes[len(bars):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)
