"""Maps stored in the note's vec layout (every channel column-major), as Sequential keeps them.

Oracles: the same calls on C-ordered copies of the same values (the first wave's code paths),
and the flat Jacobians' products.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac import direct
from vecjac import jacobians as jac
from vecjac.direct.conv import vec_layout
from vecjac.vec import vec


def as_vec_layout(x):
    return np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2)


CONVS = [  # (input shape, kernel shape, stride, padding, padding mode)
    ((3, 2, 7, 5), (4, 2, 3, 2), (1, 2), (1, 0), "zeros"),
    ((2, 3, 6, 6), (2, 3, 3, 3), 1, 1, "circular"),
    ((4, 1, 5, 8), (3, 1, 2, 3), (2, 1), (0, 1), "zeros"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONVS)
def test_conv_forward_and_backward_keep_the_layout_and_the_values(case, dtype, rng):
    shape, k_shape, stride, padding, mode = case
    A, K = rng.standard_normal(shape).astype(dtype), rng.standard_normal(k_shape).astype(dtype)
    b = rng.standard_normal(k_shape[0]).astype(dtype)
    A_v = as_vec_layout(A)
    assert vec_layout(A_v) and not vec_layout(A) and np.shares_memory(vec(A_v), A_v)
    Z = direct.conv2d(A, K, b, stride, padding, padding_mode=mode)
    Z_v, cols = direct.conv2d(A_v, K, b, stride, padding, return_cols=True, padding_mode=mode)
    assert vec_layout(Z_v) and Z_v.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(Z_v, Z, rtol=tol, atol=tol)
    dZ = rng.standard_normal(Z.shape).astype(dtype)
    expected = direct.conv2d_backward(dZ, A, K, stride, padding, padding_mode=mode)
    for upstream in (dZ, as_vec_layout(dZ)):
        got = direct.conv2d_backward(upstream, A_v, K, stride, padding, cols=cols,
                                     padding_mode=mode)
        assert vec_layout(got[0])
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=tol, atol=tol)


def test_one_sample_in_the_vec_layout(rng):
    A = as_vec_layout(rng.standard_normal((1, 2, 5, 6)))[0]  # (C, H, W), column-major maps
    K = rng.standard_normal((3, 2, 2, 2))
    Z = direct.conv2d(A, K, None, 1, 1)
    assert Z.shape == (3, 6, 7)
    np.testing.assert_allclose(Z, direct.conv2d(np.ascontiguousarray(A), K, None, 1, 1))
    dA, dK, db = direct.conv2d_backward(np.ones_like(Z), A, K, 1, 1)
    dA_c, dK_c, _ = direct.conv2d_backward(np.ones_like(Z), np.ascontiguousarray(A), K, 1, 1)
    assert dA.shape == A.shape
    np.testing.assert_allclose(dA, dA_c)
    np.testing.assert_allclose(dK, dK_c)


@pytest.mark.parametrize("kind, size, stride, padding", [
    ("avg", 2, None, 0), ("avg", (2, 3), (1, 2), (1, 0)), ("l2", 2, 1, 0),
    ("max", 2, None, 0), ("max", 3, 2, 1)])
def test_pooling_keeps_the_layout_and_the_values(kind, size, stride, padding, rng):
    I = rng.standard_normal((2, 3, 6, 8))
    I[0, 0, :2, :2] = 1.0  # a tie for max pooling's "first" rule, across the window
    I_v = as_vec_layout(I)
    A = direct.pool2d(I, kind, size, stride, padding)
    A_v = direct.pool2d(I_v, kind, size, stride, padding)
    np.testing.assert_allclose(A_v, A, rtol=1e-12)
    dA = rng.standard_normal(A.shape)
    np.testing.assert_allclose(direct.pool2d_backward(dA, I_v, kind, size, stride, padding),
                               direct.pool2d_backward(dA, I, kind, size, stride, padding),
                               rtol=1e-12, atol=1e-14)
    if kind != "max":
        assert vec_layout(A_v)


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("with_cols", [True, False])
def test_kernel_jacobian_rows_on_the_vec_layout(case, with_cols, rng):
    shape, k_shape, stride, padding, mode = case
    A_v = as_vec_layout(rng.standard_normal(shape))
    K = rng.standard_normal(k_shape)
    cols = (direct.conv2d(A_v, K, None, stride, padding, return_cols=True,
                          padding_mode=mode)[1] if with_cols else None)
    J = jac.conv_wrt_kernel(A_v, k_shape, stride, padding, padding_mode=mode, cols=cols)
    flat = jac.conv_wrt_kernel(np.ascontiguousarray(A_v), k_shape, stride, padding,
                               padding_mode=mode, structured=False).matrix
    R = rng.standard_normal((2, J.shape[0]))
    np.testing.assert_allclose(R @ J, R @ flat, rtol=1e-12, atol=1e-12)
    per_sample = J._structure.per_sample(R)
    n, m = shape[0], J.shape[0] // shape[0]
    for s in range(n):
        part = R[:, s * m:(s + 1) * m] @ flat[s * m:(s + 1) * m]
        np.testing.assert_allclose(per_sample[s], part, rtol=1e-12, atol=1e-12)


def test_a_network_keeps_its_maps_in_the_vec_layout(rng):
    net = vj.CNN(input_shape=(2, 13, 11), channels=(3, 4), seed=0)
    X = rng.standard_normal((3, 2, 13, 11))
    cache = net._forward(X)
    for name in ("X", "Z1", "I1", "A1", "Z2", "I2", "A2"):
        assert vec_layout(cache[name]) and np.shares_memory(vec(cache[name]), cache[name])
    np.testing.assert_array_equal(cache["X"], X)
    assert net.forward(X).shape == (3, net.n_out)
