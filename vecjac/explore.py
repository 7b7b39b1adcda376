r"""A convolution's (or a pooling's) Jacobians entry by entry: one self-contained HTML page.

:func:`explore_html` writes a single HTML file (no server, no network, no external script,
style sheet or font) that shows, in the note's notation (1-based symbols, vec order,
numerator layout, the channel-block grid):

* the padded input ``A``, the kernel ``beta`` (``K_{j,i}`` with several channels) and the
  output ``Z``;
* ``dvecZ/dvecA`` (entries of the kernel) and ``dvecZ/dvecK`` (entries of the input), as
  grids: rows ``vec(Z)``, columns ``vec(A)`` / ``vec(K)``.

Pointing at (hover, or tap to pin) a stored entry highlights, in every panel, the output of
its row, the input entry and the kernel entry it involves, its twin entry in the other
Jacobian and the window of the output, and writes the partial derivative as the note does
(``dz_32/da_23 = beta_12``).  Pointing at an output shows its row, its window and its sum of
products (the note's rep.2); at an input or kernel entry, its column and every output it
reaches.  Stride and padding (and the window for pooling) can be changed on the page over
three values per axis around the given ones; a combination vecjac refuses shows the builder's
own message.

Every variant is computed here, by vecjac's own builders, and embedded as JSON: the
Jacobians are the CSR arrays of :func:`~vecjac.jacobians.conv_wrt_input`,
:func:`~vecjac.jacobians.conv_wrt_kernel` and :func:`~vecjac.jacobians.pool`; the symbol
of every stored entry is the gather map of :func:`~vecjac.jacobians.conv_pattern` (the
index of the kernel / input entry it copies) into the label tables of
:func:`vecjac.symbolic.symbolic_conv`; panel positions come from :func:`vecjac.vec.vec`.
The page's JavaScript only renders and highlights from these arrays: it holds no second
copy of the index arithmetic.

Notation.  One channel (the default) is the note's appendix: ``A`` (entries ``a_rs``),
``beta`` (``beta_rs``), ``Z`` (``z_pq``).  With several channels it is the note's section 2,
``Z_j = sum_i A_i * K_{j,i}``: entry ``a^(i)_rs`` of ``A_i``, ``k^(j,i)_rs`` of ``K_{j,i}``,
``z^(j)_pq`` of ``Z_j`` (channel as a superscript).  The values shown in "values" mode are
small random integers (seeded), the same for every variant.

Pooling (``layer="avgpool"`` / ``"maxpool"``, section 3.1.3): input ``I`` (entries ``i_rs``),
output ``A`` (``a_xy``), window ``P``.  There is no kernel Jacobian (pooling has no
parameters); the page shows ``dvecA/dvecI``.  Average pooling is ``I * P`` with
``P = 1/(h_l w_l)``: its entries are ``p_uv = 1/(h_l w_l)``, shown as symbols or values.
Max pooling's Jacobian holds the switches, which depend on the input: the page uses a
concrete input with distinct values (a seeded permutation, so there are no ties) and shows
it with its values; every stored entry is a 1 at the maximum of its window.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np

from .direct.pool import check_pool_args
from .jacobians.conv import conv_nnz, conv_pattern, conv_wrt_input, conv_wrt_kernel
from .jacobians.pool import pool
from .symbolic import symbolic_conv
from .vec import as_pair, check_choice, conv_output_shape, vec

__all__ = ["explore_html", "explore_data", "LAYERS", "LIMITS", "MAX_ENTRIES"]

LAYERS = ("conv", "avgpool", "maxpool")

#: Largest sizes the page accepts (every entry of every variant is drawn and embedded).
LIMITS = {"input_size": 8, "kernel_size": 5, "channels": 3, "stride": 4, "padding": 3}
#: Largest number of stored Jacobian entries the page embeds, over all its variants.
MAX_ENTRIES = 200_000

_SEED = 0


def explore_html(
    input_size=(3, 4),
    kernel_size=(2, 2),
    channels=(1, 1),
    stride=(1, 2),
    padding=(1, 1),
    layer: str = "conv",
    path=None,
) -> str:
    """The interactive page of a convolution's (or pooling's) Jacobians, as one HTML string.

    The defaults are the note's appendix: ``A`` 3x4, ``beta`` 2x2, padding (1, 1), stride
    (1, 2), ``Z`` 4x3, one input and one output channel.

    Parameters
    ----------
    input_size : int or (h_a, w_a)
        At most 8 x 8.
    kernel_size : int or (h_k, w_k)
        The kernel; for pooling, the window ``(h_l, w_l)``.  At most 5 x 5.
    channels : int or (C_in, C_out)
        At most 3 each; pooling keeps the channels (``C_in == C_out``).
    stride : int or (h_s, w_s)
        At most 4.  The page offers the three values ``max(1, s - 1)`` ... per axis.
    padding : int or (h_p, w_p)
        At most 3 (max pooling: at most half the window).  The page offers three values
        per axis from ``max(0, p - 1)``.
    layer : {"conv", "avgpool", "maxpool"}
    path : str or os.PathLike, optional
        Also write the page there (UTF-8).  Its folder must exist.

    Returns
    -------
    str
        The page: one HTML document, its data in ``<script type="application/json"
        id="vecjac-data">``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, naming it, before anything is built; also (``ValueError``) for a
        page whose variants would hold more than ``MAX_ENTRIES`` (200,000) stored entries,
        counted from shapes alone (at most about 3 MB of HTML; the appendix page is 110 KB).
    """
    out = _check_path(path)
    data = explore_data(input_size, kernel_size, channels, stride, padding, layer)
    page = _page(data)
    if out is not None:
        out.write_text(page, encoding="utf-8")
    return page


def explore_data(
    input_size=(3, 4), kernel_size=(2, 2), channels=(1, 1), stride=(1, 2), padding=(1, 1),
    layer: str = "conv",
) -> dict:
    """The data :func:`explore_html` embeds: every variant's panels and Jacobians.

    Returns a JSON-ready dict with ``layer``, ``given`` (the key of the requested variant),
    ``choices`` (the on-page options), ``vars`` (labels and values that every variant
    shares) and ``variants``, a dict from key (``"h_s,w_s,h_p,w_p"``, then ``",h_l,w_l"``
    for pooling) to the variant, or to ``{"error": message}`` where vecjac refuses the
    geometry (the message is the builder's own).
    """
    args = _check_args(input_size, kernel_size, channels, stride, padding, layer)
    return (_conv_data if layer == "conv" else _pool_data)(**args)


# --- arguments ------------------------------------------------------------------------------
def _check_args(input_size, kernel_size, channels, stride, padding, layer) -> dict:
    check_choice(layer, "layer", LAYERS)
    size = _capped(input_size, "input_size", 1)
    kernel = _capped(kernel_size, "kernel_size", 1)
    c_in, c_out = _capped(channels, "channels", 1)
    stride = _capped(stride, "stride", 1)
    padding = _capped(padding, "padding", 0)
    if layer == "conv":
        conv_output_shape(size, kernel, stride, padding)
    else:
        if c_in != c_out:
            raise ValueError(
                f"channels: pooling keeps every channel, so C_in must equal C_out, got "
                f"{(c_in, c_out)}")
        check_pool_args((c_in,) + size, layer[:3], kernel, stride, padding)
    args = dict(layer=layer, size=size, kernel=kernel, c_in=c_in, c_out=c_out, stride=stride,
                padding=padding)
    _check_entries(**args)
    return args


def _capped(value, name: str, minimum: int) -> tuple[int, int]:
    pair = as_pair(value, name, minimum)
    limit = LIMITS[name]
    if max(pair) > limit:
        raise ValueError(
            f"{name} must be at most {limit} per axis on the explore page (every entry of "
            f"every variant is drawn and embedded, so the page stays small), got {value!r}")
    return pair


def _check_entries(layer, size, kernel, c_in, c_out, stride, padding) -> None:
    """Refuse, from shapes alone, a page that would embed more than ``MAX_ENTRIES``."""
    total, count = 0, 0
    for combo in _combos(layer, stride, padding, kernel):
        s, p, window = combo[:2], combo[2:4], combo[4:] or kernel
        try:
            if layer == "conv":
                total += conv_nnz((c_in,) + size, (c_out, c_in) + window, s, p)
            else:  # the window pattern (and, for max pooling, one switch per row)
                total += conv_nnz((c_in, 1) + size, (1, 1) + window, s, p)
            count += 1
        except ValueError:
            pass
    if total > MAX_ENTRIES:
        raise ValueError(
            f"the explore page would embed {total:,} stored entries over its {count} "
            f"stride/padding{'' if layer == 'conv' else '/window'} variants, more than "
            f"{MAX_ENTRIES:,} (a page of a few MB): choose a smaller input_size, kernel_size "
            f"or fewer channels (got input_size {size}, kernel_size {kernel}, channels "
            f"{(c_in, c_out)})")


def _check_path(path) -> Path | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"path {str(out)!r} is a folder; give a file name such as page.html")
    if not out.parent.is_dir():
        raise ValueError(
            f"path: folder {str(out.parent)!r} does not exist (explore_html does not create "
            "folders)")
    return out


def _around(value: int, minimum: int) -> list[int]:
    """Three on-page choices around ``value``: from ``max(minimum, value - 1)``."""
    low = max(minimum, value - 1)
    return list(range(low, low + 3))


def _choices(layer, stride, padding, kernel) -> list[dict]:
    rows = [("h_s", "stride h_s", stride[0], 1), ("w_s", "stride w_s", stride[1], 1),
            ("h_p", "padding h_p", padding[0], 0), ("w_p", "padding w_p", padding[1], 0)]
    if layer != "conv":
        rows += [("h_l", "window h_l", kernel[0], 1), ("w_l", "window w_l", kernel[1], 1)]
    return [{"name": n, "label": label, "values": _around(v, m), "given": v}
            for n, label, v, m in rows]


def _combos(layer, stride, padding, kernel):
    """Every on-page variant: ``(h_s, w_s, h_p, w_p)`` (and ``h_l, w_l`` for pooling)."""
    return itertools.product(*(c["values"] for c in _choices(layer, stride, padding, kernel)))


def _key(values) -> str:
    return ",".join(str(int(v)) for v in values)


# --- labels, layout and the embedded form ---------------------------------------------------
def _sup(name: str, sup: str | None) -> str:
    """``a`` -> ``a^(2)``: the symbol name with a channel superscript, if any."""
    return name if sup is None else f"{name}^({sup})"


def _relabel(labels: list[str], name: str) -> list[str]:
    """``z_32`` -> ``name_32`` (symbolic_conv names its output entries ``z``)."""
    return [name + label[label.index("_"):] for label in labels]


def _layout(shape, offset=(0, 0)) -> list[list[int]]:
    """For every ``vec`` position of an array of ``shape`` (..., h, w): its block (the
    flattened leading index: channel, or kernel ``(j, i)``) and its row and column, shifted
    by ``offset`` (the padding)."""
    grids = np.indices(shape)
    lead = np.ravel_multi_index(tuple(grids[:-2]), shape[:-2]) if len(shape) > 2 else 0
    block = vec(np.broadcast_to(lead, shape))
    rows, cols = vec(grids[-2]) + offset[0], vec(grids[-1]) + offset[1]
    return np.stack([block, rows, cols], axis=1).tolist()


def _numbers(x) -> list:
    """Floats as JSON numbers, integer-valued ones as ints (a smaller page)."""
    v = np.asarray(x, dtype=float).ravel()
    whole = (v == np.floor(v)) & (np.abs(v) < 2.0**53)  # exactly representable integers
    out = v.astype(object)
    out[whole] = v[whole].astype(np.int64).tolist()
    return out.tolist()


def _jacobian(J, name, plain, wrt, groups, gather=None, gather_var=None, gather_values=None,
              majors=()):
    """A built Jacobian as embedded: its CSR arrays and the gather map of its symbols.

    Where the values are the gather (``data == vec(gather_var)[map]``, checked here), they
    are left out (``"data": null``): the page reads them through ``map``, the builder's own
    gather map.  Otherwise ``data`` is the builder's array.
    """
    m = J.matrix
    data = _numbers(m.data)
    if gather is not None:
        gather = np.asarray(gather)
        if gather.shape != m.indices.shape:
            raise AssertionError("gather map and Jacobian disagree")  # pragma: no cover
        if np.array_equal(m.data, np.asarray(gather_values)[gather]):
            data = None
    return {
        "name": name, "plain": plain, "of": "out", "wrt": wrt, "gather": gather_var,
        "shape": list(m.shape), "indptr": m.indptr.tolist(), "indices": m.indices.tolist(),
        "map": None if gather is None else gather.tolist(), "data": data,
        "row_groups": groups[0], "col_groups": groups[1], "majors": list(majors),
    }


def _groups(names: list[str], size: int) -> list[list]:
    """Channel blocks along one side: ``[start, length, label]``, none for a single block."""
    if len(names) < 2:
        return []
    return [[k * size, size, label] for k, label in enumerate(names)]


def _blocks(titles, shape, at) -> list[dict]:
    return [{"title": t, "shape": list(shape), "at": list(a)} for t, a in zip(titles, at,
                                                                               strict=True)]


def _intern(data: dict) -> dict:
    """Share repeated arrays between variants: every list inside a variant becomes
    ``{"@": k}``, entry ``k`` of ``data["tables"]`` (identical lists share one entry; the
    padded-input layout, for one, depends on the padding alone)."""
    tables, seen = [], {}

    def walk(node):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, list) and len(value) > 1:
                text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                if text not in seen:
                    seen[text] = len(tables)
                    tables.append(value)
                node[key] = {"@": seen[text]}

    for variant in data["variants"].values():
        walk(variant)
    data["tables"] = tables
    return data


# --- convolution ----------------------------------------------------------------------------
def _conv_data(layer, size, kernel, c_in, c_out, stride, padding) -> dict:
    rng = np.random.default_rng(_SEED)
    A = _nonzero_integers(rng, (c_in,) + size, 9)
    K = _nonzero_integers(rng, (c_out, c_in) + kernel, 3)
    one = c_in == c_out == 1
    a_names = ["a" if one else _sup("a", str(i + 1)) for i in range(c_in)]
    k_names = [["beta" if one else _sup("k", f"{j + 1},{i + 1}") for i in range(c_in)]
               for j in range(c_out)]
    # labels of vec(A) and vec(K): per channel / kernel, in vec order (symbolic_conv's tables)
    a_vec, k_vec = symbolic_conv(size, 1).a_labels, symbolic_conv(kernel, 1).a_labels
    a_labels = [lab for name in a_names for lab in _relabel(a_vec, name)]
    k_labels = [lab for row in k_names for name in row for lab in _relabel(k_vec, name)]
    kernel_name = "β" if one else "K"
    variants = {}
    for combo in _combos(layer, stride, padding, kernel):
        try:
            variants[_key(combo)] = _conv_variant(A, K, combo[:2], combo[2:4], a_names,
                                                  kernel_name)
        except ValueError as error:  # vecjac refuses the geometry: the page says why
            variants[_key(combo)] = {"error": str(error)}
    return _intern({
        "layer": layer, "version": 1,
        "title": _conv_title(size, kernel, c_in, c_out, one),
        "names": {"in": "A", "ker": kernel_name, "out": "Z"},
        "call": _call(size, kernel, (c_in, c_out), stride, padding, layer),
        "mode": "sym",
        "given": _key(stride + padding),
        "choices": _choices(layer, stride, padding, kernel),
        "vars": {"in": {"labels": a_labels, "values": _numbers(vec(A))},
                 "ker": {"labels": k_labels, "values": _numbers(vec(K)),
                         "pos": _layout(K.shape),
                         "blocks": _blocks(
                             [kernel_name] if one else
                             [f"K_{j + 1},{i + 1}" for j in range(c_out) for i in range(c_in)],
                             kernel, [(j, i) for j in range(c_out) for i in range(c_in)])}},
        "variants": variants,
    })


def _nonzero_integers(rng, shape, high: int) -> np.ndarray:
    """Integers in ``[-high, high]`` without 0 (a zero would hide a stored entry's value)."""
    magnitude = rng.integers(1, high + 1, size=shape)
    return (magnitude * rng.choice([-1, 1], size=shape)).astype(np.float64)


def _conv_variant(A, K, stride, padding, a_names, kernel_name) -> dict:
    c_out, c_in, hk, wk = K.shape
    pattern = conv_pattern(A.shape, K.shape, stride, padding)  # refuses an empty output
    J_A = conv_wrt_input(K, A.shape, stride, padding)
    J_K = conv_wrt_kernel(A, K.shape, stride, padding)
    for J, index in ((J_A, pattern.a_index), (J_K, pattern.k_index)):
        if not (np.array_equal(J.matrix.indptr, pattern.indptr)
                and np.array_equal(J.matrix.indices, index)):
            raise AssertionError("builder and pattern disagree")  # pragma: no cover
    _, hz, wz = pattern.output_shape
    rows = symbolic_conv(A.shape[1:], (hk, wk), stride, padding).row_labels  # z_pq, vec order
    z_names = ["z" if c_out == 1 else _sup("z", str(j + 1)) for j in range(c_out)]
    out_pos = _layout((c_out, hz, wz))
    padded = (A.shape[1] + 2 * padding[0], A.shape[2] + 2 * padding[1])
    z_blocks = [f"Z_{j + 1}" if c_out > 1 else "Z" for j in range(c_out)]
    a_blocks = [f"A_{i + 1}" if c_in > 1 else "A" for i in range(c_in)]
    k_groups = [f"K_{j + 1},{i + 1}" for j in range(c_out) for i in range(c_in)]
    return {
        "stride": list(stride), "padding": list(padding), "size": [hk, wk],
        # window of output (j, x, y) on the padded input, every input channel (-1)
        "window": {"size": [hk, wk],
                   "at": [[-1, x * stride[0], y * stride[1]] for _, x, y in out_pos]},
        "vars": {
            "in": {"pos": _layout(A.shape, padding), "padded": True,
                   "blocks": _blocks(a_blocks, padded, [(0, i) for i in range(c_in)])},
            "out": {"labels": [lab for z in z_names for lab in _relabel(rows, z)],
                    # Z = A * K is linear in A: vecZ = (dvecZ/dvecA) vecA
                    "values": _numbers(J_A.matrix @ vec(A)), "pos": out_pos,
                    "blocks": _blocks(z_blocks, (hz, wz), [(0, j) for j in range(c_out)])},
        },
        "jac": [
            _jacobian(J_A, "∂vecZ/∂vecA", "dvecZ/dvecA", "in",
                      (_groups(z_blocks, hz * wz), _groups(a_blocks, A[0].size)),
                      pattern.k_index, "ker", vec(K)),
            _jacobian(J_K, f"∂vecZ/∂vec{kernel_name}",
                      f"dvecZ/dvec{'beta' if kernel_name == 'β' else 'K'}", "ker",
                      (_groups(z_blocks, hz * wz), _groups(k_groups, hk * wk)),
                      pattern.a_index, "in", vec(A),
                      majors=[j * c_in * hk * wk for j in range(1, c_out)]),
        ],
    }


def _conv_title(size, kernel, c_in, c_out, one) -> str:
    if one:
        return (f"Z = A * β: A {size[0]}×{size[1]}, β {kernel[0]}×{kernel[1]} "
                "(one channel, the note's appendix notation)")
    return (f"Z_j = Σ_i A_i * K_j,i: A {c_in}×{size[0]}×{size[1]}, "
            f"K {c_out}×{c_in}×{kernel[0]}×{kernel[1]}")


def _call(size, kernel, channels, stride, padding, layer) -> str:
    return (f"explore_html(input_size={size}, kernel_size={kernel}, channels={channels}, "
            f"stride={stride}, padding={padding}, layer={layer!r})")


# --- pooling --------------------------------------------------------------------------------
def _pool_data(layer, size, kernel, c_in, c_out, stride, padding) -> dict:
    kind = layer[:3]
    rng = np.random.default_rng(_SEED)
    n = c_in * size[0] * size[1]
    I = (rng.permutation(n) + 1).reshape((c_in,) + size).astype(np.float64)  # no ties
    i_names = ["i" if c_in == 1 else _sup("i", str(c + 1)) for c in range(c_in)]
    first = symbolic_conv(size, 1)
    i_labels = [lab for name in i_names for lab in _relabel(first.a_labels, name)]
    variants = {}
    for combo in _combos(layer, stride, padding, kernel):
        try:
            variants[_key(combo)] = _pool_variant(I, kind, combo[4:], combo[:2], combo[2:4])
        except ValueError as error:
            variants[_key(combo)] = {"error": str(error)}
    shape = "×".join(map(str, ((c_in,) if c_in > 1 else ()) + size))
    return _intern({
        "layer": layer, "version": 1,
        "title": f"A = {kind}pool(I): I {shape}, window {kernel[0]}×{kernel[1]}",
        "names": {"in": "I", "ker": "P", "out": "A"},
        "call": _call(size, kernel, (c_in, c_out), stride, padding, layer),
        "mode": "val" if kind == "max" else "sym",
        "given": _key(stride + padding + kernel),
        "choices": _choices(layer, stride, padding, kernel),
        "vars": {"in": {"labels": i_labels, "values": _numbers(vec(I))}},
        "variants": variants,
    })


def _pool_variant(I, kind, window, stride, padding) -> dict:
    C, h, w = I.shape
    hl, wl = window
    J = pool(I, kind, window, stride, padding)  # refuses what pooling refuses
    # the window pattern: average pooling's gather map (which p_uv), max pooling's windows
    pattern = conv_pattern((C, 1, h, w), (1, 1, hl, wl), stride, padding)
    _, ha, wa = J.of_shape
    sym = symbolic_conv((h, w), window, stride, padding, a="i", k="p")
    a_names = ["a" if C == 1 else _sup("a", str(c + 1)) for c in range(C)]
    out_pos = _layout((C, ha, wa))
    padded = (h + 2 * padding[0], w + 2 * padding[1])
    i_blocks = [f"I_{c + 1}" if C > 1 else "I" for c in range(C)]
    a_blocks = [f"A_{c + 1}" if C > 1 else "A" for c in range(C)]
    groups = (_groups(a_blocks, ha * wa), _groups(i_blocks, h * w))
    variant = {
        "stride": list(stride), "padding": list(padding), "size": [hl, wl],
        "window": {"size": [hl, wl],
                   "at": [[c, x * stride[0], y * stride[1]] for c, x, y in out_pos]},
        "vars": {
            "in": {"pos": _layout(I.shape, padding), "padded": True,
                   "blocks": _blocks(i_blocks, padded, [(0, c) for c in range(C)])},
            "out": {"labels": [lab for a in a_names for lab in _relabel(sym.row_labels, a)],
                    "values": _numbers(J.matrix @ vec(I)), "pos": out_pos,
                    "blocks": _blocks(a_blocks, (ha, wa), [(0, c) for c in range(C)])},
        },
    }
    if kind == "avg":
        if not (np.array_equal(J.matrix.indptr, pattern.indptr)
                and np.array_equal(J.matrix.indices, pattern.a_index)):
            raise AssertionError("pool and pattern disagree")  # pragma: no cover
        P = np.full(hl * wl, 1.0 / (hl * wl))  # the note's P, in vec order
        variant["vars"]["ker"] = {"labels": sym.beta_labels, "values": _numbers(P),
                                  "pos": _layout((1, 1, hl, wl)),
                                  "blocks": _blocks(["P"], window, [(0, 0)])}
        variant["jac"] = [_jacobian(J, "∂vecA/∂vecI", "dvecA/dvecI", "in", groups,
                                    pattern.k_index, "ker", P)]
    else:  # the switches; the page also lists each window's entries inside the input
        variant["members"] = {"indptr": pattern.indptr.tolist(),
                              "indices": pattern.a_index.tolist()}
        variant["jac"] = [_jacobian(J, "∂vecA/∂vecI", "dvecA/dvecI", "in", groups)]
    return variant


# --- the page -------------------------------------------------------------------------------
def _page(data: dict) -> str:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    payload = payload.replace("<", "\\u003c")  # nothing in the JSON can close the script
    title = f"vecjac explore: {data['title']}"
    return (_TEMPLATE.replace("@@TITLE@@", _escape(title))
            .replace("@@CSS@@", _CSS).replace("@@JS@@", _JS)
            .replace("@@DATA@@", payload))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="vecjac explore">
<title>@@TITLE@@</title>
<style>
@@CSS@@
</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<p class="lead" id="lead"></p>
<form id="controls" autocomplete="off"></form>
</header>
<section id="info" aria-live="polite"></section>
<main id="panels"></main>
<footer id="footer"></footer>
<script type="application/json" id="vecjac-data">@@DATA@@</script>
<script>
@@JS@@
</script>
</body>
</html>
"""

_CSS = r"""
:root { --ink: #1b1b1b; --muted: #6b6b6b; --line: #c9c9c9; --band: #fff4c2;
  --rel: #f59e0b; --focus: #c2410c; --win: #1d4ed8; --pad: #f1f1f1; }
* { box-sizing: border-box; }
body { margin: 0; padding: 0 18px 24px; color: var(--ink); background: #fff;
  font: 18px/1.35 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
header { padding-top: 10px; }
h1 { font-size: 24px; margin: 4px 0; }
.lead { margin: 2px 0 6px; color: #333; max-width: 110ch; }
#controls { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; margin: 4px 0; }
#controls label { white-space: nowrap; }
#controls select { font-size: 17px; padding: 1px 3px; }
#controls .mode { margin-left: 10px; }
#info { position: sticky; top: 0; z-index: 5; background: #fffdf5; border: 2px solid #e0c56e;
  border-radius: 6px; padding: 6px 12px; margin: 8px 0 12px; height: 9.9em; overflow-y: auto; }
/* a fixed height: what it says never moves the panels under the pointer */
#info .big { font-size: 26px; font-family: "DejaVu Serif", Georgia, "Times New Roman", serif; }
#info .line { margin: 2px 0; }
#info .plain { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 15px;
  color: var(--muted); }
#info .hint { color: var(--muted); }
#info .err { color: #b91c1c; font-weight: bold; }
main { display: flex; flex-direction: column; gap: 14px; }
.row { display: flex; flex-wrap: wrap; gap: 14px 30px; align-items: flex-start; }
.panel h2 { font-size: 20px; margin: 0 0 4px; font-weight: 600; }
.panel h2 .sub { font-weight: normal; color: var(--muted); font-size: 16px; }
.blocks { display: grid; gap: 10px 14px; justify-content: start; }
.blocks .cap { font-size: 16px; color: #333; margin-bottom: 2px; }
table { border-collapse: collapse; }
.var td { min-width: 2.9em; height: 2.2em; padding: 0 4px; text-align: center;
  border: 1px solid #9a9a9a; font-family: "DejaVu Serif", Georgia, serif; cursor: pointer; }
.var td.pad { background: var(--pad); color: #a3a3a3; border-style: dashed; }
.var.val td { font-family: "DejaVu Sans Mono", Consolas, monospace; }
.jac { font-family: "DejaVu Serif", Georgia, serif; }
.jac td, .jac th { border: 1px solid var(--line); text-align: center; padding: 0 2px;
  min-width: 2.75em; height: 1.85em; cursor: pointer; }
.jac th { background: #f5f5f5; font-weight: normal; color: #222; }
.jac th.corner { background: #fff; border: none; cursor: default; }
.jac th.grp { background: #e8eef7; font-size: 15px; cursor: default; }
.jac td.z { color: #c4c4c4; }
.jac td.nz { background: #e9f1fb; color: #0b2e59; }
.jac.val td.nz { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 16px; }
.jac .bl { border-left: 2px solid #555; }
.jac .bl2 { border-left: 3px solid #b91c1c; }
.jac .bt { border-top: 2px solid #555; }
.jac.compact td, .jac.compact th { min-width: 0; width: 13px; height: 13px; padding: 0;
  font-size: 0; line-height: 0; }
.jac.compact td.nz { background: #4a78b5; }
.jac.compact th.grp { font-size: 13px; line-height: 1.2; width: auto; }
.m sub, .m sup { font-size: 0.7em; }
.m sub { vertical-align: -0.35em; }
.ss { display: inline-block; vertical-align: -0.42em; line-height: 1; font-size: 0.68em;
  margin-left: 1px; text-align: left; }
.ss sup, .ss sub { display: block; font-size: 1em; vertical-align: baseline; line-height: 1; }
.jac td.band, .jac th.band, .var td.band { background: var(--band); }
.jac td.nz.band { background: #fde9a6; }
.rel, .jac td.rel, .var td.rel, .jac th.rel { background: var(--rel) !important; color: #000; }
.jac.compact td.rel { background: #f59e0b !important; }
.focus, .jac td.focus, .var td.focus, .jac th.focus { background: var(--focus) !important;
  color: #fff !important; font-weight: bold; outline: 3px solid #7c2d12; outline-offset: -3px; }
.var td.win { box-shadow: inset 0 0 0 3px var(--win); }
.legend { font-size: 15px; color: #333; margin: 4px 0 0; }
.legend span.sw { display: inline-block; width: 1em; height: 1em; vertical-align: -0.15em;
  border: 1px solid #777; margin: 0 3px 0 10px; }
footer { margin-top: 18px; font-size: 14px; color: var(--muted); }
footer code { font-size: 13px; }
"""

_JS = r"""
(function () {
"use strict";
var DATA = JSON.parse(document.getElementById("vecjac-data").textContent);
var GREEK = {beta: "\u03b2"};
// name, optional ^(superscript), _subscript: digits (commas only between them), or h_s, K_j,i
var LABEL = new RegExp("([A-Za-z\u03a3]+)(?:\\^\\(([^)]*)\\))?_" +
  "([0-9]+(?:,[0-9]+)*|[a-z](?:,[a-z])?(?![A-Za-z0-9]))", "g");
var state = {key: DATA.given, mode: DATA.mode, pinned: null, V: null};
var marked = [];
var view = null;  // the rendered variant: cells and lookup tables

function esc(s) {
  return String(s).replace(/[&<>"]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c];
  });
}
function sym(name, sup, sub) {
  var base = esc(GREEK[name] || name);
  if (sup) {
    return '<span class="m">' + base + '<span class="ss"><sup>(' + esc(sup) +
      ')</sup><sub>' + esc(sub) + '</sub></span></span>';
  }
  return '<span class="m">' + base + '<sub>' + esc(sub) + '</sub></span>';
}
function math(text) {  // every label name_sub (name^(sup)_sub) typeset, the rest escaped
  var out = "", last = 0, m;
  LABEL.lastIndex = 0;
  while ((m = LABEL.exec(text)) !== null) {
    out += esc(text.slice(last, m.index)) + sym(m[1], m[2], m[3]);
    last = m.index + m[0].length;
  }
  return out + esc(text.slice(last));
}
function fmt(v) {
  if (v === null || v === undefined) { return ""; }
  var sign = v < 0 ? "\u2212" : "", a = Math.abs(v);
  if (Number.isInteger(a)) { return sign + a; }
  var inv = 1 / a;
  if (a < 1 && Math.abs(inv - Math.round(inv)) < 1e-9) { return sign + "1/" + Math.round(inv); }
  return sign + a.toFixed(2).replace(/0+$/, "").replace(/\.$/, "");
}
function ascii(v) { return fmt(v).replace("\u2212", "-"); }

// --- data of the current variant ---------------------------------------------------------
function resolve(node) {  // {"@": k} is table k of DATA.tables (arrays shared by variants)
  if (node && typeof node === "object" && !Array.isArray(node)) {
    if (node["@"] !== undefined) { return DATA.tables[node["@"]]; }
    var out = {};
    Object.keys(node).forEach(function (k) { out[k] = resolve(node[k]); });
    return out;
  }
  if (Array.isArray(node)) { return node.map(resolve); }
  return node;
}
function variant() {
  var raw = DATA.variants[state.key];
  if (!raw || raw.error) { return raw || {error: "no such variant"}; }
  raw = resolve(raw);
  var V = {raw: raw, vars: {}, jac: raw.jac, window: raw.window, members: raw.members};
  ["in", "ker", "out"].forEach(function (v) {
    if (!raw.vars[v]) { return; }
    V.vars[v] = Object.assign({}, DATA.vars[v] || {}, raw.vars[v]);
  });
  if (!V.vars.ker && DATA.vars.ker) { V.vars.ker = DATA.vars.ker; }
  V.jac.forEach(function (J) {  // "data": null: the values are the gather vec(source)[map]
    if (J.data === null) {
      var source = V.vars[J.gather].values;
      J.data = J.map.map(function (g) { return source[g]; });
    }
  });
  return V;
}
function label(v, i) { return view.V.vars[v].labels[i]; }
function value(v, i) { return view.V.vars[v].values[i]; }

// --- rendering ---------------------------------------------------------------------------
function renderVar(v, title, sub) {
  var X = view.V.vars[v], at = {};
  X.pos.forEach(function (p, i) { at[p.join(",")] = i; });
  var nCols = 1;
  X.blocks.forEach(function (b) { nCols = Math.max(nCols, b.at[1] + 1); });
  var html = '<div class="panel"><h2>' + title + ' <span class="sub">' + sub + '</span></h2>' +
    '<div class="blocks" style="grid-template-columns: repeat(' + nCols + ', auto)">';
  X.blocks.forEach(function (b, k) {
    html += '<div style="grid-row:' + (b.at[0] + 1) + ';grid-column:' + (b.at[1] + 1) + '">';
    if (X.blocks.length > 1) {
      var padded = X.padded && (view.V.raw.padding[0] > 0 || view.V.raw.padding[1] > 0);
      html += '<div class="cap">' + math(b.title) + (padded ? " padded" : "") + "</div>";
    }
    html += '<table class="var' + (state.mode === "val" ? " val" : "") + '">';
    for (var R = 0; R < b.shape[0]; R++) {
      html += "<tr>";
      for (var S = 0; S < b.shape[1]; S++) {
        var i = at[k + "," + R + "," + S];
        if (i === undefined) {
          html += '<td class="pad" data-pad="' + v + '" data-b="' + k + '" data-rr="' + R +
            '" data-ss="' + S + '">0</td>';
        } else {
          html += '<td data-v="' + v + '" data-i="' + i + '">' +
            (state.mode === "val" ? fmt(X.values[i]) : math(X.labels[i])) + "</td>";
        }
      }
      html += "</tr>";
    }
    html += "</table></div>";
  });
  return html + "</div></div>";
}

function entryText(J, e) {
  if (state.mode === "sym" && J.gather) { return math(label(J.gather, J.map[e])); }
  return fmt(J.data[e]);
}

function renderJac(J, jx) {
  var n = J.shape[0], m = J.shape[1];
  var compact = m > 36 || n > 64;
  var colBreak = {}, rowBreak = {}, major = {};
  J.col_groups.forEach(function (g) { if (g[0] > 0) { colBreak[g[0]] = true; } });
  J.row_groups.forEach(function (g) { if (g[0] > 0) { rowBreak[g[0]] = true; } });
  J.majors.forEach(function (c) { major[c] = true; });
  var stored = [];
  for (var r = 0; r < n; r++) {
    var row = {};
    for (var e = J.indptr[r]; e < J.indptr[r + 1]; e++) { row[J.indices[e]] = e; }
    stored.push(row);
  }
  var lead = J.row_groups.length ? 2 : 1;
  var html = '<div class="panel"><h2>' + math(J.name) + ' <span class="sub">' + n + " \u00d7 " +
    m + ": rows vec" + DATA.names.out + ", columns vec" +
    DATA.names[J.wrt] + (J.gather ? ", entries of " + DATA.names[J.gather] : "") +
    '</span></h2><table class="jac' + (compact ? " compact" : "") +
    (state.mode === "val" ? " val" : "") + '" data-j="' + jx + '">';
  if (J.col_groups.length) {
    html += '<tr><th class="corner" colspan="' + lead + '"></th>';
    J.col_groups.forEach(function (g) {
      var cls = "grp" + (g[0] > 0 ? (major[g[0]] ? " bl2" : " bl") : "");
      html += '<th class="' + cls + '" colspan="' + g[1] + '">' + math(g[2]) + "</th>";
    });
    html += "</tr>";
  }
  html += '<tr><th class="corner" colspan="' + lead + '"></th>';
  for (var c = 0; c < m; c++) {
    html += '<th class="' + (major[c] ? "bl2" : colBreak[c] ? "bl" : "") + '" data-v="' +
      J.wrt + '" data-i="' + c + '">' + (compact ? "" : math(label(J.wrt, c))) + "</th>";
  }
  html += "</tr>";
  var groupAt = {};
  J.row_groups.forEach(function (g) { groupAt[g[0]] = g; });
  for (r = 0; r < n; r++) {
    var bt = rowBreak[r] ? " bt" : "";
    html += "<tr>";
    if (groupAt[r]) {
      html += '<th class="grp' + bt + '" rowspan="' + groupAt[r][1] + '">' +
        math(groupAt[r][2]) + "</th>";
    }
    html += '<th class="' + bt + '" data-v="out" data-i="' + r + '">' +
      (compact ? "" : math(label("out", r))) + "</th>";
    for (c = 0; c < m; c++) {
      var cls = (major[c] ? "bl2" : colBreak[c] ? "bl" : "") + bt;
      var e2 = stored[r][c];
      if (e2 === undefined) {
        html += '<td class="z ' + cls + '" data-j="' + jx + '" data-r="' + r + '" data-c="' +
          c + '">' + (compact ? "" : "0") + "</td>";
      } else {
        html += '<td class="nz ' + cls + '" data-j="' + jx + '" data-r="' + r + '" data-c="' +
          c + '" data-e="' + e2 + '">' + (compact ? "" : entryText(J, e2)) + "</td>";
      }
    }
    html += "</tr>";
  }
  return html + "</table></div>";
}

function render() {
  var panels = document.getElementById("panels");
  var V = variant();
  marked = [];
  if (V.error) {
    view = null;
    panels.innerHTML = "";
    info('<div class="line err">vecjac refuses this combination: ' + esc(V.error) + "</div>" +
      '<div class="line hint">Choose other values above.</div>');
    return;
  }
  view = {V: V};
  var N = DATA.names, pool = DATA.layer !== "conv";
  var sIn = DATA.layer === "maxpool" ? "(input, padded; distinct values: no ties)" :
    "(input, with its zero padding)";
  var top = '<div class="row">' + renderVar("in", N.in, sIn);
  if (V.vars.ker) {
    top += renderVar("ker", N.ker, pool ? math("(window, every p = 1/(h_l w_l))") : "(kernel)");
  }
  top += renderVar("out", N.out, "(output)") + "</div>";
  var bottom = '<div class="row">';
  V.jac.forEach(function (J, jx) { bottom += renderJac(J, jx); });
  bottom += "</div>";
  panels.innerHTML = top + bottom + legend();
  index();
  apply(state.pinned);
}

function legend() {
  return '<div class="legend"><span class="sw" style="background:var(--focus)"></span>' +
    'the pointed entry and what it involves <span class="sw" style="background:var(--rel)">' +
    '</span>related entries <span class="sw" style="background:var(--band)"></span>' +
    'its row and column <span class="sw" style="box-shadow: inset 0 0 0 3px var(--win)">' +
    '</span>window of the output. &nbsp; Tap or click to pin a selection; click again to ' +
    'release.</div>';
}

// lookup tables of the rendered variant: cells by variable entry and by Jacobian entry
function index() {
  var V = view.V;
  view.varCells = {in: [], ker: [], out: []};
  view.padCells = {};
  document.querySelectorAll("#panels [data-v]").forEach(function (el) {
    var list = view.varCells[el.dataset.v], i = +el.dataset.i;
    (list[i] = list[i] || []).push(el);
  });
  document.querySelectorAll("#panels td[data-pad]").forEach(function (el) {
    view.padCells[[el.dataset.pad, el.dataset.b, el.dataset.rr, el.dataset.ss].join(",")] = el;
  });
  view.in_at = {};
  V.vars.in.pos.forEach(function (p, i) { view.in_at[p.join(",")] = i; });
  view.jacs = V.jac.map(function (J, jx) {
    var t = {rows: [], rowOf: [], byCol: {}, byMap: {}};
    var table = document.querySelector('#panels table.jac[data-j="' + jx + '"]');
    table.querySelectorAll("td[data-r]").forEach(function (el) {
      var r = +el.dataset.r;
      (t.rows[r] = t.rows[r] || [])[+el.dataset.c] = el;
    });
    for (var r = 0; r < J.shape[0]; r++) {
      for (var e = J.indptr[r]; e < J.indptr[r + 1]; e++) {
        t.rowOf[e] = r;
        (t.byCol[J.indices[e]] = t.byCol[J.indices[e]] || []).push(e);
        if (J.map) { (t.byMap[J.map[e]] = t.byMap[J.map[e]] || []).push(e); }
      }
    }
    return t;
  });
}

// --- highlighting --------------------------------------------------------------------------
function mark(el, cls) { if (el) { el.classList.add(cls); marked.push([el, cls]); } }
function clear() {
  marked.forEach(function (p) { p[0].classList.remove(p[1]); });
  marked = [];
}
function markVar(v, i, cls) {
  (view.varCells[v][i] || []).forEach(function (el) { mark(el, cls); });
}
function cell(jx, r, c) { return (view.jacs[jx].rows[r] || [])[c]; }
function markEntry(jx, e, cls) {
  var J = view.V.jac[jx];
  mark(cell(jx, view.jacs[jx].rowOf[e], J.indices[e]), cls);
}
function bandRow(r) {
  view.jacs.forEach(function (t) {
    (t.rows[r] || []).forEach(function (el) { mark(el, "band"); });
  });
}
function bandCol(jx, c) {
  view.jacs[jx].rows.forEach(function (row) { mark(row[c], "band"); });
}
function markWindow(r) {  // the output's window on the padded input (every channel for conv)
  var W = view.V.window, at = W.at[r], blocks = view.V.vars.in.blocks;
  blocks.forEach(function (b, k) {
    if (at[0] >= 0 && at[0] !== k) { return; }
    for (var R = at[1]; R < at[1] + W.size[0]; R++) {
      for (var S = at[2]; S < at[2] + W.size[1]; S++) {
        var i = view.in_at[k + "," + R + "," + S];
        if (i === undefined) { mark(view.padCells[["in", k, R, S].join(",")], "win"); }
        else { markVar("in", i, "win"); }
      }
    }
  });
}
function rowEntries(jx, r) {
  var J = view.V.jac[jx], list = [];
  for (var e = J.indptr[r]; e < J.indptr[r + 1]; e++) { list.push(e); }
  return list;
}
// what a stored entry involves: its output row, its column's variable and its gathered one
function involves(jx, e) {
  var J = view.V.jac[jx], inv = {out: view.jacs[jx].rowOf[e]};
  inv[J.wrt] = J.indices[e];
  if (J.gather) { inv[J.gather] = J.map[e]; }
  return inv;
}
function same(jx, e, inv) {
  var J = view.V.jac[jx];
  return J.indices[e] === inv[J.wrt] && (!J.gather || inv[J.gather] === undefined ||
    J.map[e] === inv[J.gather]);
}

function pointEntry(jx, e) {
  var inv = involves(jx, e), r = inv.out;
  bandRow(r);
  view.V.jac.forEach(function (J, kx) {
    if (inv[J.wrt] !== undefined) { bandCol(kx, inv[J.wrt]); }
    rowEntries(kx, r).forEach(function (e2) {
      if (same(kx, e2, inv)) { markEntry(kx, e2, "focus"); }
    });
  });
  markWindow(r);
  Object.keys(inv).forEach(function (v) { markVar(v, inv[v], "focus"); });
  info(entryInfo(jx, e, inv));
}
function pointZero(jx, r, c) {
  var J = view.V.jac[jx];
  bandRow(r); bandCol(jx, c); markWindow(r);
  mark(cell(jx, r, c), "focus");
  markVar("out", r, "focus"); markVar(J.wrt, c, "focus");
  var why;
  if (J.wrt === "ker") {
    why = label("ker", c) + " is a kernel entry that " + label("out", r) + " does not use";
  } else if (view.V.members && membersOf(r).indexOf(c) >= 0) {
    why = label("in", c) + " is in the window of " + label("out", r) + " but is not its maximum";
  } else {
    why = label("in", c) + " is not in the window of " + label("out", r);
  }
  var d = "\u2202" + label("out", r) + "/\u2202" + label(J.wrt, c);
  info(line(math(d) + " = 0", "big") + line(math(why) + ".") +
    line(esc("d" + label("out", r) + "/d" + label(J.wrt, c) + " = 0"), "plain"));
}
function membersOf(r) {
  var M = view.V.members;
  return M.indices.slice(M.indptr[r], M.indptr[r + 1]);
}
function pointOutput(r) {
  bandRow(r); markWindow(r);
  view.V.jac.forEach(function (J, jx) {
    rowEntries(jx, r).forEach(function (e) {
      markEntry(jx, e, "rel");
      var inv = involves(jx, e);
      Object.keys(inv).forEach(function (v) { if (v !== "out") { markVar(v, inv[v], "rel"); } });
    });
  });
  markVar("out", r, "focus");
  info(outputInfo(r));
}
function pointVar(v, i) {
  // its column (where it is the variable) or the entries that copy it (its gather map)
  var primary = null, reached = {}, terms = [];
  ["wrt", "gather"].forEach(function (role) {
    view.V.jac.forEach(function (J, jx) {
      if (primary === null && J[role] === v) { primary = jx; }
    });
  });
  view.V.jac.forEach(function (J, jx) {
    var t = view.jacs[jx], list = J.wrt === v ? t.byCol[i] : J.gather === v ? t.byMap[i] : null;
    if (J.wrt === v) { bandCol(jx, i); }
    (list || []).forEach(function (e) {
      markEntry(jx, e, "rel");
      var r = t.rowOf[e];
      markVar("out", r, "rel");
      if (jx === primary) {
        reached[r] = true;
        terms.push("\u2202" + label("out", r) + "/\u2202" + label(J.wrt, J.indices[e]) + " = " +
          (J.gather ? label(J.gather, J.map[e]) : ascii(J.data[e])));
      }
    });
  });
  markVar(v, i, "focus");
  var N = DATA.names, k = Object.keys(reached).length, J0 = view.V.jac[primary];
  var head = math(label(v, i)) + (state.mode === "val" || DATA.layer === "maxpool" ?
    " = " + fmt(value(v, i)) : "") + ": entry " + (i + 1) + " of vec" + N[v];
  if (J0 && J0.wrt === v) { head += ", column " + (i + 1) + " of " + math(J0.name); }
  var body = k ? "reaches " + k + " output" + (k > 1 ? "s" : "") + ": " + math(terms.join(",  ")) :
    "reaches no output";
  info(line(head, "big") + line(body));
}
function pointPad(el) {
  mark(el, "focus");
  var N = DATA.names;
  info(line("padding: a zero around " + N.in, "big") + line("Not an entry of vec" + N.in +
    ", so it has no column in " + math(view.V.jac[0].name) + "; its products add nothing."));
}

function line(html, cls) {
  return '<div class="line' + (cls ? " " + cls : "") + '">' + html + "</div>";
}
function info(html) { document.getElementById("info").innerHTML = html; }

function entryInfo(jx, e, inv) {
  var J = view.V.jac[jx], r = inv.out, c = inv[J.wrt], N = DATA.names;
  var out = label("out", r), wrt = label(J.wrt, c);
  var symbol = J.gather ? label(J.gather, J.map[e]) : ascii(J.data[e]);
  var d = "\u2202" + out + "/\u2202" + wrt + " = " + symbol;
  var html = math(d);
  if (J.gather) { html += " = " + fmt(J.data[e]); }
  var text = line(html, "big");
  view.V.jac.forEach(function (K, kx) {  // the twin entry in the other Jacobian
    if (kx === jx) { return; }
    rowEntries(kx, r).forEach(function (e2) {
      if (!same(kx, e2, inv)) { return; }
      var s2 = K.gather ? label(K.gather, K.map[e2]) : ascii(K.data[e2]);
      text += line("and in " + math(K.name) + ": " + math("\u2202" + out + "/\u2202" +
        label(K.wrt, K.indices[e2]) + " = " + s2) + (K.gather ? " = " + fmt(K.data[e2]) : ""));
    });
  });
  var where = "row " + (r + 1) + " (" + math(out) + "), column " + (c + 1) + " (" + math(wrt) +
    ") of " + math(J.name) + blockOf(J, r, c);
  text += line(where);
  if (DATA.layer === "maxpool") {
    text += line(math(wrt) + " = " + fmt(value("in", c)) + " is the maximum of the window of " +
      math(out) + ": the switch");
  } else {
    text += line(math(out + " = " + formula(r)) +
      (DATA.layer === "avgpool" ? ",  every p = " + fmt(J.data[e]) : ""));
  }
  var plain = "d" + out + "/d" + wrt + " = " + symbol;
  return text + line(esc(plain), "plain");
}
function blockOf(J, r, c) {
  var rg = J.row_groups.filter(function (g) { return r >= g[0] && r < g[0] + g[1]; })[0];
  var cg = J.col_groups.filter(function (g) { return c >= g[0] && c < g[0] + g[1]; })[0];
  if (!rg && !cg) { return ""; }
  var of = rg ? rg[2] : DATA.names.out, wrt = cg ? cg[2] : DATA.names[J.wrt];
  return ", block " + math("\u2202vec" + of + "/\u2202vec" + wrt);
}
// the output as the note writes it (rep.2): products of its row's entries, in the order of
// the kernel (channel, then row-major); max pooling: max over the window's entries
function formula(r) {
  var J = view.V.jac[0], terms = [];
  if (J.gather) {
    var pos = view.V.vars[J.gather].pos;
    rowEntries(0, r).forEach(function (e) {
      terms.push([pos[J.map[e]], label(J.wrt, J.indices[e]) + " " + label(J.gather, J.map[e])]);
    });
  } else {
    var inPos = view.V.vars.in.pos;
    membersOf(r).forEach(function (i) { terms.push([inPos[i], label("in", i)]); });
  }
  terms.sort(function (a, b) {
    return a[0][0] - b[0][0] || a[0][1] - b[0][1] || a[0][2] - b[0][2];
  });
  var text = terms.map(function (t) { return t[1]; }).join(J.gather ? " + " : ", ");
  return J.gather ? text || "0" : "max(" + text + ")";
}
function outputInfo(r) {
  var out = label("out", r), N = DATA.names, f = formula(r);
  var html = math(out + " = " + f);
  if (DATA.layer === "maxpool") {
    var J = view.V.jac[0];
    html += " = " + math(label("in", J.indices[J.indptr[r]]));
  }
  var text = line(html + (f === "0" ? "" : " = " + fmt(value("out", r))), "big");
  text += line(math(out) + " is entry " + (r + 1) + " of vec" + N.out + ": row " + (r + 1) +
    " of every Jacobian; its window is outlined on " + N.in + ".");
  return text + line(esc(out + " = " + f), "plain");
}

// --- pointing ----------------------------------------------------------------------------
function target(el) {
  if (!el || !el.closest) { return null; }
  var td = el.closest("[data-v], td[data-r], td[data-pad]");
  if (!td || !document.getElementById("panels").contains(td)) { return null; }
  if (td.dataset.pad) { return {pad: td}; }
  if (td.dataset.r !== undefined) {
    return {j: +td.dataset.j, r: +td.dataset.r, c: +td.dataset.c,
      e: td.dataset.e === undefined ? null : +td.dataset.e};
  }
  return {v: td.dataset.v, i: +td.dataset.i};
}
function apply(t) {
  clear();
  if (!view) { return; }
  if (!t) {
    info(line("Point at (hover) or tap any entry of any panel.", "hint") + line(intro()));
    return;
  }
  if (t.pad) {
    var still = document.body.contains(t.pad);
    if (still) { pointPad(t.pad); } else { apply(null); }
  } else if (t.j !== undefined) {
    if (!view.V.jac[t.j] || t.r >= view.V.jac[t.j].shape[0] || t.c >= view.V.jac[t.j].shape[1]) {
      state.pinned = null;
      return apply(null);
    }
    var e = (view.jacs[t.j].rows[t.r] || [])[t.c];
    e = e && e.dataset.e !== undefined ? +e.dataset.e : null;
    if (e === null) { pointZero(t.j, t.r, t.c); } else { pointEntry(t.j, e); }
  } else if (t.v === "out") {
    if (t.i >= view.V.vars.out.labels.length) { state.pinned = null; return apply(null); }
    pointOutput(t.i);
  } else if (view.V.vars[t.v]) {
    pointVar(t.v, t.i);
  }
}
function intro() {
  if (DATA.layer === "conv") {
    return "A stored entry of " + math("\u2202vecZ/\u2202vecA") + " is an entry of the kernel, " +
      "one of " + math(view.V.jac[1].name) + " an entry of " + DATA.names.in +
      " (the gather maps of vecjac's builders).";
  }
  if (DATA.layer === "avgpool") {
    return "Average pooling is I * P with every p = " + math("1/(h_l w_l)") +
      " (padding zeros count in the mean): every stored entry of " +
      math("\u2202vecA/\u2202vecI") + " is an entry of P. Pooling has no kernel Jacobian.";
  }
  return "Max pooling: " + math("\u2202vecA/\u2202vecI") + " holds the switches for the " +
    "input shown, a 1 where each window's maximum sits. Pooling has no kernel Jacobian.";
}

var panels = document.getElementById("panels");
panels.addEventListener("mouseover", function (ev) {
  var t = target(ev.target);
  if (t) { apply(t); }
});
panels.addEventListener("mouseleave", function () { apply(state.pinned); });
panels.addEventListener("click", function (ev) {
  var t = target(ev.target);
  if (!t) { return; }
  var same = state.pinned && targetKey(state.pinned) === targetKey(t);
  state.pinned = same ? null : t;
  apply(state.pinned || t);
});
function targetKey(t) {
  if (t.pad) { return "pad " + [t.pad.dataset.b, t.pad.dataset.rr, t.pad.dataset.ss].join(","); }
  return t.j !== undefined ? "jac " + [t.j, t.r, t.c].join(",") : "var " + t.v + "," + t.i;
}

// --- controls ------------------------------------------------------------------------------
function controls() {
  var form = document.getElementById("controls"), given = DATA.given.split(",");
  var html = "";
  DATA.choices.forEach(function (c, k) {
    html += "<label>" + math(c.label) + ' <select data-k="' + k + '">';
    c.values.forEach(function (v) {
      html += '<option value="' + v + '"' + (String(v) === given[k] ? " selected" : "") + ">" +
        v + (v === c.given ? " (given)" : "") + "</option>";
    });
    html += "</select></label>";
  });
  html += '<span class="mode">show: <label><input type="radio" name="mode" value="sym"' +
    (state.mode === "sym" ? " checked" : "") + '> symbols</label> <label><input type="radio" ' +
    'name="mode" value="val"' + (state.mode === "val" ? " checked" : "") +
    "> values</label></span>";
  form.innerHTML = html;
  form.addEventListener("change", function (ev) {
    if (ev.target.name === "mode") { state.mode = ev.target.value; }
    else {
      state.key = Array.prototype.map.call(form.querySelectorAll("select"),
        function (s) { return s.value; }).join(",");
      state.pinned = null;
    }
    render();
  });
}

document.getElementById("title").innerHTML = "vecjac explore: " + math(DATA.title);
document.getElementById("lead").innerHTML =
  "vec stacks the columns of each matrix (column-major), then the channels; a Jacobian is in " +
  "numerator layout: rows index vec of the output, columns vec of the variable. Symbols are " +
  "1-based (" + math("a_23") + ": row 2, column 3). The stride and padding below re-read " +
  "data embedded in this page, computed by vecjac's own builders.";
document.getElementById("footer").innerHTML = "Written by <code>" + esc(DATA.call) +
  "</code> (vecjac; the note's sections 2, 3.1.3, 3.1.5 and the appendix). " +
  "One self-contained file: no server, no network.";
controls();
render();
})();
"""
