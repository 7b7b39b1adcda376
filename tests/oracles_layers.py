"""Deliberately naive oracles for pooling, activations, the FC layer and the losses.

Nested Python loops over samples, channels and pixels, straight from the definitions, with
the vec index of docs/design.md, section 1 written out by hand (``c*H*W + s*H + r``).  They share
no code with ``vecjac`` beyond NumPy.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _geometry(shape, size, stride, padding):
    hl, wl = _pair(size)
    hs, ws = _pair(size if stride is None else stride)
    hp, wp = _pair(padding)
    H, W = shape[-2:]
    return (hl, wl), (hs, ws), (hp, wp), (H + 2 * hp - hl) // hs + 1, (W + 2 * wp - wl) // ws + 1


def _window(I_nc, x, y, size, stride, padding):
    """Entries of window (x, y) as a list of (u, v, r, s, value); value None for padding."""
    (hl, wl), (hs, ws), (hp, wp) = size, stride, padding
    H, W = I_nc.shape
    entries = []
    for u in range(hl):
        for v in range(wl):
            r, s = x * hs + u - hp, y * ws + v - wp
            inside = 0 <= r < H and 0 <= s < W
            entries.append((u, v, r, s, float(I_nc[r, s]) if inside else None))
    return entries


def _batched(I):
    I = np.asarray(I, dtype=np.float64)
    return (I[None], True) if I.ndim == 3 else (I, False)


def pool_naive(I, kind="avg", size=2, stride=None, padding=0):
    """Pooling by four nested loops over (n, c, x, y), each window read entry by entry."""
    I, single = _batched(I)
    N, C = I.shape[:2]
    size, stride, padding, hz, wz = _geometry(I.shape, size, stride, padding)
    A = np.zeros((N, C, hz, wz))
    for n in range(N):
        for c in range(C):
            for x in range(hz):
                for y in range(wz):
                    values = [e[4] for e in _window(I[n, c], x, y, size, stride, padding)]
                    real = [v for v in values if v is not None]
                    if kind == "avg":
                        A[n, c, x, y] = sum(real) / len(values)
                    elif kind == "max":
                        A[n, c, x, y] = max(real)
                    else:
                        A[n, c, x, y] = math.sqrt(sum(v * v for v in real))
    return A[0] if single else A


def pool_jacobian_naive(I, kind="avg", size=2, stride=None, padding=0, ties="first"):
    """Dense ``d vecA / d vecI``: row ``n*C*hz*wz + c*hz*wz + y*hz + x``, column
    ``n*C*H*W + c*H*W + s*H + r``, entry by entry."""
    I, _ = _batched(I)
    N, C, H, W = I.shape
    size, stride, padding, hz, wz = _geometry(I.shape, size, stride, padding)
    J = np.zeros((N * C * hz * wz, N * C * H * W))
    for n in range(N):
        for c in range(C):
            for x in range(hz):
                for y in range(wz):
                    row = n * C * hz * wz + c * hz * wz + y * hz + x
                    entries = _window(I[n, c], x, y, size, stride, padding)
                    for col_rs, value in _window_derivative(entries, kind, ties):
                        r, s = col_rs
                        J[row, n * C * H * W + c * H * W + s * H + r] += value
    return J


def _window_derivative(entries, kind, ties):
    real = [(r, s, v) for (_, _, r, s, v) in entries if v is not None]
    if kind == "avg":
        return [((r, s), 1.0 / len(entries)) for (r, s, _) in real]
    if kind == "max":
        best = max(v for (_, _, v) in real)
        tied = [(r, s) for (r, s, v) in real if v == best]  # row-major window order
        if ties == "first":
            return [(tied[0], 1.0)]
        return [(rs, 1.0 / len(tied)) for rs in tied]
    norm = math.sqrt(sum(v * v for (_, _, v) in real))
    if norm == 0.0:
        return []
    return [((r, s), v / norm) for (r, s, v) in real]


def pool_backward_naive(dA, I, kind="avg", size=2, stride=None, padding=0, ties="first"):
    """``dI`` by looping over windows and adding each entry's share of ``dA``."""
    I, single = _batched(I)
    dA = np.asarray(dA, dtype=np.float64)
    dA = dA[None] if single else dA
    N, C = I.shape[:2]
    size, stride, padding, hz, wz = _geometry(I.shape, size, stride, padding)
    dI = np.zeros(I.shape)
    for n in range(N):
        for c in range(C):
            for x in range(hz):
                for y in range(wz):
                    entries = _window(I[n, c], x, y, size, stride, padding)
                    for (r, s), value in _window_derivative(entries, kind, ties):
                        dI[n, c, r, s] += value * dA[n, c, x, y]
    return dI[0] if single else dI


# --- activations ------------------------------------------------------------------------
def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _sigmoid_derivative(z):
    """s (1 - s) = e / (1 + e)^2 with e = exp(-|z|): no cancellation in either tail."""
    e = math.exp(-abs(z))
    return e / (1.0 + e) ** 2


def _tanh_derivative(z):
    """1 - tanh^2 = sech^2 = 4 e / (1 + e)^2 with e = exp(-2|z|)."""
    e = math.exp(-2.0 * abs(z))
    return 4.0 * e / (1.0 + e) ** 2


SCALAR = {
    "sigmoid": (_sigmoid, _sigmoid_derivative),
    "tanh": (math.tanh, _tanh_derivative),
    "relu": (lambda z: z if z > 0 else 0.0, lambda z: 1.0 if z > 0 else 0.0),
    "leaky_relu": (lambda z: z if z > 0 else 0.01 * z, lambda z: 1.0 if z > 0 else 0.01),
    "softplus": (_softplus, _sigmoid),
    "identity": (lambda z: z, lambda z: 1.0),
}


def activate_naive(Z, kind):
    """Element by element with ``math``; softmax column by column over axis 0."""
    Z = np.asarray(Z, dtype=np.float64)
    if kind == "softmax":
        return softmax_naive(Z)
    f = SCALAR[kind][0]
    out = np.empty(Z.shape)
    for idx in np.ndindex(Z.shape):
        out[idx] = f(float(Z[idx]))
    return out


def activation_derivative_naive(Z, kind):
    Z = np.asarray(Z, dtype=np.float64)
    df = SCALAR[kind][1]
    out = np.empty(Z.shape)
    for idx in np.ndindex(Z.shape):
        out[idx] = df(float(Z[idx]))
    return out


def softmax_naive(Z):
    Z = np.asarray(Z, dtype=np.float64)
    columns = Z[:, None] if Z.ndim == 1 else Z
    out = np.empty(columns.shape)
    for k in range(columns.shape[1]):
        top = max(columns[:, k])
        e = [math.exp(z - top) for z in columns[:, k]]
        for i in range(columns.shape[0]):
            out[i, k] = e[i] / sum(e)
    return out[:, 0] if Z.ndim == 1 else out


def softmax_jacobian_naive(Z):
    """Dense ``d vec(softmax(Z)) / d vecZ`` entry by entry: ``s_i (delta_ij - s_j)``."""
    Z = np.asarray(Z, dtype=np.float64)
    S = softmax_naive(Z)
    S = S[:, None] if S.ndim == 1 else S
    n, N = S.shape
    J = np.zeros((n * N, n * N))
    for k in range(N):
        for i in range(n):
            for j in range(n):
                J[k * n + i, k * n + j] = S[i, k] * ((i == j) - S[j, k])
    return J


# --- the FC layer and the losses -----------------------------------------------------------
def dense_naive(B, W, b=None):
    B = np.asarray(B, dtype=np.float64)
    columns = B[:, None] if B.ndim == 1 else B
    n_in, n_out = W.shape
    Z = np.zeros((n_out, columns.shape[1]))
    for k in range(n_out):
        for n in range(columns.shape[1]):
            Z[k, n] = sum(W[m, k] * columns[m, n] for m in range(n_in))
            Z[k, n] += 0.0 if b is None else b[k]
    return Z[:, 0] if B.ndim == 1 else Z


def loss_naive(A3, Y, kind="squared_error", reduction="sum"):
    """Loss from float targets ``Y`` of A3's shape, summed term by term."""
    A3 = np.atleast_1d(np.asarray(A3, dtype=np.float64))
    Y = np.asarray(Y, dtype=np.float64).reshape(A3.shape)
    total = 0.0
    for idx in np.ndindex(A3.shape):
        o, t = float(A3[idx]), float(Y[idx])
        if kind == "squared_error":
            total += (t - o) ** 2 / 2
        elif kind == "cross_entropy":
            total -= t * math.log(o) if t else 0.0
        else:
            total -= t * math.log(o) if t else 0.0
            total -= (1 - t) * math.log(1 - o) if t != 1 else 0.0
    n_samples = A3.shape[1] if A3.ndim == 2 else 1
    return total / n_samples if reduction == "mean" else total


def one_hot_naive(labels, n_out):
    labels = np.atleast_1d(labels)
    Y = np.zeros((n_out, labels.size))
    for n, label in enumerate(labels):
        Y[int(label), n] = 1.0
    return Y
