"""The deliberately naive oracle the tests trust: simple enough to check by reading.

Nothing here imports vecjac.  Every function is written the obvious way, with explicit
loops, straight from the definitions of the note (section 2 and the appendix) and of
docs/design.md, section 1:

* :func:`conv2d_naive` -- ``Z[n, j, x, y] = sum_{i,u,v} A_pad[n, i, x h_s + u, y w_s + v]
  K[j, i, u, v] + b[j]``, seven nested loops over an explicitly zero-padded copy of ``A``;
* :func:`conv2d_backward_naive` -- the same seven loops, each product's two partials added to
  ``dA_pad`` and ``dK``;
* :func:`vec_naive` -- the note's vec: the columns of each ``H x W`` slice stacked, slice after
  slice (channels, then samples);
* :func:`jacobian_by_definition` -- a dense Jacobian in numerator layout, column by column,
  from central differences of any function (exact up to rounding for affine maps);
* :func:`output_size` -- the note's output-size formula.

They are slow on purpose; the tests keep shapes tiny.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def pair(value) -> tuple[int, int]:
    """``2`` -> ``(2, 2)``; ``(1, 2)`` -> ``(1, 2)``."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def output_size(n: int, k: int, s: int, p: int) -> int:
    """The note's rule: ``floor((n + 2p - k) / s + 1)``, written with true division."""
    return int(np.floor((n + 2 * p - k) / s + 1))


def _pad(A: np.ndarray, hp: int, wp: int) -> np.ndarray:
    """Zero-pad the last two axes by hand: a bigger zero array with ``A`` copied in."""
    N, C, H, W = A.shape
    out = np.zeros((N, C, H + 2 * hp, W + 2 * wp), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            for r in range(H):
                for s in range(W):
                    out[n, c, r + hp, s + wp] = A[n, c, r, s]
    return out


def conv2d_naive(A, K, b=None, stride=1, padding=0) -> np.ndarray:
    """Cross-correlation with zero padding and stride, by seven nested loops, in float64.

    ``A``: ``(C_in, H, W)`` or ``(N, C_in, H, W)``; ``K``: ``(C_out, C_in, kh, kw)``;
    ``b``: ``(C_out,)`` or None.  Returns ``(C_out, h_z, w_z)`` or ``(N, C_out, h_z, w_z)``.
    """
    A, K = np.asarray(A, dtype=np.float64), np.asarray(K, dtype=np.float64)
    single = A.ndim == 3
    if single:
        A = A[None]
    (hs, ws), (hp, wp) = pair(stride), pair(padding)
    N, C_in, H, W = A.shape
    C_out, _, kh, kw = K.shape
    hz, wz = output_size(H, kh, hs, hp), output_size(W, kw, ws, wp)
    A_pad = _pad(A, hp, wp)
    Z = np.zeros((N, C_out, hz, wz))
    for n in range(N):
        for j in range(C_out):
            for x in range(hz):
                for y in range(wz):
                    total = 0.0 if b is None else float(b[j])
                    for i in range(C_in):
                        for u in range(kh):
                            for v in range(kw):
                                total += A_pad[n, i, x * hs + u, y * ws + v] * K[j, i, u, v]
                    Z[n, j, x, y] = total
    return Z[0] if single else Z


def conv2d_backward_naive(dZ, A, K, stride=1, padding=0):
    """``(dA, dK, db)`` of :func:`conv2d_naive` for the upstream gradient ``dZ``, by loops.

    Each term ``A_pad[n, i, x h_s + u, y w_s + v] K[j, i, u, v]`` of ``Z[n, j, x, y]`` sends
    ``dZ[n, j, x, y] K[j, i, u, v]`` to the padded input and ``dZ[n, j, x, y] A_pad[...]`` to the
    kernel; the padding's share is dropped.  ``dK`` and ``db`` are summed over the batch.
    """
    A, K = np.asarray(A, dtype=np.float64), np.asarray(K, dtype=np.float64)
    dZ = np.asarray(dZ, dtype=np.float64)
    single = A.ndim == 3
    if single:
        A, dZ = A[None], dZ[None]
    (hs, ws), (hp, wp) = pair(stride), pair(padding)
    N, C_in, H, W = A.shape
    C_out, _, kh, kw = K.shape
    _, _, hz, wz = dZ.shape
    A_pad = _pad(A, hp, wp)
    dA_pad = np.zeros_like(A_pad)
    dK = np.zeros(K.shape)
    db = np.zeros(C_out)
    for n in range(N):
        for j in range(C_out):
            for x in range(hz):
                for y in range(wz):
                    g = dZ[n, j, x, y]
                    db[j] += g
                    for i in range(C_in):
                        for u in range(kh):
                            for v in range(kw):
                                r, s = x * hs + u, y * ws + v
                                dA_pad[n, i, r, s] += g * K[j, i, u, v]
                                dK[j, i, u, v] += g * A_pad[n, i, r, s]
    dA = np.zeros(A.shape)
    for n in range(N):
        for i in range(C_in):
            for r in range(H):
                for s in range(W):
                    dA[n, i, r, s] = dA_pad[n, i, r + hp, s + wp]
    return (dA[0] if single else dA), dK, db


def vec_naive(x) -> np.ndarray:
    """The note's vec: each ``H x W`` slice read column by column, slices in C order.

    A scalar or a vector is its own vec.  For ``(C, H, W)`` this is
    ``[vec A_1; vec A_2; ...]``; for ``(N, C, H, W)`` the samples follow one another; for
    kernels ``(C_out, C_in, kh, kw)`` the blocks ``K_{j,i}`` are taken in ``(j, i)`` order.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        return x.reshape(-1).copy()
    H, W = x.shape[-2:]
    slices = x.reshape(-1, H, W)
    out = []
    for block in slices:
        for col in range(W):
            for row in range(H):
                out.append(block[row, col])
    return np.array(out, dtype=x.dtype)


def vec_order(shape) -> np.ndarray:
    """``p`` with ``vec_naive(x)[q] == x.flat[p[q]]``: which C-order element sits at ``q``."""
    return vec_naive(np.arange(int(np.prod(shape))).reshape(shape))


def jacobian_by_definition(
    f: Callable[[np.ndarray], np.ndarray], x, h: float = 1.0, order: str = "F"
) -> np.ndarray:
    """Dense ``d vec(f(x)) / d vec(x)`` by central differences, one column per entry of ``x``.

    ``order="F"`` indexes rows and columns by :func:`vec_naive` (the note's numerator layout);
    ``order="C"`` by NumPy's ``ravel`` (what ``torch.func.jacrev`` returns, flattened).  For an
    affine ``f`` the central difference is exact up to rounding for any step ``h``.
    """
    x = np.asarray(x, dtype=np.float64)
    flatten = vec_naive if order == "F" else (lambda a: np.asarray(a).ravel())
    positions = vec_order(x.shape) if order == "F" else np.arange(x.size)
    f0 = flatten(np.asarray(f(x), dtype=np.float64))
    J = np.zeros((f0.size, x.size))
    for col, flat in enumerate(positions):
        plus, minus = x.copy(), x.copy()
        plus.flat[flat] += h
        minus.flat[flat] -= h
        J[:, col] = (flatten(f(plus)) - flatten(f(minus))) / (2 * h)
    return J


# --- the table of convolution cases shared by the test modules -----------------------------
class Case:
    """One convolution setting: ``(N, C_in, C_out, H, W, kh, kw, stride, padding)``.

    ``N is None`` means a single sample ``(C_in, H, W)``; otherwise a batch.  ``stride`` and
    ``padding`` are kept as given (an int or a pair) so both spellings reach the code.
    """

    def __init__(self, N, C_in, C_out, H, W, kh, kw, stride, padding):
        self.N, self.C_in, self.C_out, self.H, self.W = N, C_in, C_out, H, W
        self.kh, self.kw, self.stride, self.padding = kh, kw, stride, padding
        (hs, ws), (hp, wp) = pair(stride), pair(padding)
        self.hz, self.wz = output_size(H, kh, hs, hp), output_size(W, kw, ws, wp)

    @property
    def batch(self) -> tuple[int, ...]:
        return () if self.N is None else (self.N,)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.batch + (self.C_in, self.H, self.W)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.C_out, self.C_in, self.kh, self.kw)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.batch + (self.C_out, self.hz, self.wz)

    def arrays(self, rng: np.random.Generator, dtype=np.float64):
        """Random ``A, K, b, dZ`` of this case's shapes."""
        A = rng.standard_normal(self.input_shape).astype(dtype)
        K = rng.standard_normal(self.kernel_shape).astype(dtype)
        b = rng.standard_normal(self.C_out).astype(dtype)
        dZ = rng.standard_normal(self.output_shape).astype(dtype)
        return A, K, b, dZ

    def __repr__(self) -> str:
        n = "single" if self.N is None else f"N{self.N}"
        return (
            f"{n}-C{self.C_in}to{self.C_out}-{self.H}x{self.W}-k{self.kh}x{self.kw}"
            f"-s{self.stride}-p{self.padding}"
        ).replace(" ", "")


CASES = [
    # the seeds' examples
    Case(None, 1, 1, 3, 4, 2, 2, (1, 2), (1, 1)),  # the note's appendix
    Case(None, 1, 1, 3, 3, 2, 2, 1, 0),  # the third text's 3x3 X, 2x2 K
    # ordinary layers
    Case(None, 2, 3, 5, 5, 3, 3, 1, 1),
    Case(None, 2, 3, 6, 5, 3, 3, 2, 1),
    # 1x1 kernels
    Case(None, 3, 2, 4, 6, 1, 1, 1, 0),
    Case(None, 2, 2, 5, 7, 1, 1, 2, 0),
    Case(None, 1, 1, 4, 5, 1, 1, 3, 2),
    # stride larger than the kernel
    Case(None, 1, 2, 7, 7, 2, 2, 3, 0),
    Case(None, 2, 1, 6, 8, 1, 2, (3, 3), (0, 1)),
    # kernel equal to the padded input
    Case(None, 1, 2, 3, 4, 5, 6, 1, 1),
    Case(None, 2, 1, 2, 2, 6, 6, 1, 2),
    Case(None, 1, 1, 4, 4, 4, 4, 2, 0),
    Case(None, 1, 1, 1, 1, 3, 3, 1, 1),
    Case(None, 1, 1, 1, 1, 1, 1, 1, 0),
    # asymmetric strides, paddings and kernels
    Case(None, 2, 2, 5, 6, 3, 2, (1, 3), (2, 0)),
    Case(None, 1, 3, 6, 5, 2, 3, (3, 2), (0, 2)),
    Case(None, 2, 2, 4, 5, 3, 3, 3, 2),
    Case(None, 1, 1, 5, 5, 2, 2, 2, 1),  # the floor drops the last padded row and column
    # batches
    Case(2, 2, 3, 5, 4, 3, 2, (2, 1), (1, 0)),
    Case(3, 1, 2, 4, 4, 2, 2, 1, 0),
    Case(2, 2, 2, 3, 3, 3, 3, 2, 2),
    Case(1, 1, 1, 4, 5, 1, 1, 3, 2),
    Case(2, 1, 1, 3, 4, 2, 2, (1, 2), (1, 1)),
]

BATCH_CASES = [c for c in CASES if c.N is not None]
SINGLE_CASES = [c for c in CASES if c.N is None]


def conv_cases(max_channels: int = 3, max_kernel: int = 4, max_batch: int = 2):
    """Hypothesis strategy of :class:`Case`: any channels, kernels 1..max_kernel per axis,
    strides 1..3 and paddings 0..2 per axis (asymmetric pairs included), and input sizes from
    the smallest that fits the kernel (kernel equal to the padded input) to four more."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw):
        N = draw(st.sampled_from([None] + list(range(1, max_batch + 1))))
        C_in = draw(st.integers(1, max_channels))
        C_out = draw(st.integers(1, max_channels))
        kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
        hs, ws = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        hp, wp = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        H = draw(st.integers(max(1, kh - 2 * hp), max(1, kh - 2 * hp) + 4))
        W = draw(st.integers(max(1, kw - 2 * wp), max(1, kw - 2 * wp) + 4))
        stride = hs if hs == ws and draw(st.booleans()) else (hs, ws)
        padding = hp if hp == wp and draw(st.booleans()) else (hp, wp)
        return Case(N, C_in, C_out, H, W, kh, kw, stride, padding)

    return build()
