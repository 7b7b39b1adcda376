"""Circular padding and the exact singular values of a convolution layer (vecjac.spectrum).

Oracles written here from the definitions: a loop convolution with indices modulo the input
size, a dense Jacobian built column by column from ``direct.conv2d`` alone, power iteration
through ``direct.conv2d`` and ``direct.conv2d_backward``, and Sedghi, Gupta and Long's FFT
formula (ICLR 2019) for stride-1 circular convolutions.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac import direct, spectrum
from vecjac import jacobians as jac
from vecjac.testing import check_jacobian
from vecjac.vec import as_pair


def loop_conv_circular(A, K, stride, padding):
    """``Z[n, j, x, y] = sum_{i,u,v} A[n, i, (x hs + u - hp) mod ha, (y ws + v - wp) mod wa]
    K[j, i, u, v]``, one entry at a time."""
    (hs, ws), (hp, wp) = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    N, C_in, ha, wa = A.shape
    C_out, _, hk, wk = K.shape
    hz, wz = (ha + 2 * hp - hk) // hs + 1, (wa + 2 * wp - wk) // ws + 1
    Z = np.zeros((N, C_out, hz, wz))
    for n in range(N):
        for j in range(C_out):
            for x in range(hz):
                for y in range(wz):
                    for i in range(C_in):
                        for u in range(hk):
                            for v in range(wk):
                                r, s = (x * hs + u - hp) % ha, (y * ws + v - wp) % wa
                                Z[n, j, x, y] += A[n, i, r, s] * K[j, i, u, v]
    return Z


def loop_backward_circular(dZ, A, K, stride, padding):
    """The adjoint of :func:`loop_conv_circular`, entry by entry."""
    (hs, ws), (hp, wp) = as_pair(stride, "stride", 1), as_pair(padding, "padding", 0)
    N, C_in, ha, wa = A.shape
    C_out, _, hk, wk = K.shape
    dA, dK = np.zeros_like(A), np.zeros_like(K)
    for n, j, x, y in np.ndindex(dZ.shape):
        for i, u, v in np.ndindex(C_in, hk, wk):
            r, s = (x * hs + u - hp) % ha, (y * ws + v - wp) % wa
            dA[n, i, r, s] += dZ[n, j, x, y] * K[j, i, u, v]
            dK[j, i, u, v] += dZ[n, j, x, y] * A[n, i, r, s]
    return dA, dK, dZ.sum(axis=(0, 2, 3))


CIRCULAR_CASES = [  # (N, C_in, ha, wa), (C_out, kh, kw), stride, padding
    ((1, 1, 4, 4), (1, 3, 3), 1, 1),
    ((2, 2, 5, 6), (3, 3, 2), (2, 1), (2, 3)),
    ((3, 3, 4, 5), (2, 2, 3), 2, (4, 0)),  # padding = input size: wraps exactly once
    ((2, 2, 3, 3), (2, 3, 3), 1, 0),
    ((1, 2, 6, 4), (2, 5, 3), (1, 3), (2, 1)),
]


@pytest.mark.parametrize("a_shape, k_shape, stride, padding", CIRCULAR_CASES)
def test_circular_conv_matches_loop_oracle(a_shape, k_shape, stride, padding):
    rng = np.random.default_rng(0)
    A = rng.standard_normal(a_shape)
    K = rng.standard_normal((k_shape[0], a_shape[1]) + k_shape[1:])
    b = rng.standard_normal(k_shape[0])
    Z, cols = direct.conv2d(A, K, b, stride, padding, padding_mode="circular",
                            return_cols=True)
    np.testing.assert_allclose(Z, loop_conv_circular(A, K, stride, padding) + b[:, None, None],
                               atol=1e-12)
    dZ = rng.standard_normal(Z.shape)
    expected = loop_backward_circular(dZ, A, K, stride, padding)
    for c in (None, cols):
        got = direct.conv2d_backward(dZ, A, K, stride, padding, padding_mode="circular", cols=c)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-12)
    # one sample, no batch axis
    np.testing.assert_allclose(direct.conv2d(A[0], K, None, stride, padding,
                                             padding_mode="circular"),
                               loop_conv_circular(A[:1], K, stride, padding)[0], atol=1e-12)


@pytest.mark.parametrize("a_shape, k_shape, stride, padding", CIRCULAR_CASES)
def test_circular_conv_matches_torch(a_shape, k_shape, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    A = rng.standard_normal(a_shape)
    K = rng.standard_normal((k_shape[0], a_shape[1]) + k_shape[1:])
    (hp, wp), (hs, ws) = as_pair(padding, "padding", 0), as_pair(stride, "stride", 1)
    At = torch.tensor(A, requires_grad=True)
    Kt = torch.tensor(K, requires_grad=True)
    Zt = F.conv2d(F.pad(At, (wp, wp, hp, hp), mode="circular"), Kt, stride=(hs, ws))
    Z = direct.conv2d(A, K, None, stride, padding, padding_mode="circular")
    np.testing.assert_allclose(Z, Zt.detach().numpy(), atol=1e-12)
    dZ = rng.standard_normal(Z.shape)
    Zt.backward(torch.tensor(dZ))
    dA, dK, _ = direct.conv2d_backward(dZ, A, K, stride, padding, padding_mode="circular")
    np.testing.assert_allclose(dA, At.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dK, Kt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("a_shape, k_shape, stride, padding", CIRCULAR_CASES)
@pytest.mark.parametrize("batch", [None, 1, 2, 3])
def test_circular_jacobians(a_shape, k_shape, stride, padding, batch):
    rng = np.random.default_rng(2)
    shape = a_shape[1:] if batch is None else (batch,) + a_shape[1:]
    A = rng.standard_normal(shape)
    K = rng.standard_normal((k_shape[0], a_shape[1]) + k_shape[1:])

    def f_A(x):
        return direct.conv2d(x, K, None, stride, padding, padding_mode="circular")

    def f_K(k):
        return direct.conv2d(A, k, None, stride, padding, padding_mode="circular")

    flat_A = jac.conv_wrt_input(K, A.shape, stride, padding, padding_mode="circular",
                                structured=False)
    flat_K = jac.conv_wrt_kernel(A, K.shape, stride, padding, padding_mode="circular",
                                 structured=False)
    assert check_jacobian(flat_A, f_A, A, method="basis") < 1e-12
    assert check_jacobian(flat_K, f_K, K, method="basis") < 1e-12
    for flat, build in ((flat_A, jac.conv_wrt_input), (flat_K, jac.conv_wrt_kernel)):
        arg = K if build is jac.conv_wrt_input else A
        other = A.shape if build is jac.conv_wrt_input else K.shape
        J = build(arg, other, stride, padding, padding_mode="circular")
        np.testing.assert_array_equal(J.toarray(), flat.toarray())
    # every (i, u, v) is an entry of every row
    assert flat_A.nnz == flat_A.shape[0] * K[0].size


def test_pattern_cache_keys_on_padding_mode():
    K = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    zeros = jac.conv_wrt_input(K, (1, 4, 4), 1, 1)
    circular = jac.conv_wrt_input(K, (1, 4, 4), 1, 1, padding_mode="circular")
    again = jac.conv_wrt_input(K, (1, 4, 4), 1, 1)
    assert zeros.nnz == (2 + 3 + 3 + 2) ** 2 and circular.nnz == 16 * 9
    np.testing.assert_array_equal(again.toarray(), zeros.toarray())
    assert jac.conv_nnz((1, 4, 4), (1, 1, 3, 3), 1, 1, "circular") == 16 * 9


# --- spectrum -----------------------------------------------------------------------------
def paper_singular_values(K, h, w):
    """Sedghi et al., Theorem 6, written from the paper: for the n x n (here h x w) input,
    ``P = fft2(K zero-padded to h x w)``; the singular values are those of every
    ``P[:, :, u, v]``.  (Our layer is a correlation: conj / frequency flip, same values.)"""
    C_out, C_in, kh, kw = K.shape
    padded = np.zeros((C_out, C_in, h, w))
    padded[:, :, :kh, :kw] = K
    P = np.fft.fft2(padded)  # over the last two axes
    values = [np.linalg.svd(P[:, :, u, v], compute_uv=False)
              for u in range(h) for v in range(w)]
    return np.sort(np.concatenate(values))[::-1]


def dense_jacobian_by_columns(K, input_shape, stride, padding):
    """``d vecZ / d vecA`` from ``direct.conv2d`` alone: column c is ``vec(conv(e_c))``."""
    n = int(np.prod(input_shape))
    columns = []
    for c in range(n):
        e = np.zeros(n)
        e[c] = 1.0
        columns.append(vj.vec(direct.conv2d(vj.unvec(e, input_shape), K, None, stride,
                                            padding)))
    return np.stack(columns, axis=1)


def power_iteration(K, input_shape, stride, padding, iterations=5000):
    """Largest singular value from ``conv2d`` and ``conv2d_backward`` only (J^T J x)."""
    x = np.random.default_rng(0).standard_normal(input_shape)
    sigma = 0.0
    for _ in range(iterations):
        x /= np.linalg.norm(x)
        Z = direct.conv2d(x, K, None, stride, padding)
        x_new = direct.conv2d_backward(Z, x, K, stride, padding)[0]
        new_sigma = np.sqrt(np.linalg.norm(x_new))
        x = x_new
        if abs(new_sigma - sigma) < 1e-15 * new_sigma:
            break
        sigma = new_sigma
    return new_sigma


FFT_CASES = [  # C_out, C_in, (kh, kw), (h, w)
    (1, 1, (3, 3), (5, 5)),
    (3, 2, (3, 3), (6, 7)),
    (2, 4, (5, 5), (5, 8)),
    (4, 4, (1, 1), (4, 6)),
    (2, 3, (3, 5), (7, 6)),
    (5, 2, (3, 3), (8, 8)),
]


@pytest.mark.parametrize("c_out, c_in, kernel, hw", FFT_CASES)
def test_circular_spectrum_equals_fft_formula(c_out, c_in, kernel, hw):
    K = np.random.default_rng(3).standard_normal((c_out, c_in) + kernel)
    padding = (kernel[0] // 2, kernel[1] // 2)  # keeps the size: h_k = 2 h_p + 1
    exact = spectrum.conv_singular_values(K, (c_in,) + hw, 1, padding, "circular")
    paper = paper_singular_values(K, *hw)
    assert exact.shape == paper.shape == (hw[0] * hw[1] * min(c_in, c_out),)
    np.testing.assert_allclose(exact, paper, rtol=0, atol=1e-10)
    np.testing.assert_allclose(spectrum.fft_singular_values(K, hw), paper, rtol=0, atol=1e-10)
    assert np.all(np.diff(exact) <= 0)


@pytest.mark.parametrize("c_out, c_in, kernel, hw, stride, padding", [
    (2, 3, (3, 3), (5, 6), 1, 1),
    (3, 2, (3, 2), (6, 5), (2, 1), (1, 0)),
    (1, 1, (3, 3), (7, 7), 2, 2),
    (4, 2, (1, 1), (3, 4), 1, 0),
])
def test_zero_padding_spectrum_is_exact(c_out, c_in, kernel, hw, stride, padding):
    K = np.random.default_rng(4).standard_normal((c_out, c_in) + kernel)
    shape = (c_in,) + hw
    dense = dense_jacobian_by_columns(K, shape, stride, padding)
    expected = np.linalg.svd(dense, compute_uv=False)
    got = spectrum.conv_singular_values(K, shape, stride, padding)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8 * expected[0])
    norm = spectrum.conv_spectral_norm(K, shape, stride, padding)
    assert norm == pytest.approx(power_iteration(K, shape, stride, padding), rel=1e-8)
    assert norm == pytest.approx(expected[0], rel=1e-12)
    # svds (forced by dense_limit=0) equals the dense top k
    k = min(3, expected.size - 1)
    top = spectrum.conv_singular_values(K, shape, stride, padding, k=k, dense_limit=0)
    np.testing.assert_allclose(top, expected[:k], rtol=1e-8)


def test_svds_path_on_a_larger_layer():
    K = np.random.default_rng(5).standard_normal((8, 8, 3, 3))
    shape = (8, 12, 12)
    dense = spectrum.conv_singular_values(K, shape, 1, 1, k=4)
    sparse = spectrum.conv_singular_values(K, shape, 1, 1, k=4, dense_limit=100)
    np.testing.assert_allclose(sparse, dense, rtol=1e-10)
    assert spectrum.conv_spectral_norm(K, shape, 1, 1, dense_limit=100) == pytest.approx(
        dense[0], rel=1e-10)


def test_reshaped_kernel_norm():
    K = np.random.default_rng(6).standard_normal((3, 2, 3, 3))
    assert spectrum.reshaped_kernel_norm(K) == pytest.approx(
        np.linalg.svd(K.reshape(3, 18), compute_uv=False)[0])
    # a 1x1 kernel: the layer is K (x) I per pixel, so the estimate is exact
    K1 = K[:, :, :1, :1]
    assert spectrum.reshaped_kernel_norm(K1) == pytest.approx(
        spectrum.conv_spectral_norm(K1, (2, 4, 5)), rel=1e-12)


# --- bad input ----------------------------------------------------------------------------
def test_bad_padding_mode_and_circular_padding():
    A, K = np.zeros((1, 3, 3)), np.zeros((1, 1, 3, 3))
    for call in (lambda: direct.conv2d(A, K, padding_mode="reflect"),
                 lambda: direct.conv2d_backward(np.zeros((1, 1, 1)), A, K,
                                                padding_mode="wrap"),
                 lambda: jac.conv_wrt_input(K, A.shape, padding_mode="same"),
                 lambda: jac.conv_wrt_kernel(A, K.shape, padding_mode=None, structured=False),
                 lambda: spectrum.conv_singular_values(K, A.shape, padding_mode="Circular")):
        with pytest.raises(ValueError, match="padding_mode"):
            call()
    with pytest.raises(ValueError, match="padding .* at most the input size"):
        direct.conv2d(A, K, padding=4, padding_mode="circular")
    with pytest.raises(ValueError, match="padding .* at most the input size"):
        jac.conv_wrt_input(K, (2, 1, 3, 3), padding=(1, 4), padding_mode="circular")
    with pytest.raises(ValueError, match="padding .* at most the input size"):
        jac.conv_wrt_kernel(np.zeros((2, 1, 3, 3)), K.shape, padding=(4, 1),
                            padding_mode="circular")
    # a kernel larger than the input: direct conv2d wraps, the builders refuse
    K5 = np.ones((1, 1, 5, 5))
    assert direct.conv2d(A, K5, padding=1, padding_mode="circular").shape == (1, 1, 1)
    with pytest.raises(ValueError, match="h_k <= h_a"):
        jac.conv_wrt_input(K5, A.shape, padding=1, padding_mode="circular")
    with pytest.raises(ValueError, match="h_k <= h_a"):
        jac.conv_wrt_kernel(A, K5.shape, padding=1, padding_mode="circular")


def test_spectrum_bad_input():
    K = np.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match="channel mismatch"):
        spectrum.conv_singular_values(K, (2, 5, 5))
    with pytest.raises(ValueError, match="input_shape"):
        spectrum.conv_singular_values(K, (1, 3, 5, 5))
    with pytest.raises(TypeError, match="input_shape"):
        spectrum.conv_singular_values(K, "3x5x5")
    with pytest.raises(ValueError, match="K must have"):
        spectrum.conv_singular_values(np.ones((3, 3)), (3, 5, 5))
    with pytest.raises(TypeError, match="k must be"):
        spectrum.conv_singular_values(K, (3, 5, 5), k=1.5)
    with pytest.raises(ValueError, match="k must be between"):
        spectrum.conv_singular_values(K, (3, 5, 5), k=0)
    with pytest.raises(ValueError, match="dense_limit"):
        spectrum.conv_singular_values(K, (3, 5, 5), dense_limit=-1)
    with pytest.raises(ValueError, match="pass k"):
        spectrum.conv_singular_values(K, (3, 5, 5), dense_limit=10)
    with pytest.raises(vj.MemoryBudgetError):
        spectrum.conv_singular_values(K, (3, 5, 5), max_bytes=1000)
    with pytest.raises(TypeError, match="no k"):
        spectrum.conv_spectral_norm(K, (3, 5, 5), k=2)
    with pytest.raises(ValueError, match="larger than input_hw"):
        spectrum.fft_singular_values(K, (2, 5))
    with pytest.raises(ValueError, match="input_hw must be >= 1"):
        spectrum.fft_singular_values(K, 0)
    with pytest.raises(ValueError, match="NaN"):
        spectrum.reshaped_kernel_norm(np.full((1, 1, 2, 2), np.nan))
