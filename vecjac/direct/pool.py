"""Pooling, the note's section 3.1.3: ``pool2d``, its backward pass and max pooling's switches.

Pooling works channel by channel: A_j = f_pool(I_j).  Average pooling is, literally as the
note builds it, the convolution A_j = I_j * P with the constant kernel P = 1/(h_l w_l) and
the pool's own padding and stride (zeros of the padding count in the mean).  Max pooling
keeps the note's "switches" (the window entry of each maximum); padding acts as -inf.
L2-norm pooling is A = sqrt(I^2 * 1), so dA_xy/dI_pq = I_pq / A_xy (0 where A_xy = 0).
The direct path sums (or maximises) the h_l w_l strided views of the padded input, one per
window offset, and adds windows back the same way (col2im), as conv2d_backward does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from ..vec import as_float_array, as_pair, check_choice, conv_output_shape
from .conv import _swap, vec_layout

__all__ = [
    "POOL_KINDS",
    "TIE_RULES",
    "PoolArgs",
    "check_pool_args",
    "pool2d",
    "pool2d_backward",
    "max_pool_switches",
    "max_pool_shares",
]

POOL_KINDS = ("avg", "max", "l2")
TIE_RULES = ("first", "split")


class PoolArgs(NamedTuple):
    """Validated pooling arguments: every pair normalised, the output shape computed."""

    kind: str
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ties: str
    output_shape: tuple[int, ...]

    @property
    def geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """``(size, stride, padding)``, the positional arguments after ``kind``."""
        return self.size, self.stride, self.padding


def check_pool_args(
    input_shape, kind: str = "avg", size=2, stride=None, padding=0, ties: str = "first"
) -> PoolArgs:
    """Validate pooling arguments against an input shape, before anything is allocated.

    Parameters
    ----------
    input_shape : (C, h_z, w_z) or (N, C, h_z, w_z)
        The shape of ``I`` (the note calls the pooled map's size ``h_z x w_z``).
    kind : {"avg", "max", "l2"}
    size : int or (h_l, w_l)
        The pooling window ``P``.
    stride : int or pair, optional
        ``None`` (default) means the window size: non-overlapping windows.
    padding : int or pair
        At most half the window for max pooling (every window must hold an input entry).
    ties : {"first", "split"}
        Tie rule of max pooling (ignored by the other kinds).

    Returns
    -------
    PoolArgs
        ``output_shape`` is ``(C, h_a, w_a)`` or ``(N, C, h_a, w_a)`` with
        ``h_a = floor((h_z + 2 h_p - h_l) / h_s) + 1``.
    """
    check_choice(kind, "kind", POOL_KINDS)
    check_choice(ties, "ties", TIE_RULES)
    size = as_pair(size, "size", 1)
    stride = size if stride is None else as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    if kind == "max" and (padding[0] > size[0] // 2 or padding[1] > size[1] // 2):
        raise ValueError(
            f"padding {padding} is larger than half the pool size {size}: max pooling "
            "needs padding <= size // 2 so that every window holds an input entry"
        )
    input_shape = tuple(int(s) for s in input_shape)
    hw = conv_output_shape(input_shape[-2:], size, stride, padding, name="pool size")
    return PoolArgs(kind, size, stride, padding, ties, input_shape[:-2] + hw)


def pool2d(I: ArrayLike, kind: str = "avg", size=2, stride=None, padding=0) -> NDArray:
    """``A_j = f_pool(I_j)`` for every channel (and sample), as section 2 of the note.

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
    kind : {"avg", "max", "l2"}
        ``"avg"``: ``I_j * P`` with ``P = 1/(h_l w_l)`` (padding zeros count in the mean);
        ``"max"``: window maximum, padding acting as -inf;
        ``"l2"``: ``sqrt`` of the window's sum of squares (padding zeros add nothing).
        Computed as sums (maxima) of the ``h_l w_l`` strided views of the padded input, one
        per window offset; equal to :func:`conv2d` with ``P`` for every channel (tested).
    size, stride, padding : see :func:`check_pool_args`

    Returns
    -------
    A : ndarray, shape (C, h_a, w_a) or (N, C, h_a, w_a)
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, kind, size, stride, padding)
    if _transposable(I, args):  # the transposed maps: the output keeps the vec layout
        return _swap(pool2d(_swap(I), args.kind, *_transposed(args)))
    if args.kind == "max":
        return _window_max(I, args)
    if args.kind == "avg":
        total = _tiled_sum(I, args.size) if tiles(args, I.shape) else _window_sum(I, args)
        total *= 1.0 / (args.size[0] * args.size[1])
        return total
    return np.sqrt(_window_sum(I * I, args))


def pool2d_backward(
    dA: ArrayLike,
    I: ArrayLike,
    kind: str = "avg",
    size=2,
    stride=None,
    padding=0,
    ties: str = "first",
) -> NDArray:
    """Back-propagate ``dA = dL/dA`` through :func:`pool2d`: returns ``dI = dL/dI``.

    Every window ``(x, y)`` sends ``dA_xy`` back to its entries with the weights
    ``dA_xy/dI_pq``: ``1/(h_l w_l)`` (avg), the switches (max), ``I_pq / A_xy`` (l2, 0 where
    ``A_xy = 0``); overlapping windows add up.

    Parameters
    ----------
    dA : array_like, shape of ``pool2d(I, ...)``
    I, kind, size, stride, padding : as :func:`pool2d`
    ties : {"first", "split"}
        Max pooling only; see :func:`max_pool_shares`.

    Returns
    -------
    dI : ndarray, shape of I
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, kind, size, stride, padding, ties)
    dA = as_float_array(dA, "dA", ndims=(I.ndim,))
    if dA.shape != args.output_shape:
        raise ValueError(f"dA has shape {dA.shape}, the pooled output {args.output_shape}")
    if _transposable(I, args):
        return _swap(pool2d_backward(_swap(dA), _swap(I), args.kind, *_transposed(args)))
    if args.kind == "avg" and tiles(args, I.shape):
        return _tiled_spread(dA, args.size)
    return _col2im(_window_derivatives(dA, I, args), I.shape, args)


def max_pool_switches(I: ArrayLike, size=2, stride=None, padding=0) -> NDArray:
    """The note's switches: where in each window the (first) maximum sits.

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
    size, stride, padding : see :func:`check_pool_args` (padding acts as -inf)

    Returns
    -------
    k : ndarray of int8 (int32 for windows of more than 127 entries),
        shape (C, h_a, w_a) or (N, C, h_a, w_a)
        ``k = u w_l + v`` for the window offset ``(u, v)`` of the first maximal entry in
        row-major window order.
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    return _switches(I, check_pool_args(I.shape, "max", size, stride, padding))


def max_pool_shares(
    I: ArrayLike, size=2, stride=None, padding=0, ties: str = "first"
) -> NDArray:
    """``dA_xy / dI_pad[x h_s + u, y w_s + v]`` of max pooling, for every window entry.

    Parameters
    ----------
    I : array_like, shape (C, h_z, w_z) or (N, C, h_z, w_z)
    size, stride, padding : see :func:`check_pool_args`
    ties : {"first", "split"}
        ``"first"`` (default): the whole derivative goes to the first maximal entry in
        row-major window order, which is what ``torch.nn.functional.max_pool2d`` records as
        its index.  ``"split"``: ``1/t`` to each of the ``t`` tied maximal entries, a valid
        subgradient, which is how ``torch.amax`` and ``jax.numpy.max`` differentiate a
        maximum ("evenly distribute gradient between equal values").

    Returns
    -------
    shares : ndarray, shape (C, h_a, w_a, h_l, w_l) or (N, C, h_a, w_a, h_l, w_l)
        Each window's shares sum to 1; padding entries get 0.
    """
    I = as_float_array(I, "I", ndims=(3, 4))
    args = check_pool_args(I.shape, "max", size, stride, padding, ties)
    h_l, w_l = args.size
    if args.ties == "first":
        k = _switches(I, args)
        return (k[..., None] == np.arange(h_l * w_l)).reshape(k.shape + args.size).astype(I.dtype)
    windows = _pool_windows(I, args, -np.inf)
    tied = windows == _window_max(I, args)[..., None, None]
    return (tied / tied.sum(axis=(-2, -1), keepdims=True)).astype(I.dtype)


def tiles(args: PoolArgs, shape) -> bool:
    """Whether the windows tile an input of ``shape``: stride = size, no padding, and no
    rows or columns left over, so every entry lies in exactly one window."""
    (h_l, w_l), (h_z, w_z) = args.size, shape[-2:]
    return args.stride == args.size and args.padding == (0, 0) and h_z % h_l == 0 \
        and w_z % w_l == 0


# --- helpers ------------------------------------------------------------------------------
def _transposable(I: NDArray, args: PoolArgs) -> bool:
    """Maps in the vec layout (:func:`vecjac.direct.conv.vec_layout`) are pooled as their
    transposes, except by max pooling, whose first maximum in row-major window order is not
    the first in the transposed window."""
    return args.kind != "max" and vec_layout(I)


def _transposed(args: PoolArgs) -> tuple:
    """``(size, stride, padding)`` of the same pooling on the transposed maps."""
    return args.size[::-1], args.stride[::-1], args.padding[::-1]


def _tiled_sum(I: NDArray, size) -> NDArray:
    """The window sums of windows that tile ``I`` (:func:`tiles`): the ``h_l`` rows of each
    window are added first (whole contiguous rows), then the ``w_l`` columns."""
    (h_l, w_l), (h_z, w_z) = size, I.shape[-2:]
    rows = I.reshape(-1, h_l, w_z)  # (..., h_a) windows' rows, row u of each
    total = rows[:, 0].copy()
    for u in range(1, h_l):
        total += rows[:, u]
    columns = total.reshape(-1, w_z // w_l, w_l)
    out = columns[..., 0].copy()
    for v in range(1, w_l):
        out += columns[..., v]
    return out.reshape(I.shape[:-2] + (h_z // h_l, w_z // w_l))


def _tiled_spread(dA: NDArray, size) -> NDArray:
    """Average pooling's backward pass when the windows tile the input: every entry of
    ``dA`` goes to the ``h_l w_l`` entries of its window times ``1/(h_l w_l)``.  Scaled on
    the small array, then repeated along the columns and the rows (``np.repeat`` copies
    blocks; a broadcast write into the window axes would loop over ``w_l`` entries)."""
    (h_l, w_l) = size
    scaled = dA * (1.0 / (h_l * w_l))
    return np.repeat(np.repeat(scaled, w_l, axis=-1), h_l, axis=-2)


def _pool_windows(I: NDArray, args: PoolArgs, fill: float) -> NDArray:
    """Strided view of the windows of the padded input: shape (..., h_a, w_a, h_l, w_l)."""
    (h_s, w_s), (h_p, w_p) = args.stride, args.padding
    pad = ((0, 0),) * (I.ndim - 2) + ((h_p, h_p), (w_p, w_p))
    I_pad = np.pad(I, pad, constant_values=fill) if h_p or w_p else I
    return sliding_window_view(I_pad, args.size, axis=(-2, -1))[..., ::h_s, ::w_s, :, :]


def _offset_views(I: NDArray, args: PoolArgs, fill: float):
    """For every window offset ``(u, v)`` in row-major order, the strided view of the entries
    ``I_pad[x h_s + u, y w_s + v]`` over all windows ``(x, y)``: shape (..., h_a, w_a)."""
    (h_l, w_l), (h_s, w_s), (h_p, w_p) = args.size, args.stride, args.padding
    h_a, w_a = args.output_shape[-2:]
    pad = ((0, 0),) * (I.ndim - 2) + ((h_p, h_p), (w_p, w_p))
    I_pad = np.pad(I, pad, constant_values=fill) if h_p or w_p else I
    for u in range(h_l):
        for v in range(w_l):
            yield I_pad[..., u : u + h_s * (h_a - 1) + 1 : h_s, v : v + w_s * (w_a - 1) + 1 : w_s]


def _window_sum(I: NDArray, args: PoolArgs) -> NDArray:
    """``I_pad * 1``: the sum over every window, the all-ones kernel's convolution."""
    views = _offset_views(I, args, 0.0)
    total = next(views).copy()
    for window in views:
        total += window
    return total


def _window_max(I: NDArray, args: PoolArgs) -> NDArray:
    views = _offset_views(I, args, -np.inf)
    A = next(views).copy()
    for window in views:
        np.maximum(A, window, out=A)
    return A


def _switches(I: NDArray, args: PoolArgs) -> NDArray:
    """:func:`max_pool_switches` on validated arguments."""
    A = _window_max(I, args)
    views = _offset_views(I, args, -np.inf)
    found = next(views) == A
    switches = np.zeros(A.shape, dtype=np.int8 if np.prod(args.size) < 128 else np.int32)
    for k, window in enumerate(views, start=1):
        first = window == A
        first &= ~found  # a maximum earlier in row-major window order keeps the switch
        found |= first
        switches += first * switches.dtype.type(k)
    return switches


def _window_derivatives(dA: NDArray, I: NDArray, args: PoolArgs):
    """For every window offset ``(u, v)``, row-major: ``dA_xy dA_xy/dI_pad[x h_s+u, y w_s+v]``
    over all windows ``(x, y)``, shape (..., h_a, w_a)."""
    n_offsets = args.size[0] * args.size[1]
    if args.kind == "avg":
        share = dA / n_offsets  # P's entry
        return (share for _ in range(n_offsets))
    if args.kind == "l2":
        A = np.sqrt(_window_sum(I * I, args))
        G = np.divide(dA, A, out=np.zeros_like(A), where=A > 0)  # 0 where A_xy = 0
        return (window * G for window in _offset_views(I, args, 0.0))
    if args.ties == "first":
        switches = _switches(I, args)
        return (dA * (switches == k) for k in range(n_offsets))
    A = _window_max(I, args)
    tied = [window == A for window in _offset_views(I, args, -np.inf)]
    share = dA / sum(tied)  # every window holds at least one maximum
    return (share * t for t in tied)


def _col2im(contributions, input_shape, args: PoolArgs) -> NDArray:
    """Add each window offset's ``(..., h_a, w_a)`` contribution back onto the input."""
    (h_l, w_l), (h_s, w_s), (h_p, w_p) = args.size, args.stride, args.padding
    h_a, w_a = args.output_shape[-2:]
    H, W = input_shape[-2:]
    d_pad = None
    for (u, v), contribution in zip(np.ndindex(h_l, w_l), contributions, strict=True):
        if d_pad is None:
            shape = tuple(input_shape[:-2]) + (H + 2 * h_p, W + 2 * w_p)
            d_pad = np.zeros(shape, dtype=contribution.dtype)
        d_pad[..., u : u + h_s * h_a : h_s, v : v + w_s * w_a : w_s] += contribution
    return np.ascontiguousarray(d_pad[..., h_p : h_p + H, w_p : w_p + W])
