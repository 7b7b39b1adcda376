"""Pooling (the note's section 3.1.3): direct path and Jacobians against loop oracles.

Average pooling is also held equal to the convolution builder with the constant kernel ``P``,
the block form to the stacked form's diagonal blocks, and max pooling's tie rules are checked
on constructed ties.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles_layers import pool_backward_naive, pool_jacobian_naive, pool_naive

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import conv_block_wrt_input, conv_wrt_input, pool, pool_block
from vecjac.testing import check_jacobian
from vecjac.vec import as_pair

KINDS = ("avg", "max", "l2")

# (size, stride, padding, input (H, W)): overlapping windows, stride larger than the window,
# 1x1 windows, rectangular windows, padding, and a window equal to the padded input.
GEOMETRIES = [
    (2, None, 0, (4, 6)),
    (2, 1, 0, (4, 5)),
    (3, 1, 1, (5, 4)),
    ((2, 3), (1, 2), (1, 1), (5, 6)),
    (1, None, 0, (3, 4)),
    (2, 3, 0, (7, 8)),
    ((3, 2), (2, 3), (1, 0), (6, 7)),
    (4, None, 1, (2, 2)),
    (3, None, 0, (3, 3)),
]


def _input(rng, shape, ties: bool = False):
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


def _valid(kind, size, padding) -> bool:
    size, padding = as_pair(size, "size", 1), as_pair(padding, "padding", 0)
    return kind != "max" or all(p <= s // 2 for s, p in zip(size, padding, strict=True))


# --- direct path and Jacobian against the loop oracles ------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size, stride, padding, hw", GEOMETRIES)
@pytest.mark.parametrize("batch", [None, 2])
def test_direct_and_jacobian_match_loop_oracle(kind, size, stride, padding, hw, batch):
    if not _valid(kind, size, padding):
        pytest.skip("max pooling refuses padding larger than half the window")
    rng = np.random.default_rng(0)
    shape = ((batch,) if batch else ()) + (3,) + hw
    I = _input(rng, shape)
    A = direct.pool2d(I, kind, size, stride, padding)
    np.testing.assert_allclose(A, pool_naive(I, kind, size, stride, padding), atol=1e-14)
    dA = rng.standard_normal(A.shape)
    dI = direct.pool2d_backward(dA, I, kind, size, stride, padding)
    dI_ref = pool_backward_naive(dA, I, kind, size, stride, padding)
    np.testing.assert_allclose(dI, dI_ref, atol=1e-14)
    J = pool(I, kind, size, stride, padding)
    np.testing.assert_allclose(J.toarray(), pool_jacobian_naive(I, kind, size, stride, padding))
    np.testing.assert_allclose(J.T @ vj.vec(dA), vj.vec(dI), atol=1e-13)
    assert (J.of_shape, J.wrt_shape) == (A.shape, I.shape)


@st.composite
def pool_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    top = (size[0] // 2, size[1] // 2) if kind == "max" else (2, 2)
    padding = (draw(st.integers(0, top[0])), draw(st.integers(0, top[1])))
    H = draw(st.integers(max(1, size[0] - 2 * padding[0]), 6))
    W = draw(st.integers(max(1, size[1] - 2 * padding[1]), 6))
    lead = draw(st.sampled_from([(), (1,), (2,)])) + (draw(st.integers(1, 3)),)
    ties = draw(st.sampled_from(direct.TIE_RULES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    I = _input(rng, lead + (H, W), ties=draw(st.booleans()))
    return I, kind, size, stride, padding, ties


@settings(deadline=None, max_examples=80)
@given(pool_cases())
def test_random_geometries_match_loop_oracle(case):
    I, kind, size, stride, padding, ties = case
    A = direct.pool2d(I, kind, size, stride, padding)
    np.testing.assert_allclose(A, pool_naive(I, kind, size, stride, padding), atol=1e-14)
    dA = np.random.default_rng(1).standard_normal(A.shape)
    dI = direct.pool2d_backward(dA, I, kind, size, stride, padding, ties)
    ref = pool_backward_naive(dA, I, kind, size, stride, padding, ties)
    np.testing.assert_allclose(dI, ref, atol=1e-13)
    J = pool(I, kind, size, stride, padding, ties)
    J_ref = pool_jacobian_naive(I, kind, size, stride, padding, ties)
    np.testing.assert_allclose(J.toarray(), J_ref, atol=1e-15)
    np.testing.assert_allclose(J.T @ vj.vec(dA), vj.vec(dI), atol=1e-13)
    J.matrix.check_format(full_check=True)
    assert J.matrix.has_sorted_indices


# --- check_jacobian: basis for the linear layer, differentiate for the others --------------
@pytest.mark.parametrize("size, stride, padding, hw", GEOMETRIES[:5])
def test_avg_pool_check_jacobian_basis(size, stride, padding, hw):
    I = np.random.default_rng(2).standard_normal((2, 2) + hw)
    J = pool(I, "avg", size, stride, padding)
    f = lambda X: direct.pool2d(X, "avg", size, stride, padding)  # noqa: E731
    assert check_jacobian(J, f, I, method="basis") < 1e-12


@pytest.mark.parametrize("kind", ["max", "l2"])
@pytest.mark.parametrize("size, stride, padding", [(2, None, 0), (3, 1, 1), ((2, 3), (2, 1), 1)])
def test_nonlinear_pool_check_jacobian_differentiate(kind, size, stride, padding):
    rng = np.random.default_rng(3)
    shape = (2, 2, 4, 5)
    # distinct values one apart (max is linear within +-0.5), signs kept away from 0 (l2)
    I = rng.permutation(np.prod(shape)).reshape(shape) - np.prod(shape) / 2 + 0.5
    I = I if kind == "max" else I / 8
    J = pool(I, kind, size, stride, padding)
    f = lambda X: direct.pool2d(X, kind, size, stride, padding)  # noqa: E731
    assert check_jacobian(J, f, I, method="differentiate") < 1e-7


# --- average pooling is the convolution with P ----------------------------------------------
@pytest.mark.parametrize("size, stride, padding, hw", GEOMETRIES)
def test_avg_pool_is_the_conv_builder_with_constant_P(size, stride, padding, hw):
    I = np.random.default_rng(4).standard_normal((2, 3) + hw)
    h_l, w_l = as_pair(size, "size", 1)
    P = np.full((1, 1, h_l, w_l), 1.0 / (h_l * w_l))
    stride = size if stride is None else stride
    folded = I.reshape((6, 1) + hw)
    A_conv = direct.conv2d(folded, P, stride=stride, padding=padding).reshape(2, 3, -1)
    A = direct.pool2d(I, "avg", size, stride, padding)
    np.testing.assert_allclose(A.reshape(2, 3, -1), A_conv, atol=1e-15)
    J = pool(I, "avg", size, stride, padding)
    J_conv = conv_wrt_input(P, (6, 1) + hw, stride, padding)
    assert (J.matrix != J_conv.matrix).nnz == 0
    block = conv_block_wrt_input(P[0, 0], hw, stride, padding)
    assert (pool_block(I[0, 0], "avg", size, stride, padding).matrix != block.matrix).nnz == 0
    kron = sp.kron(sp.eye_array(6), block.matrix, format="csr")
    assert (J.matrix != kron).nnz == 0
    assert np.all(J.matrix.data != 0)  # no explicit zeros stored


def test_avg_pool_counts_padding_zeros_in_the_mean():
    I = np.arange(1.0, 5.0).reshape(1, 2, 2)
    A = direct.pool2d(I, "avg", size=2, stride=1, padding=1)
    assert A[0, 0, 0] == pytest.approx(1.0 / 4)  # the corner window holds one entry and zeros
    assert A[0, 1, 1] == pytest.approx(I.sum() / 4)


# --- block form == stacked blocks -----------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ties", direct.TIE_RULES)
def test_block_form_equals_stacked_blocks(kind, ties):
    I = _input(np.random.default_rng(5), (2, 3, 5, 4), ties=True)
    J = pool(I, kind, 2, 1, 1 if kind != "max" else 0, ties)
    total = 0
    for n in range(2):
        for c in range(3):
            block = pool_block(I[n, c], kind, 2, 1, 1 if kind != "max" else 0, ties)
            assert (block.of, block.wrt) == ("A_j", "I_j")
            np.testing.assert_array_equal(J.block((n, c), (n, c)).toarray(), block.toarray())
            total += block.nnz
    assert J.nnz == total  # everything off the diagonal blocks is zero


def test_avg_block_is_the_same_for_every_channel():
    rng = np.random.default_rng(6)
    blocks = [pool_block(rng.standard_normal((6, 6)), "avg", 3, 2, 1).toarray() for _ in range(3)]
    np.testing.assert_array_equal(blocks[0], blocks[1])
    np.testing.assert_array_equal(blocks[0], blocks[2])


# --- max pooling: switches and ties ---------------------------------------------------------
def test_max_pool_constructed_ties_under_both_rules():
    I = np.array([[[5.0, 5.0, 1.0], [5.0, 2.0, 5.0], [0.0, 5.0, 3.0]]])  # (1, 3, 3)
    # window (0, 0) of size 2, stride 1: entries 5 5 / 5 2 -> three tied maxima
    first = pool(I, "max", 2, 1, ties="first").toarray()
    split = pool(I, "max", 2, 1, ties="split").toarray()
    vec_pos = lambda r, s: s * 3 + r  # noqa: E731
    assert first[0, vec_pos(0, 0)] == 1 and first[0].sum() == 1
    np.testing.assert_allclose(split[0, [vec_pos(0, 0), vec_pos(0, 1), vec_pos(1, 0)]], 1 / 3)
    assert split[0].sum() == pytest.approx(1)
    np.testing.assert_allclose(first.sum(axis=1), 1)
    np.testing.assert_allclose(split.sum(axis=1), 1)
    for ties, J in (("first", first), ("split", split)):
        dA = np.arange(1.0, 5.0).reshape(1, 2, 2)
        dI = direct.pool2d_backward(dA, I, "max", 2, 1, ties=ties)
        np.testing.assert_allclose(vj.vec(dI), J.T @ vj.vec(dA))


def test_max_pool_constant_windows_split_equally():
    I = np.ones((2, 1, 4, 4))
    shares = direct.max_pool_shares(I, 2, ties="split")
    np.testing.assert_array_equal(shares, 0.25)
    J = pool(I, "max", 2, ties="split")
    np.testing.assert_array_equal(J.matrix.data, 0.25)
    assert J.nnz == 4 * J.shape[0]
    switches = direct.max_pool_switches(I, 2)
    np.testing.assert_array_equal(switches, 0)  # first maximum in row-major window order
    np.testing.assert_array_equal(pool(I, "max", 2).matrix.data, 1)


def test_max_pool_first_rule_is_row_major():
    I = np.array([[[0.0, 7.0], [7.0, 1.0]]])  # (0,1) comes before (1,0) in row-major order
    assert direct.max_pool_switches(I, 2)[0, 0, 0] == 1
    J = pool(I, "max", 2)
    assert J.toarray()[0, 2] == 1  # (r, s) = (0, 1) sits at vec position s*H + r = 2


def test_max_pool_padding_acts_as_minus_infinity():
    I = -np.arange(1.0, 10.0).reshape(1, 3, 3)  # all negative: zeros of padding would win
    A = direct.pool2d(I, "max", 2, 2, 1)
    np.testing.assert_array_equal(A, pool_naive(I, "max", 2, 2, 1))
    assert A.max() < 0


# --- L2 pooling -------------------------------------------------------------------------------
def test_l2_pool_all_zero_windows():
    I = np.zeros((1, 2, 4, 4))
    I[0, 0, 0, 0] = 3.0
    I[0, 0, 1, 1] = -4.0  # window (0, 0) of channel 0 has norm 5; every other window is zero
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A = direct.pool2d(I, "l2", 2)
        J = pool(I, "l2", 2)
        dI = direct.pool2d_backward(np.ones_like(A), I, "l2", 2)
    assert A[0, 0, 0, 0] == 5.0 and np.count_nonzero(A) == 1
    dense = J.toarray()
    assert np.all(np.isfinite(dense))
    np.testing.assert_allclose(dense[0, [0, 5]], [3 / 5, -4 / 5])  # I_pq / A_xy
    assert np.count_nonzero(dense) == 2  # rows of zero windows are zero
    np.testing.assert_allclose(dI[0, 0, :2, :2], [[0.6, 0.0], [0.0, -0.8]])
    assert np.count_nonzero(dI) == 2


# --- dtype, budget and bad input --------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_float32_is_kept(kind):
    I = np.random.default_rng(7).standard_normal((2, 4, 4)).astype(np.float32)
    assert direct.pool2d(I, kind).dtype == np.float32
    assert pool(I, kind).matrix.dtype == np.float32


@pytest.mark.parametrize(
    "kind, ties", [("avg", "first"), ("max", "first"), ("max", "split"), ("l2", "first")]
)
def test_budget_is_checked(kind, ties):
    with pytest.raises(vj.MemoryBudgetError, match="max_bytes="):
        pool(np.ones((4, 8, 8)), kind, 2, ties=ties, max_bytes=100)


BAD = [
    (dict(size=5), ValueError, "pool size"),
    (dict(size=(2, 7), padding=1), ValueError, "pool size"),
    (dict(kind="max", size=2, padding=2), ValueError, "padding.*half"),
    (dict(kind="max", size=3, padding=(1, 2)), ValueError, "padding.*half"),
    (dict(kind="median"), ValueError, "kind.*'avg', 'max', 'l2'"),
    (dict(kind="max", ties="last"), ValueError, "ties.*'first', 'split'"),
    (dict(size=0), ValueError, "size must be >= 1"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(size=1.5), TypeError, "size must be an int"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD)
def test_bad_arguments_are_refused_by_every_entry_point(kwargs, error, message):
    I = np.ones((2, 4, 4))
    geometry = dict(size=2, stride=None, padding=0) | kwargs
    kind, ties = geometry.pop("kind", "avg"), geometry.pop("ties", None)
    if ties is None:  # pool2d has no tie rule
        with pytest.raises(error, match=message):
            direct.pool2d(I, kind, **geometry)
    ties = ties or "first"
    with pytest.raises(error, match=message):
        direct.pool2d_backward(np.ones((2, 2, 2)), I, kind, ties=ties, **geometry)
    with pytest.raises(error, match=message):
        pool(I, kind, ties=ties, **geometry)
    with pytest.raises(error, match=message):
        pool_block(I[0], kind, ties=ties, **geometry)


def test_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="I must have 3 or 4 dimensions"):
        pool(np.ones((4, 4)))
    with pytest.raises(ValueError, match="I_j must have 2 dimensions"):
        pool_block(np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="I contains NaN"):
        direct.pool2d(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="dA has shape"):
        direct.pool2d_backward(np.ones((1, 3, 3)), np.ones((1, 4, 4)))
    with pytest.raises(TypeError, match="I must be a real numeric array"):
        direct.pool2d(np.full((1, 2, 2), "a"))
