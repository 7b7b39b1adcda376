"""The fast direct convolution and its backward pass against the naive loop oracle.

Also the third seed text's formulas as functions (``kernel_gradient``, ``bias_gradient``,
``input_gradient``), held equal to ``conv2d_backward`` and to the oracle over the same table
of channels, sizes, kernels, strides and paddings.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import CASES, conv2d_backward_naive, conv2d_naive, conv_cases

from vecjac import direct

TOL64 = {"rtol": 1e-12, "atol": 1e-12}
TOL32 = {"rtol": 2e-5, "atol": 2e-5}
cases = pytest.mark.parametrize("case", CASES, ids=repr)
seeds = st.integers(0, 2**32 - 1)


def _forward_check(case, rng, dtype=np.float64, tol=TOL64):
    A, K, b, _ = case.arrays(rng, dtype)
    Z = direct.conv2d(A, K, b, stride=case.stride, padding=case.padding)
    assert Z.shape == case.output_shape
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, conv2d_naive(A, K, b, case.stride, case.padding), **tol)
    Z0 = direct.conv2d(A, K, stride=case.stride, padding=case.padding)  # no bias
    np.testing.assert_allclose(Z0, conv2d_naive(A, K, None, case.stride, case.padding), **tol)


def _backward_check(case, rng, dtype=np.float64, tol=TOL64):
    A, K, _, dZ = case.arrays(rng, dtype)
    dA, dK, db = direct.conv2d_backward(dZ, A, K, stride=case.stride, padding=case.padding)
    assert (dA.shape, dK.shape, db.shape) == (A.shape, K.shape, (case.C_out,))
    assert dA.dtype == dK.dtype == db.dtype == dtype
    eA, eK, eb = conv2d_backward_naive(dZ, A, K, case.stride, case.padding)
    np.testing.assert_allclose(dA, eA, **tol)
    np.testing.assert_allclose(dK, eK, **tol)
    np.testing.assert_allclose(db, eb, **tol)


# --- forward -----------------------------------------------------------------------------------
@cases
def test_conv2d_matches_loop_oracle(case, rng):
    _forward_check(case, rng)


@given(case=conv_cases(), seed=seeds)
def test_conv2d_matches_loop_oracle_hypothesis(case, seed):
    _forward_check(case, np.random.default_rng(seed))


@cases
def test_conv2d_float32_stays_float32(case, rng):
    _forward_check(case, rng, np.float32, TOL32)


def test_conv2d_integer_input_becomes_float64():
    A = np.arange(2 * 4 * 5).reshape(2, 4, 5)
    K = np.arange(3 * 2 * 2 * 3).reshape(3, 2, 2, 3) - 10
    Z = direct.conv2d(A, K, [1, 2, 3], stride=(1, 2), padding=1)
    assert Z.dtype == np.float64
    np.testing.assert_array_equal(Z, conv2d_naive(A, K, [1, 2, 3], (1, 2), 1))


def test_conv2d_batch_is_samples_stacked(rng):
    """A batch gives, sample by sample, what the single-sample call of the oracle gives."""
    A, K, b = rng.standard_normal((3, 2, 5, 6)), rng.standard_normal((4, 2, 3, 2)), np.ones(4)
    Z = direct.conv2d(A, K, b, stride=(2, 1), padding=(1, 2))
    for n in range(3):
        np.testing.assert_allclose(Z[n], conv2d_naive(A[n], K, b, (2, 1), (1, 2)), **TOL64)


def test_int_and_pair_spellings_agree(rng):
    A, K = rng.standard_normal((2, 6, 6)), rng.standard_normal((2, 2, 3, 3))
    np.testing.assert_array_equal(
        direct.conv2d(A, K, stride=2, padding=1),
        direct.conv2d(A, K, stride=(2, 2), padding=[1, 1]),
    )
    np.testing.assert_array_equal(
        direct.conv2d(A, K, stride=np.int64(2), padding=np.int32(1)),
        direct.conv2d(A, K, stride=(2, 2), padding=(1, 1)),
    )


def test_conv2d_is_cross_correlation_not_convolution():
    """No kernel flip: a kernel with a single 1 at (0, 0) copies the top-left of each window."""
    A = np.arange(16.0).reshape(1, 4, 4)
    K = np.zeros((1, 1, 2, 2))
    K[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(direct.conv2d(A, K)[0], A[0, :3, :3])


# --- backward ----------------------------------------------------------------------------------
@cases
def test_conv2d_backward_matches_loop_oracle(case, rng):
    _backward_check(case, rng)


@given(case=conv_cases(), seed=seeds)
def test_conv2d_backward_matches_loop_oracle_hypothesis(case, seed):
    _backward_check(case, np.random.default_rng(seed))


@cases
def test_conv2d_backward_float32_stays_float32(case, rng):
    _backward_check(case, rng, np.float32, TOL32)


@cases
def test_conv2d_backward_is_the_adjoint_of_conv2d(case, rng):
    """<dZ, conv(A, K)> = <dA, A> = <dK, K> (+ <db, b>): bilinearity, no oracle needed."""
    A, K, b, dZ = case.arrays(rng)
    s, p = case.stride, case.padding
    dA, dK, db = direct.conv2d_backward(dZ, A, K, stride=s, padding=p)
    inner = float(np.sum(dZ * direct.conv2d(A, K, stride=s, padding=p)))
    assert np.isclose(inner, np.sum(dA * A), rtol=1e-12, atol=1e-12)
    assert np.isclose(inner, np.sum(dK * K), rtol=1e-12, atol=1e-12)
    with_bias = float(np.sum(dZ * direct.conv2d(A, K, b, stride=s, padding=p)))
    assert np.isclose(with_bias, inner + np.dot(db, b), rtol=1e-12, atol=1e-12)


# --- the third seed text's formulas ------------------------------------------------------------
def _seed_formulas_check(case, rng):
    A, K, _, dZ = case.arrays(rng)
    s, p = case.stride, case.padding
    dA, dK, db = direct.conv2d_backward(dZ, A, K, stride=s, padding=p)
    eA, eK, eb = conv2d_backward_naive(dZ, A, K, s, p)

    gK = direct.kernel_gradient(A, dZ, (case.kh, case.kw), stride=s, padding=p)
    assert gK.shape == K.shape
    np.testing.assert_allclose(gK, dK, **TOL64)
    np.testing.assert_allclose(gK, eK, **TOL64)

    gb = direct.bias_gradient(dZ)
    assert gb.shape == (case.C_out,)
    np.testing.assert_allclose(gb, db, **TOL64)
    np.testing.assert_allclose(gb, eb, **TOL64)

    gA = direct.input_gradient(dZ, K, (case.H, case.W), stride=s, padding=p)
    assert gA.shape == A.shape
    np.testing.assert_allclose(gA, dA, **TOL64)
    np.testing.assert_allclose(gA, eA, **TOL64)


@cases
def test_seed_formulas_equal_conv2d_backward(case, rng):
    _seed_formulas_check(case, rng)


@given(case=conv_cases(), seed=seeds)
def test_seed_formulas_equal_conv2d_backward_hypothesis(case, seed):
    _seed_formulas_check(case, np.random.default_rng(seed))


def test_kernel_gradient_accepts_int_kernel_size(rng):
    A, dZ = rng.standard_normal((2, 5, 5)), rng.standard_normal((3, 3, 3))
    K = np.zeros((3, 2, 3, 3))
    np.testing.assert_allclose(
        direct.kernel_gradient(A, dZ, 3, stride=1, padding=0),
        conv2d_backward_naive(dZ, A, K, 1, 0)[1],
        **TOL64,
    )


def test_input_gradient_accepts_int_input_size(rng):
    K, dZ = rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((3, 3, 3))
    A = np.zeros((2, 5, 5))
    np.testing.assert_allclose(
        direct.input_gradient(dZ, K, 5, stride=2, padding=1),
        conv2d_backward_naive(dZ, A, K, 2, 1)[0],
        **TOL64,
    )


@pytest.mark.parametrize(
    ("stride", "expected"),
    [
        (1, [[1, 2], [3, 4]]),
        (2, [[1, 0, 2], [0, 0, 0], [3, 0, 4]]),
        ((1, 3), [[1, 0, 0, 2], [3, 0, 0, 4]]),
        ((3, 2), [[1, 0, 2], [0, 0, 0], [0, 0, 0], [3, 0, 4]]),
    ],
)
def test_dilate_inserts_stride_minus_one_zeros(stride, expected):
    D = direct.dilate(np.array([[1.0, 2.0], [3.0, 4.0]]), stride)
    np.testing.assert_array_equal(D, expected)
    batched = direct.dilate(np.array([[[[1.0, 2.0], [3.0, 4.0]]]] * 2), stride)
    np.testing.assert_array_equal(batched[1, 0], expected)


def test_backward_without_the_input_gradient(rng):
    A, K = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    dZ = rng.standard_normal(direct.conv2d(A, K, None, 2, 1).shape)
    full = direct.conv2d_backward(dZ, A, K, 2, 1)
    dA, dK, db = direct.conv2d_backward(dZ, A, K, 2, 1, input_grad=False)
    assert dA is None
    np.testing.assert_array_equal(dK, full[1])
    np.testing.assert_array_equal(db, full[2])


@cases
def test_backward_reuses_the_forward_columns(case, rng):
    """``conv2d(return_cols=True)`` hands its im2col to the backward pass: same results as
    unfolding again, and the same as the loop oracle."""
    A, K, b, dZ = case.arrays(rng, np.float64)
    Z, cols = direct.conv2d(A, K, b, case.stride, case.padding, return_cols=True)
    np.testing.assert_array_equal(Z, direct.conv2d(A, K, b, case.stride, case.padding))
    reused = direct.conv2d_backward(dZ, A, K, case.stride, case.padding, cols=cols)
    for got, expected in zip(reused, conv2d_backward_naive(dZ, A, K, case.stride, case.padding),
                             strict=True):
        np.testing.assert_allclose(got, expected, **TOL64)


def test_backward_refuses_columns_of_another_shape(rng):
    A, K = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    dZ = rng.standard_normal(direct.conv2d(A, K, None, 1, 1).shape)
    _, cols = direct.conv2d(A, K, None, 2, 1, return_cols=True)  # another stride
    with pytest.raises(ValueError, match=r"cols has shape \(27, 18\), expected .* \(27, 60\)"):
        direct.conv2d_backward(dZ, A, K, 1, 1, cols=cols)


@pytest.mark.parametrize("shapes", [
    ((3, 1, 9, 8), (4, 1, 3, 3), 1, 1),    # C_in h_k w_k = 9 <= 72 positions: per sample
    ((2, 5, 4, 4), (3, 5, 3, 2), 1, 1),    # 30 > 20 positions: one product over the batch
    ((2, 2, 7, 6), (3, 2, 2, 2), (2, 1), 0),  # 8 <= 15 positions, asymmetric stride
])
@pytest.mark.parametrize("layout", ["C", "vec"])
def test_both_kernel_gradient_products_match_the_oracle(shapes, layout, rng):
    """``dK`` is one product per sample when a sample's unfolded rows are no more than its
    positions, else one product over the batch; both against the loop oracle, on C-ordered
    maps and on maps in the vec layout (the network's)."""
    from vecjac.direct.conv import _im2col, _per_sample_products

    A_shape, K_shape, stride, padding = shapes
    A, K = rng.standard_normal(A_shape), rng.standard_normal(K_shape)
    dZ = rng.standard_normal(direct.conv2d(A, K, None, stride, padding).shape)
    cols = _im2col(A, K_shape[2:], (stride,) * 2 if isinstance(stride, int) else stride,
                   (padding, padding), "zeros")
    per_sample = _per_sample_products(cols, A_shape[0])
    assert per_sample == (A_shape[1] * K_shape[2] * K_shape[3] <= dZ.shape[2] * dZ.shape[3])
    eA, eK, eb = conv2d_backward_naive(dZ, A, K, stride, padding)
    if layout == "vec":  # every channel column-major, the same values
        A, dZ = (np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2) for x in (A, dZ))
    dA, dK, db = direct.conv2d_backward(dZ, A, K, stride=stride, padding=padding)
    for got, expected in ((dA, eA), (dK, eK), (db, eb)):
        np.testing.assert_allclose(got, expected, **TOL64)
