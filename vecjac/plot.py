"""Figures of Jacobians: sparsity patterns, the appendix drawn, scaling and chain-order charts.

The only module that imports matplotlib.  Figures are drawn on ``matplotlib.figure.Figure``
objects (saving a PNG uses the Agg canvas), never through ``pyplot``, so they work headless
and leave no global state behind.  Every function that takes a ``path`` writes one figure
there and returns the path; PNGs are stored with a 256-colour palette (through Pillow, a
declared dependency of vecjac), so the committed figures stay small; ``.svg`` and ``.pdf``
are written by matplotlib as they are.

How a sparsity pattern is drawn (:func:`spy`): rows index ``vec(of)`` and columns
``vec(wrt)`` (numerator layout), row 0 at the top, the title in the note's notation
(``∂ vec Z_2 / ∂ vec A_1``, matplotlib math text).  Thin grey lines separate channel blocks
(the note's ``d vecZ_j / d vecA_i``); red lines separate samples of a batch, kernels ``K_j``
of a kernel variable, or the columns of an FC weight / feature matrix.  With
``grid="auto"`` (the default) a level of lines is drawn only while its blocks stay large
enough on the canvas to read, and thinner as they shrink; ``True`` draws every line,
``False`` none.  Tick marks sit on block boundaries.  Small matrices are drawn cell by cell
(``imshow``); large ones as one square marker per stored entry, sized to the cell or at least
a visible dot.

Colour: a pattern is one colour, with no colour bar.  With ``values=True`` entries are
coloured by value and a colour bar is drawn: signed values on a diverging map centred at zero
(``RdBu_r``, symmetric limits, so zero is white and equal magnitudes have equal strength),
non-negative values on ``viridis``.  ``levels=`` draws a small set of integer codes (which
kernel entry an entry copies) with one distinct colour each, the colour bar labelled by name.

Every figure uses matplotlib's constrained layout, so the plots fill their canvas, and no
text is smaller than 9 pt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FixedLocator, MaxNLocator
from PIL import Image

from .explore import explore_html  # noqa: F401  (re-exported: the interactive HTML page)
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
    "math_symbol",
    "math_name",
    "colour_scale",
    "grid_legend",
]

_INK = "#1f4e79"
_PATTERN = ListedColormap([_INK])
_CHANNEL_LINE, _SAMPLE_LINE = "#9a9a9a", "#c0392b"
# font sizes in points: nothing under 9 pt, so a figure scaled onto a slide stays legible
_TITLE, _LABEL, _TICK, _NOTE = 13, 11, 10, 9
_GREEK = ("alpha", "beta", "gamma", "delta", "theta", "lambda", "mu", "sigma", "omega")


def symbol(name: str) -> str:
    """``"dZ2/dA1"`` -> ``"dvecZ2/dvecA1"``, the note's way of writing a Jacobian in plain text
    (tables, terminals).  Figures use :func:`math_symbol`."""
    of, wrt = name[1:].split("/d", 1)
    return f"dvec{of}/dvec{wrt}"


def math_name(name: str) -> str:
    """A variable's name as math text, without the dollar signs: ``"Z2"`` -> ``Z_{2}``,
    ``"I1_2"`` (the second activation of block 1) -> ``I_{1,2}``, ``"beta_12"`` ->
    ``\\beta_{12}``, ``"X"`` -> ``X``.  A name of any other form is set upright, with the
    characters math text would read as commands escaped."""
    match = re.fullmatch(r"([A-Za-z]+?)(\d*)(?:_([0-9,]+))?", name)
    if match is None:
        return r"\mathrm{" + re.sub(r"([\\{}_^$%#&~])", r"\\\1", name) + "}"
    letters, layer, sub = match.groups()
    if letters in _GREEK:
        base = "\\" + letters
    else:
        base = letters if len(letters) == 1 else r"\mathrm{" + letters + "}"
    index = ",".join(part for part in (layer, sub) if part)
    return base + ("_{" + index + "}" if index else "")


def math_symbol(name: str, scalar: bool = False) -> str:
    """``"dZ2/dA1"`` -> ``$\\partial\\,\\mathrm{vec}\\,Z_{2} / \\partial\\,\\mathrm{vec}\\,A_{1}$``:
    the note's symbol as matplotlib math text.  ``scalar=True`` (the loss ``J``) drops the
    ``vec`` of the numerator."""
    of, wrt = name[1:].split("/d", 1)
    top = r"\partial " + math_name(of) if scalar else r"\partial\,\mathrm{vec}\," + math_name(of)
    return f"${top} \\,/\\, \\partial\\,\\mathrm{{vec}}\\,{math_name(wrt)}$"


def _title(J: Jacobian) -> str:
    return math_symbol(J.name, scalar=J.of_shape == ())


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
    """Axis label: ``vec Z_2  (n, c, h, w) = 2×8×4×4`` (math text for the variable)."""
    if not shape:
        return f"${math_name(name)}$ (scalar)"
    dims = "×".join(map(str, shape))
    return f"$\\mathrm{{vec}}\\,{math_name(name)}$   {_axes_names(name, shape)} = {dims}"


def _red_lines(name: str, shape: tuple[int, ...]) -> str:
    if name.startswith("K") and len(shape) == 4:
        return "kernels"
    if name.startswith("W") and len(shape) == 2:
        return "output units"
    return "samples" if len(shape) in (2, 4) else ""


def grid_legend(J: Jacobian, drawn: Sequence[str] | None = None) -> str:
    """One line saying what the grid lines of ``spy(J)`` separate.

    ``drawn``: the kinds of line actually drawn (``"thin"``, ``"thick"``), as returned in
    :func:`spy`'s plan; default: every kind the shapes have.
    """
    parts = []
    has_thin = any(_boundaries(s)[0] for s in (J.of_shape, J.wrt_shape))
    has_thick = any(_boundaries(s)[1] for s in (J.of_shape, J.wrt_shape))
    if drawn is not None:
        has_thin, has_thick = has_thin and "thin" in drawn, has_thick and "thick" in drawn
    if has_thin:
        parts.append("grey lines: channels")
    red = sorted({w for w in (_red_lines(J.of, J.of_shape), _red_lines(J.wrt, J.wrt_shape))
                  if w})
    if red and has_thick:
        parts.append(f"red lines: {' / '.join(red)}")
    return "; ".join(parts)


def _aspect(n_rows: int, n_cols: int) -> float:
    """Axes aspect (y unit / x unit): true shape, but no thinner than 1 : 4 on screen."""
    ratio = n_rows / n_cols
    if 1 / 8 <= ratio <= 8:
        return 1.0
    return 4 / ratio if ratio > 8 else 1 / (4 * ratio)


def _cell_sizes(ax, n_rows: int, n_cols: int, aspect: float) -> tuple[float, float]:
    """Width and height of one matrix cell in points, from the axes' size."""
    width_in, height_in = ax.figure.get_size_inches()
    box = ax.get_position()
    width, height = 72 * box.width * width_in, 72 * box.height * height_in
    shown = aspect * n_rows / n_cols  # displayed height / width
    if height / width > shown:
        height = width * shown
    else:
        width = height / shown
    return width / n_cols, height / n_rows


def _cell_points(ax, n_rows: int, n_cols: int, aspect: float) -> float:
    """Side of one matrix cell in points (the shorter side), from the axes' size."""
    return min(_cell_sizes(ax, n_rows, n_cols, aspect))


_DIVERGING = {"RdBu", "RdBu_r", "coolwarm", "bwr", "seismic", "PiYG", "PRGn", "BrBG", "PuOr",
              "RdGy", "RdYlBu", "RdYlGn", "Spectral", "PiYG_r", "PRGn_r", "BrBG_r", "PuOr_r",
              "RdGy_r", "RdYlBu_r", "RdYlGn_r", "Spectral_r", "coolwarm_r", "bwr_r"}


def _level_colours(n: int) -> ListedColormap:
    """``n`` distinct colours: a qualitative palette up to 20, viridis steps beyond."""
    from matplotlib import colormaps

    if n <= 10:
        colours = colormaps["tab10"].colors[:n]
    elif n <= 20:
        colours = colormaps["tab20"].colors[:n]
    else:
        colours = colormaps["viridis"](np.linspace(0, 1, n))
    return ListedColormap(colours)


def colour_scale(low: float, high: float, cmap: str = "auto",
                 levels: Sequence[str] | None = None) -> dict:
    """The ``cmap`` / ``norm`` keywords for values in ``[low, high]``.

    ``cmap="auto"``: signed values (``low < 0``) on ``RdBu_r`` with symmetric limits, so zero
    is white; non-negative values on ``viridis``.  A named diverging map is centred at zero
    too.  ``levels``: integer codes ``1 .. len(levels)``, one distinct colour each.
    """
    if levels is not None:
        n = len(levels)
        return dict(cmap=_level_colours(n), norm=BoundaryNorm(np.arange(n + 1) + 0.5, n))
    low, high = float(low), float(high)
    if low < 0 and (cmap == "auto" or cmap in _DIVERGING):
        m = max(abs(low), abs(high))
        return dict(cmap="RdBu_r" if cmap == "auto" else cmap, vmin=-m, vmax=m)
    return dict(cmap="viridis" if cmap == "auto" else cmap, vmin=low, vmax=high)


def _draw_pattern(ax, J: Jacobian, values: bool, scale: dict, aspect: float):
    n_rows, n_cols = J.shape
    coo = J.matrix.tocoo()
    cell_w, cell_h = _cell_sizes(ax, n_rows, n_cols, aspect)
    pixels = min(cell_w, cell_h) * ax.figure.dpi / 72
    if pixels >= 1.2 and n_rows * n_cols <= 4_000_000:  # small: every cell, a pixel or more
        image = np.full((n_rows, n_cols), np.nan)
        image[coo.row, coo.col] = coo.data if values else 1.0
        drawn = ax.imshow(np.ma.masked_invalid(image), interpolation="nearest", aspect=aspect,
                          **(scale if values else dict(cmap=_PATTERN)))
        return drawn if values else None
    # large: one marker per stored entry, a rectangle the shape of a cell (at least a dot)
    width, height = max(0.6, 0.9 * cell_w), max(0.6, 0.9 * cell_h)
    size, r = max(width, height), min(width, height) / max(width, height)
    wide = width >= height
    corners = [(-1, -r), (1, -r), (1, r), (-1, r)] if wide else [(-r, -1), (r, -1), (r, 1),
                                                                 (-r, 1)]
    if r > 0.7 or size < 1.5:  # Agg draws a tiny polygon marker as nothing, a square as a dot
        corners = "s"
    # a thin edge in the fill colour: Agg drops unstroked markers under a pixel tall
    if values:
        return ax.scatter(coo.col, coo.row, c=coo.data, s=size**2, marker=corners,
                          linewidths=0.3, edgecolors="face", **scale)
    ax.plot(coo.col, coo.row, linestyle="none", marker=corners, markersize=size, color=_INK,
            markeredgewidth=0.3)
    return None


def _check_grid(grid) -> None:
    if not (grid is True or grid is False or grid == "auto"):
        raise ValueError(f'grid must be "auto", True or False, got {grid!r}')


def _grid_plan(J: Jacobian, grid, cell_w: float, cell_h: float) -> list[tuple]:
    """The grid lines to draw: ``(axis, positions, kind, linewidth)``, kind ``"thin"``
    (channels, grey) or ``"thick"`` (samples / kernels, red).

    ``grid="auto"``: a level is drawn only while its blocks are at least 8 pt (channels) or
    12 pt (samples) on the canvas and there are at most 40 (channels) or 24 (samples) of its
    lines on that side, and thinner while its blocks are under 30 / 40 pt; so a large batch
    keeps its sample lines and loses the channel lines that would hide the pattern.
    """
    _check_grid(grid)
    plan = []
    if grid is False:
        return plan
    for axis, shape, cell in (("h", J.of_shape, cell_h), ("v", J.wrt_shape, cell_w)):
        thin, thick = _boundaries(shape)
        for kind, lines in (("thin", thin), ("thick", thick)):
            if not lines:
                continue
            block = lines[0] * cell  # points
            small, most = (8, 40) if kind == "thin" else (12, 24)
            if grid == "auto" and (block < small or len(lines) > most):
                continue
            wide = grid is True or block >= (30 if kind == "thin" else 40)
            width = (0.8 if wide else 0.5) if kind == "thin" else (1.4 if wide else 0.7)
            plan.append((axis, lines, kind, width))
    return plan


def _block_ticks(shape: tuple[int, ...], n: int, room: int) -> list[int] | None:
    """Tick positions on block boundaries (channel blocks, else sample blocks, else every
    few channel blocks), at most ``room`` of them; None when the variable has no blocks."""
    thin, thick = _boundaries(shape)
    for lines in (thin, thick):
        if lines and len(lines) + 2 <= room:
            return [0, *lines, n]
    base = thick or thin
    if not base:
        return None
    block = base[0]
    step = block * math.ceil((n // block) / max(room - 1, 1))
    ticks = list(range(0, n, step))
    if n - ticks[-1] < step / 2 and len(ticks) > 1:
        ticks.pop()
    return [*ticks, n]


def _set_ticks(ax, J: Jacobian, cell_w: float, cell_h: float) -> None:
    n_rows, n_cols = J.shape
    for axis, shape, n, length, spacing in (
        (ax.xaxis, J.wrt_shape, n_cols, cell_w * n_cols, 0.62 * _TICK * len(str(n_cols)) + 14),
        (ax.yaxis, J.of_shape, n_rows, cell_h * n_rows, 2.2 * _TICK),
    ):
        room = max(2, min(10, int(length // spacing)))
        ticks = _block_ticks(shape, n, room)
        if ticks is None:
            axis.set_major_locator(MaxNLocator(nbins=room, integer=True) if n > 1 else
                                   FixedLocator([0]))
        else:
            axis.set_ticks([t - 0.5 for t in ticks], labels=[str(t) for t in ticks])


def spy(J: Jacobian, ax=None, markersize: float | None = None, grid: bool | str = "auto", *,
        values: bool = False, cmap: str = "auto", clim: tuple[float, float] | None = None,
        title: str | None = None, caption: bool = True, labels: bool = True,
        levels: Sequence[str] | None = None):
    """Draw the sparsity pattern of ``J`` on ``ax``, with channel-block grid and labels.

    Parameters
    ----------
    J : Jacobian
    ax : matplotlib Axes, optional
        Where to draw; ``None`` (default): a new pyplot figure, as ``plt.spy(M)`` makes one
        (the matrix comes first, as in matplotlib).
    markersize : float, optional
        Ignored (kept for compatibility): the cell size is derived from the axes.
    grid : "auto", True or False
        Thin grey lines between channel blocks (the note's ``d vecZ_j / d vecA_i``); red lines
        between samples of a batch (or kernels, for a kernel variable).  ``"auto"`` (default)
        draws a level of lines only while its blocks are large enough on the canvas to read
        (see :func:`_grid_plan`); ``True`` draws every line, ``False`` none.  Tick marks sit
        on the block boundaries either way.
    values : bool
        Colour every stored entry by its value instead of one colour (see ``cmap``).
    cmap : str
        ``"auto"`` (default): signed values on ``RdBu_r`` centred at zero (symmetric limits),
        non-negative values on ``viridis``; or any matplotlib colormap name.
    clim : (low, high), optional
        Colour limits when ``values`` is true (default: the data's range; signed data on a
        diverging map: symmetric about zero).
    levels : list of str, optional
        With ``values``: the entries are integer codes ``1 .. len(levels)`` (e.g. which kernel
        entry each entry copies), drawn one distinct colour each; the colour bar of
        :func:`save_spy` / :func:`spy_grid` is labelled with these names (at most 12 of
        them; an empty name leaves its level unlabelled).
    title : str, optional
        Default: the note's symbol as math text, ``∂ vec Z_2 / ∂ vec A_1``.
    caption, labels : bool
        Shape / nnz / density under the x label; axis labels saying what rows and columns
        index.

    Returns
    -------
    The image or collection drawn when ``values`` is true (for a colour bar), else None.
    The grid lines drawn are recorded as ``ax.vecjac_grid`` (the kinds ``"thin"`` /
    ``"thick"``), for :func:`grid_legend`.
    """
    del markersize
    _check_grid(grid)
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.figure(figsize=(6, 6), layout="constrained").add_subplot()
    n_rows, n_cols = J.shape
    aspect = _aspect(n_rows, n_cols)
    scale = {}
    if values:
        data = J.matrix.data
        low, high = clim if clim is not None else (
            (float(data.min()), float(data.max())) if data.size else (0.0, 1.0))
        scale = colour_scale(low, high, cmap, levels)
        if "vmin" in scale and scale["vmin"] < 0:
            ax.set_facecolor("#e8e8e8")  # white is zero: absent entries in light grey
    drawn = _draw_pattern(ax, J, values, scale, aspect)
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_aspect(aspect)
    cell_w, cell_h = _cell_sizes(ax, n_rows, n_cols, aspect)
    plan = _grid_plan(J, grid, cell_w, cell_h)
    for axis, lines, kind, width in plan:
        axis_line = ax.axhline if axis == "h" else ax.axvline
        colour = _CHANNEL_LINE if kind == "thin" else _SAMPLE_LINE
        for b in lines:
            axis_line(b - 0.5, color=colour, linewidth=width, alpha=0.8 if kind == "thin" else 1)
    ax.vecjac_grid = sorted({kind for _, _, kind, _ in plan})
    ax.set_title(_title(J) if title is None else title, fontsize=_TITLE)
    xlabel = _describe(J.wrt, J.wrt_shape) if labels else ""
    if caption:
        xlabel += (f"\n{n_rows} × {n_cols}, nnz {J.nnz:,}, density {_percent(J.density)}")
    ax.set_xlabel(xlabel.strip("\n"), fontsize=_LABEL - 1)
    if labels:
        ax.set_ylabel(_describe(J.of, J.of_shape), fontsize=_LABEL - 1)
    ax.tick_params(labelsize=_NOTE)
    _set_ticks(ax, J, cell_w, cell_h)
    return drawn


def _percent(fraction: float) -> str:
    """A density with two significant digits: ``19.5%``, ``2.4%``, ``0.39%``."""
    p = 100 * fraction
    return f"{p:.0f}%" if p >= 99.5 or p == 0 else f"{p:.3g}%" if p >= 10 else f"{p:.2g}%"


def _colourbar(fig, drawn, ax, levels: Sequence[str] | None = None, label: str | None = None,
               **kwargs):
    bar = fig.colorbar(drawn, ax=ax, **kwargs)
    if levels is not None:  # one tick per named level ("" leaves a level unlabelled)
        named = [k + 1 for k, name in enumerate(levels) if name]
        ticks = named[::math.ceil(len(named) / 12)]
        bar.set_ticks(ticks, labels=[levels[t - 1] for t in ticks])
        bar.ax.tick_params(length=0)
    bar.ax.tick_params(labelsize=_TICK)
    if label:
        bar.set_label(label, fontsize=_LABEL)
    return bar


def save_spy(J: Jacobian, path, size: float = 6.0, dpi: int = 120, *,
             values: bool = False, title: str | None = None, grid: bool | str = "auto",
             cmap: str = "auto", levels: Sequence[str] | None = None) -> Path:
    """Write the spy plot of ``J`` to a file (PNG, or SVG / PDF by suffix); return its path.

    ``size`` is the figure's longer side in inches; the other side follows the matrix's
    shape, so the plot fills the canvas.  A colour bar is drawn only with ``values`` (colour
    then carries the values); the footer says what the grid lines drawn separate.  ``grid``,
    ``cmap``, ``levels``: as :func:`spy`.
    """
    _check_grid(grid)
    n_rows, n_cols = J.shape
    shown = _aspect(n_rows, n_cols) * n_rows / n_cols  # height / width of the matrix box
    margin_w, margin_h = 1.0 + (1.3 if values else 0.0), 1.6  # labels, title, caption
    if shown >= 1:  # tall: the height is the longer side
        box_h = max(size - margin_h, 1.0)
        fig_w, fig_h = box_h / shown + margin_w, box_h + margin_h
    else:
        box_w = max(size - margin_w, 1.0)
        fig_w, fig_h = box_w + margin_w, box_w * shown + margin_h
    fig = Figure(figsize=(max(fig_w, 4.4), fig_h), layout="constrained")
    ax = fig.add_subplot()
    drawn = spy(J, ax, values=values, title=title, grid=grid, cmap=cmap, levels=levels)
    if drawn is not None:
        _colourbar(fig, drawn, ax, levels, "value" if levels is None else None,
                   fraction=0.05, pad=0.02)
    legend = grid_legend(J, ax.vecjac_grid)
    if legend:
        fig.supxlabel(legend, fontsize=_NOTE, color="#555555")
    return _save(fig, path, dpi)

# --- many spy plots -------------------------------------------------------------------------
def chain_figure(jacobians: Sequence[Jacobian] | Mapping[str, Jacobian], path,
                 columns: int = 4, title: str | None = None, dpi: int = 110,
                 panel: float = 4.0, grid: bool | str = "auto") -> Path:
    """One figure with the spy plot of each Jacobian, in the order given (the chain's)."""
    items = list(jacobians.values() if isinstance(jacobians, Mapping) else jacobians)
    columns = min(columns, len(items))
    rows = math.ceil(len(items) / columns)
    fig = Figure(figsize=(panel * columns, panel * rows + (0.5 if title else 0)),
                 layout="constrained")
    for k, J in enumerate(items):
        spy(J, fig.add_subplot(rows, columns, k + 1), grid=grid)
    if title:
        fig.suptitle(title, fontsize=_TITLE + 1)
    return _save(fig, path, dpi)


def _shown(J: Jacobian) -> float:
    """Displayed height / width of ``J``'s spy plot."""
    return _aspect(*J.shape) * J.shape[0] / J.shape[1]


def spy_grid(grid: Sequence[Sequence[Jacobian | None]], path, *,
             row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
             title: str | None = None, values: bool = False, cmap: str = "auto",
             colorbar_label: str | None = "value", panel: float = 2.6, dpi: int = 100,
             footer: str | None = None, levels: Sequence[str] | None = None,
             grid_lines: bool | str = "auto") -> Path:
    """A table of spy plots: ``grid[r][c]`` drawn in row ``r``, column ``c``.

    Row and column labels go on the left and on top (e.g. stride down, padding across);
    each panel's own caption gives its shape and nnz.  ``None`` leaves a panel empty.  Panels
    are ``panel`` inches wide; a row is as tall as its tallest matrix needs, up to ``panel``,
    so rows of short wide matrices do not float in empty space.  With ``values``, every panel shares
    one colour scale (``cmap``, ``levels``: as :func:`spy`), shown by one colour bar, unless
    ``colorbar_label`` is None: then each panel spans its own range and there is no bar.
    """
    n_rows, n_cols = len(grid), max(len(row) for row in grid)
    heights = [max([min(max(_shown(J), 0.3), 1.0) for J in row if J is not None] or [1.0])
               for row in grid]
    present = [J for row in grid for J in row if J is not None and J.nnz]
    shared = bool(values and present and colorbar_label is not None)
    fig = Figure(figsize=(panel * n_cols + (2.0 if shared else 0.8),
                          sum(panel * h + 0.75 for h in heights) + (0.6 if title else 0)
                          + (0.4 if footer else 0)),
                 layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, height_ratios=heights)
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
                        levels=levels, grid=grid_lines,
                        title=head + ("\n" if head else "") + f"{J.shape[0]} × {J.shape[1]}")
            ax.title.set_fontsize(_LABEL + 1)
            gap = "\n" if _shown(J) > 1.4 else ", "  # a narrow panel: two short lines
            ax.set_xlabel(f"nnz {J.nnz:,}{gap}density {_percent(J.density)}",
                          fontsize=_NOTE + 1)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=_LABEL + 1)
    if shared and drawn is not None:
        _colourbar(fig, drawn, axes, levels, colorbar_label, shrink=0.7, aspect=30)
    if title:
        fig.suptitle(title, fontsize=_TITLE + 1)
    if footer:
        fig.supxlabel(footer, fontsize=_NOTE + 1, color="#555555")
    return _save(fig, path, dpi)

# --- training -------------------------------------------------------------------------------
def loss_curve(histories: Mapping[str, Mapping[str, Sequence[float]]], path,
               dpi: int = 110, title: str | None = None) -> Path:
    """Loss and test accuracy per epoch, one line per labelled history (e.g. per method).

    Later histories are drawn thinner on top of earlier ones, so identical curves (the
    Jacobian form and direct back-propagation) show as one line with a line inside it.
    """
    fig = Figure(figsize=(10, 4.2 + (0.4 if title else 0)), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    styles = [dict(marker="o", linestyle="-", linewidth=4, markersize=9, alpha=0.45),
              dict(marker="x", linestyle="--", linewidth=1.6, markersize=7),
              dict(marker="s", linestyle=":", linewidth=1.6, markersize=5),
              dict(marker="^", linestyle="-.", linewidth=1.6, markersize=5)]
    for (label, history), style in zip(histories.items(), styles * len(histories), strict=False):
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax_loss.plot(epochs, history["loss"], label=label, **style)
        if history.get("test_accuracy"):
            ax_acc.plot(epochs, history["test_accuracy"], label=label, **style)
    ax_loss.set_ylabel("loss per sample", fontsize=_LABEL)
    ax_acc.set_ylabel("test accuracy", fontsize=_LABEL)
    ax_loss.set_title("training loss", fontsize=_TITLE)
    ax_acc.set_title("test accuracy", fontsize=_TITLE)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch", fontsize=_LABEL)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=_TICK)
        ax.legend(fontsize=_TICK)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=_TITLE)
    return _save(fig, path, dpi)


# --- the appendix, drawn --------------------------------------------------------------------
def _math_label(label: str) -> str:
    """A symbol of :mod:`vecjac.symbolic` as math text: ``beta_12`` -> ``$\\beta_{12}$``."""
    return f"${math_name(label)}$"


def _annotate(ax, cells, row_labels, col_labels, title: str) -> None:
    """Draw a symbolic matrix: every non-zero cell shaded and labelled with its symbol.  With at
    most 9 distinct symbols (the kernel entries of ``dvecZ/dvecA``) each symbol gets its own
    pastel shade, so the cells that copy the same entry stand out together."""
    from matplotlib import colormaps

    n_rows, n_cols = len(cells), len(cells[0])
    symbols = sorted({cell for row in cells for cell in row if cell != "0"})
    pastel = len(symbols) <= 9
    shades = (colormaps["Pastel1"].colors[:len(symbols)] if pastel else ["#a6c8e0"])
    code = {s: (k + 1 if pastel else 1) for k, s in enumerate(symbols)}
    image = np.array([[code.get(cell, 0) for cell in row] for row in cells])
    cmap = ListedColormap(["#f7f9fc", *shades])
    ax.imshow(image, cmap=cmap, vmin=-0.5, vmax=len(shades) + 0.5, aspect="auto",
              interpolation="nearest")
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell != "0":
                ax.text(c, r, _math_label(cell), ha="center", va="center", fontsize=_LABEL + 1)
    ax.set_xticks(range(n_cols), [_math_label(label) for label in col_labels],
                  fontsize=_LABEL)
    ax.set_yticks(range(n_rows), [_math_label(label) for label in row_labels], fontsize=_LABEL)
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="both", length=0)
    ax.set_title(title, fontsize=_TITLE, pad=12)


def annotated_matrix(cells: Sequence[Sequence[str]], row_labels, col_labels, path,
                     title: str = "", dpi: int = 120) -> Path:
    """A symbolic matrix drawn as a grid, each non-zero cell labelled with its symbol.

    ``title`` may be math text (``$\\partial\\,\\mathrm{vec}\\,Z / ...$``).  Column labels
    run along the top, as the matrix is written.
    """
    n_rows, n_cols = len(cells), len(cells[0])
    fig = Figure(figsize=(0.62 * n_cols + 1.4, 0.42 * n_rows + 1.4), layout="constrained")
    _annotate(fig.add_subplot(), cells, row_labels, col_labels, title)
    return _save(fig, path, dpi)


def _label_size(label: str) -> str:
    """The size of a matrix from the label of its last vec entry: ``a_34`` -> ``3×4``."""
    index = label.split("_", 1)[1]
    h, w = index.split(",") if "," in index else (index[:len(index) // 2],
                                                  index[len(index) // 2:])
    return f"{h}×{w}"


def appendix_figure(example, path, dpi: int = 110, title: str | None = None) -> Path:
    """The note's appendix in one figure: ``dvecZ/dvecbeta`` beside ``dvecZ/dvecA``.

    Parameters
    ----------
    example : :class:`vecjac.symbolic.SymbolicConv`
        E.g. ``vecjac.symbolic.appendix_example()``: each non-zero cell is labelled with the
        symbol it copies (``a_32``, ``beta_12``).
    title : str, optional
        Default: ``Z = A * β`` with the sizes of ``A`` and ``β`` (for the appendix's
        example, with its padding (1, 1) and stride (1, 2)).
    """
    s = example
    n_beta, n_a, n_z = len(s.beta_labels), len(s.a_labels), len(s.row_labels)
    a_size, beta_size = _label_size(s.a_labels[-1]), _label_size(s.beta_labels[-1])
    if title is None:
        title = f"$Z = A * \\beta$,  $A$ {a_size},  $\\beta$ {beta_size}"
        if (a_size, beta_size, n_z) == ("3×4", "2×2", 12):
            title = ("The note's appendix: " + title + ",  padding (1, 1),  stride (1, 2)")
    fig = Figure(figsize=(0.6 * (n_beta + n_a) + 2.6, 0.42 * n_z + 1.9), layout="constrained")
    ax_beta, ax_a = fig.subplots(1, 2, width_ratios=[n_beta, n_a])
    _annotate(ax_beta, s.dZ_dbeta, s.row_labels, s.beta_labels,
              f"$\\partial\\,\\mathrm{{vec}}\\,Z / \\partial\\,\\mathrm{{vec}}\\,\\beta$"
              f"  ({n_z} × {n_beta})\nentries of $A$")
    _annotate(ax_a, s.dZ_dA, s.row_labels, s.a_labels,
              f"$\\partial\\,\\mathrm{{vec}}\\,Z / \\partial\\,\\mathrm{{vec}}\\,A$"
              f"  ({n_z} × {n_a})\nentries of $\\beta$")
    fig.suptitle(title, fontsize=_TITLE + 1)
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
        solid, cached dashed), density.  One legend, above the panels, names the series.
    """
    panels = [("nnz", "stored entries (nnz)"), ("mb", "megabytes"), ("ms", "build time (ms)"),
              ("density", "density")]
    notes = ["", "solid: sparse CSR\ndashed: stored dense",
             "solid: from scratch\ndashed: pattern cached", ""]
    fig = Figure(figsize=(16, 3.9 * len(sweeps) + 1.4 + (0.4 if title else 0)),
                 layout="constrained")
    rows = fig.subfigures(len(sweeps), 1, squeeze=False)[:, 0]
    colours = [f"C{k}" for k in range(10)]
    handles = []
    for k, (sub, (label, sweep)) in enumerate(zip(rows, sweeps.items(), strict=True)):
        row = sub.subplots(1, len(panels))
        x = np.asarray(sweep["x"], dtype=float)
        for (name, metrics), colour in zip(sweep["series"].items(), colours * 4, strict=False):
            for ax, (key, _) in zip(row, panels, strict=True):
                line, = ax.loglog(x, metrics[key], "o-", color=colour, markersize=5,
                                  linewidth=1.8, label=math_symbol(name))
                if k == 0 and ax is row[0]:
                    handles.append(line)
            row[1].loglog(x, metrics["dense_mb"], "--", color=colour, linewidth=1.3)
            if "ms_cached" in metrics:
                row[2].loglog(x, metrics["ms_cached"], "--", color=colour, linewidth=1.3)
        for ax, (_, ylabel), note in zip(row, panels, notes, strict=True):
            ax.set_xlabel(sweep["xlabel"], fontsize=_LABEL)
            ax.set_ylabel(ylabel, fontsize=_LABEL)
            ax.set_xticks(x, [f"{v:g}" for v in x])
            ax.minorticks_off()
            ax.tick_params(labelsize=_TICK)
            ax.grid(alpha=0.3, which="both")
            if note and k == 0:
                ax.set_title(note, fontsize=_TICK)
        sub.suptitle(label, fontsize=_LABEL + 1, x=0.01, ha="left", fontweight="bold")
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
               fontsize=_LABEL, frameon=False)
    if title:
        fig.suptitle(title, fontsize=_TITLE + 1)
    return _save(fig, path, dpi)


def _compact(value: float) -> str:
    """A bar label: ``4030464`` -> ``4.03 M``, ``204800`` -> ``205 k``, ``12.6``."""
    for limit, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def bar_chart(groups: Sequence[str], bars: Mapping[str, Mapping[str, Sequence[float]]],
              path, *, log: bool = False, columns: int = 2, title: str | None = None,
              dpi: int = 100) -> Path:
    """Grouped bars, one panel per metric, each bar labelled with its value.

    Parameters
    ----------
    groups : labels along x (e.g. the end-to-end Jacobians, as :func:`math_symbol` text)
    bars : mapping ``metric -> {series: values}``, one value per group in each series
        (e.g. ``{"flops": {"reverse": [...], "forward": [...]}}``).
    log : bool
        Logarithmic y axes (for values spanning decades).
    columns : int
        Panels per row.

    Values are written compactly (``4.03 M``, ``205 k``), on the bars and on the axes.
    """
    columns = min(columns, len(bars))
    rows = math.ceil(len(bars) / columns)
    fig = Figure(figsize=(6.2 * columns, 3.9 * rows + 0.5 + (0.5 if title else 0)),
                 layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    x = np.arange(len(groups))
    handles = []
    for ax, (metric, series) in zip(axes, bars.items(), strict=False):
        width = 0.8 / len(series)
        for k, (label, values) in enumerate(series.items()):
            shift = (k - (len(series) - 1) / 2) * width
            rects = ax.bar(x + shift, values, width, label=label, color=f"C{k}")
            ax.bar_label(rects, [_compact(v) for v in values], fontsize=_NOTE + 1, padding=2)
            if ax is axes[0]:
                handles.append(rects)
        ax.set_xticks(x, groups, fontsize=_LABEL)
        ax.set_title(metric, fontsize=_LABEL + 1)
        if log:
            ax.set_yscale("log")
        else:
            ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
        ax.margins(y=0.18)
        ax.tick_params(axis="y", labelsize=_TICK)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[len(bars):]:
        ax.set_axis_off()
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
               fontsize=_LABEL, frameon=False)
    if title:
        fig.suptitle(title, fontsize=_TITLE)
    return _save(fig, path, dpi)
