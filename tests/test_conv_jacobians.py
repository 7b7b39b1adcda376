"""The explicit convolution Jacobians (the note's section 3.1.5) and the Jacobian object.

Oracles: exact linearity against the loop oracle's output; columns from basis vectors
pushed through the direct convolution (``vecjac.testing.check_jacobian``); a dense Jacobian by
the definition of the derivative, from the loop oracle alone; the loop oracle's backward for
``J.T @ vec(dZ)``; per-channel blocks built from single-channel oracle convolutions.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from oracles import (
    BATCH_CASES,
    CASES,
    Case,
    conv2d_backward_naive,
    conv2d_naive,
    conv_cases,
    jacobian_by_definition,
    vec_naive,
)

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import (
    clear_pattern_cache,
    conv_block_wrt_input,
    conv_block_wrt_kernel,
    conv_nnz,
    conv_pattern,
    conv_wrt_bias,
    conv_wrt_input,
    conv_wrt_kernel,
)
from vecjac.testing import check_jacobian

cases = pytest.mark.parametrize("case", CASES, ids=repr)
batch_cases = pytest.mark.parametrize("case", BATCH_CASES, ids=repr)
seeds = st.integers(0, 2**32 - 1)


def _build(case, A, K):
    s, p = case.stride, case.padding
    J_A = conv_wrt_input(K, case.input_shape, s, p)
    J_K = conv_wrt_kernel(A, case.kernel_shape, s, p)
    J_b = conv_wrt_bias(case.output_shape)
    return J_A, J_K, J_b


# --- shapes, names, sizes ----------------------------------------------------------------------
@cases
def test_jacobian_shapes_and_names(case, rng):
    A, K, _, _ = case.arrays(rng)
    J_A, J_K, J_b = _build(case, A, K)
    n_out = int(np.prod(case.output_shape))
    assert J_A.shape == (n_out, int(np.prod(case.input_shape)))
    assert J_K.shape == (n_out, int(np.prod(case.kernel_shape)))
    assert J_b.shape == (n_out, case.C_out)
    assert (J_A.of, J_A.wrt, J_K.of, J_K.wrt, J_b.of, J_b.wrt) == ("Z", "A", "Z", "K", "Z", "b")
    assert J_A.of_shape == J_K.of_shape == J_b.of_shape == case.output_shape
    assert (J_A.wrt_shape, J_K.wrt_shape, J_b.wrt_shape) == (
        case.input_shape, case.kernel_shape, (case.C_out,)
    )
    for J in (J_A, J_K, J_b):
        assert isinstance(J.matrix, sp.csr_array)


@cases
def test_nnz_equals_the_structural_nonzeros_of_the_oracle(case, rng):
    """With random (nonzero) values, the stored entries are exactly the oracle's nonzeros, no
    duplicates, and ``conv_nnz`` predicts the count from shapes alone."""
    A, K, _, _ = case.arrays(rng)
    J_A, J_K, _ = _build(case, A, K)
    s, p = case.stride, case.padding
    dense_A = jacobian_by_definition(lambda X: conv2d_naive(X, K, None, s, p), A)
    dense_K = jacobian_by_definition(lambda X: conv2d_naive(A, X, None, s, p), K)
    expected = conv_nnz(case.input_shape, case.kernel_shape, s, p)
    assert J_A.nnz == J_K.nnz == expected
    assert np.count_nonzero(dense_A) == np.count_nonzero(dense_K) == expected
    for J in (J_A, J_K):
        canonical = J.matrix.copy()
        canonical.sum_duplicates()
        assert canonical.nnz == J.nnz
        assert J.density == pytest.approx(J.nnz / (J.shape[0] * J.shape[1]))


# --- linearity, exactly ------------------------------------------------------------------------
def _linearity_check(case, rng):
    A, K, b, _ = case.arrays(rng)
    J_A, J_K, J_b = _build(case, A, K)
    Z = conv2d_naive(A, K, b, case.stride, case.padding)
    vZ = vj.vec(Z)
    np.testing.assert_allclose(J_K @ vj.vec(K) + J_b @ b, vZ, rtol=0, atol=1e-12)
    np.testing.assert_allclose(J_A @ vj.vec(A) + J_b @ b, vZ, rtol=0, atol=1e-12)
    Zd = direct.conv2d(A, K, b, stride=case.stride, padding=case.padding)
    np.testing.assert_allclose(J_A @ vj.vec(A) + J_b @ b, vj.vec(Zd), rtol=0, atol=1e-12)


@cases
def test_linearity_exact(case, rng):
    _linearity_check(case, rng)


@given(case=conv_cases(), seed=seeds)
def test_linearity_exact_hypothesis(case, seed):
    _linearity_check(case, np.random.default_rng(seed))


def test_linearity_float32(rng):
    case = Case(2, 2, 3, 5, 6, 3, 2, (2, 1), 1)
    A, K, b, _ = case.arrays(rng, np.float32)
    J_A, J_K, J_b = _build(case, A, K)
    assert J_A.matrix.dtype == J_K.matrix.dtype == np.float32
    Z = conv2d_naive(A, K, b, case.stride, case.padding)
    np.testing.assert_allclose(J_A @ vj.vec(A) + J_b @ b, vj.vec(Z), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(J_K @ vj.vec(K) + J_b @ b, vj.vec(Z), rtol=1e-5, atol=1e-5)


# --- columns: basis vectors through the direct conv, and the definition --------------------------
def _columns_check(case, rng):
    A, K, b, _ = case.arrays(rng)
    J_A, J_K, J_b = _build(case, A, K)
    s, p = case.stride, case.padding
    assert check_jacobian(J_A, lambda X: direct.conv2d(X, K, b, s, p), A, "basis") < 1e-12
    assert check_jacobian(J_K, lambda X: direct.conv2d(A, X, b, s, p), K, "basis") < 1e-12
    assert check_jacobian(J_b, lambda X: direct.conv2d(A, K, X, s, p), b, "basis") < 1e-12
    return A, K, b, J_A, J_K, J_b


@cases
def test_columns_are_basis_vectors_through_direct_conv(case, rng):
    _columns_check(case, rng)


@given(case=conv_cases(max_channels=2, max_kernel=3), seed=seeds)
def test_columns_are_basis_vectors_through_direct_conv_hypothesis(case, seed):
    _columns_check(case, np.random.default_rng(seed))


@cases
def test_jacobians_equal_the_definition_from_the_loop_oracle(case, rng):
    A, K, b, _ = case.arrays(rng)
    J_A, J_K, J_b = _build(case, A, K)
    s, p = case.stride, case.padding
    np.testing.assert_allclose(
        J_A.toarray(), jacobian_by_definition(lambda X: conv2d_naive(X, K, b, s, p), A),
        rtol=0, atol=1e-12,
    )
    np.testing.assert_allclose(
        J_K.toarray(), jacobian_by_definition(lambda X: conv2d_naive(A, X, b, s, p), K),
        rtol=0, atol=1e-12,
    )
    np.testing.assert_allclose(
        J_b.toarray(), jacobian_by_definition(lambda X: conv2d_naive(A, K, X, s, p), b),
        rtol=0, atol=1e-12,
    )


# --- transposes are the backward pass ----------------------------------------------------------
def _transpose_check(case, rng):
    A, K, _, dZ = case.arrays(rng)
    J_A, J_K, J_b = _build(case, A, K)
    s, p = case.stride, case.padding
    dA, dK, db = direct.conv2d_backward(dZ, A, K, stride=s, padding=p)
    eA, eK, eb = conv2d_backward_naive(dZ, A, K, s, p)
    g = vj.vec(dZ)
    for J, fast, slow in [(J_A, dA, eA), (J_K, dK, eK), (J_b, db, eb)]:
        column = J.T @ g
        np.testing.assert_allclose(column, vj.vec(fast), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(vj.unvec(column, J.wrt_shape), slow, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(J.gradient(dZ), slow, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g @ J, column, rtol=1e-12, atol=1e-12)  # row vector @ J


@cases
def test_transpose_times_vec_dZ_is_conv2d_backward(case, rng):
    _transpose_check(case, rng)


@given(case=conv_cases(), seed=seeds)
def test_transpose_times_vec_dZ_is_conv2d_backward_hypothesis(case, seed):
    _transpose_check(case, np.random.default_rng(seed))


# --- block form against the stacked form -------------------------------------------------------
def _single_channel_definition(case, image=None, kernel=None):
    """The note's one-channel block ``d vecZ_j / d vec(A_i or K_ji)`` from the loop oracle."""
    s, p = case.stride, case.padding
    if image is None:  # d vecZ_j / d vecA_i, depends on K_ji only
        f = lambda X: conv2d_naive(X[None], kernel[None, None], None, s, p)[0]  # noqa: E731
        return jacobian_by_definition(f, np.zeros((case.H, case.W)))
    f = lambda X: conv2d_naive(image[None], X[None, None], None, s, p)[0]  # noqa: E731
    return jacobian_by_definition(f, np.zeros((case.kh, case.kw)))


@cases
def test_block_form_equals_blocks_of_stacked_form(case, rng):
    A, K, _, _ = case.arrays(rng)
    J_A, J_K, _ = _build(case, A, K)
    s, p = case.stride, case.padding
    hw_z, hw_a, hw_k = case.hz * case.wz, case.H * case.W, case.kh * case.kw
    samples = [None] if case.N is None else range(case.N)
    for j in range(case.C_out):
        for i in range(case.C_in):
            block_A = conv_block_wrt_input(K[j, i], (case.H, case.W), s, p)
            assert block_A.shape == (hw_z, hw_a)
            expected_A = _single_channel_definition(case, kernel=K[j, i])
            np.testing.assert_allclose(block_A.toarray(), expected_A, rtol=0, atol=1e-12)
            for n in samples:
                image = A[i] if n is None else A[n, i]
                block_K = conv_block_wrt_kernel(image, (case.kh, case.kw), s, p)
                assert block_K.shape == (hw_z, hw_k)
                expected_K = _single_channel_definition(case, image=image)
                np.testing.assert_allclose(block_K.toarray(), expected_K, rtol=0, atol=1e-12)
                if n is None:
                    got_A, got_K = J_A.block(j, i), J_K.block(j, (j, i))
                    flat_A = J_A.block(j, i)  # an int index is the flat channel index
                    flat_K = J_K.block(j, j * case.C_in + i)
                else:
                    got_A, got_K = J_A.block((n, j), (n, i)), J_K.block((n, j), (j, i))
                    flat_A = J_A.block(n * case.C_out + j, n * case.C_in + i)
                    flat_K = J_K.block(n * case.C_out + j, j * case.C_in + i)
                np.testing.assert_array_equal(got_A.toarray(), block_A.toarray())
                np.testing.assert_array_equal(got_K.toarray(), block_K.toarray())
                np.testing.assert_array_equal(flat_A.toarray(), got_A.toarray())
                np.testing.assert_array_equal(flat_K.toarray(), got_K.toarray())


@cases
def test_kernel_blocks_of_other_kernels_are_zero(case, rng):
    """``d vecZ_j / d vecK_{j',i} = 0`` for ``j' != j``: Z_j does not see kernel j'."""
    A, K, _, _ = case.arrays(rng)
    _, J_K, _ = _build(case, A, K)
    samples = [None] if case.N is None else range(case.N)
    for n in samples:
        for j in range(case.C_out):
            for jj in range(case.C_out):
                for i in range(case.C_in):
                    row = j if n is None else (n, j)
                    block = J_K.block(row, (jj, i))
                    assert block.shape == (case.hz * case.wz, case.kh * case.kw)
                    if jj != j:
                        assert block.count_nonzero() == 0


@cases
def test_kernel_block_is_the_same_for_every_output_channel(case, rng):
    """The note: ``d vecZ_j / d vecK_{j,i}`` depends only on ``A_i``, not on ``j``."""
    A, K, _, _ = case.arrays(rng)
    _, J_K, _ = _build(case, A, K)
    samples = [None] if case.N is None else range(case.N)
    for n in samples:
        for i in range(case.C_in):
            first = J_K.block(0 if n is None else (n, 0), (0, i)).toarray()
            for j in range(1, case.C_out):
                row = j if n is None else (n, j)
                np.testing.assert_array_equal(J_K.block(row, (j, i)).toarray(), first)


@batch_cases
def test_batch_input_jacobian_is_block_diagonal_over_samples(case, rng):
    A, K, _, _ = case.arrays(rng)
    J_A, _, _ = _build(case, A, K)
    single = conv_wrt_input(K, case.input_shape[1:], case.stride, case.padding)
    rows, cols = single.shape
    dense = J_A.toarray()
    for n in range(case.N):
        for m in range(case.N):
            block = dense[n * rows:(n + 1) * rows, m * cols:(m + 1) * cols]
            if n == m:
                np.testing.assert_array_equal(block, single.toarray())
            else:
                assert not block.any()


@batch_cases
def test_batch_kernel_jacobian_stacks_the_samples_rows(case, rng):
    A, K, _, _ = case.arrays(rng)
    _, J_K, _ = _build(case, A, K)
    rows = case.C_out * case.hz * case.wz
    for n in range(case.N):
        single = conv_wrt_kernel(A[n], case.kernel_shape, case.stride, case.padding)
        np.testing.assert_array_equal(J_K.toarray()[n * rows:(n + 1) * rows], single.toarray())


def test_bias_jacobian_is_ones_per_channel():
    J = conv_wrt_bias((2, 3, 2, 2))  # N=2, C_out=3, 2x2 maps
    expected = np.zeros((24, 3))
    for n in range(2):
        for j in range(3):
            expected[n * 12 + j * 4:n * 12 + (j + 1) * 4, j] = 1.0
    np.testing.assert_array_equal(J.toarray(), expected)


# --- pattern caching ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", [CASES[3], CASES[14], BATCH_CASES[0]], ids=repr)
def test_second_build_reuses_the_cached_pattern(case, rng):
    """Builds with the same shapes take their structure from one cached pattern: the pattern
    object survives both builds, every Jacobian's ``indptr`` / ``indices`` are the pattern's
    arrays (shared read-only, or private writeable copies: either keeps the cache safe), and
    the values are the new ones while the first Jacobians keep theirs."""
    clear_pattern_cache()
    P = conv_pattern(case.input_shape, case.kernel_shape, case.stride, case.padding)
    A1, K1, b, _ = case.arrays(rng)
    A2, K2, _, _ = case.arrays(rng)
    s, p = case.stride, case.padding
    first_A = conv_wrt_input(K1, case.input_shape, s, p)
    first_K = conv_wrt_kernel(A1, case.kernel_shape, s, p)
    second_A = conv_wrt_input(K2, case.input_shape, s, p)
    second_K = conv_wrt_kernel(A2, case.kernel_shape, s, p)
    assert conv_pattern(case.input_shape, case.kernel_shape, s, p) is P
    for J, columns in [(first_A, P.a_index), (second_A, P.a_index),
                       (first_K, P.k_index), (second_K, P.k_index)]:
        for got, cached in [(J.matrix.indptr, P.indptr), (J.matrix.indices, columns)]:
            np.testing.assert_array_equal(got, cached)
            if np.shares_memory(got, cached):
                assert not got.flags.writeable
            else:
                assert got.flags.writeable
    # the values are the new ones
    assert check_jacobian(second_A, lambda X: direct.conv2d(X, K2, b, s, p), A2) < 1e-12
    assert check_jacobian(second_K, lambda X: direct.conv2d(A2, X, b, s, p), K2) < 1e-12
    # the first Jacobians were not overwritten by the second build
    assert check_jacobian(first_A, lambda X: direct.conv2d(X, K1, b, s, p), A1) < 1e-12
    assert check_jacobian(first_K, lambda X: direct.conv2d(A1, X, b, s, p), K1) < 1e-12


def test_pattern_is_cached_across_spellings_and_read_only():
    clear_pattern_cache()
    P1 = conv_pattern((2, 5, 5), (3, 2, 3, 3), stride=2, padding=1)
    P2 = conv_pattern([2, 5, 5], (3, 2, 3, 3), stride=(2, 2), padding=[1, 1])
    assert P1 is P2
    assert P1.input_shape == (2, 5, 5) and P1.output_shape == (3, 3, 3)
    for array in (P1.indptr, P1.a_index, P1.k_index):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1
    other = conv_pattern((2, 5, 5), (3, 2, 3, 3), stride=1, padding=1)
    assert other is not P1 and other.nnz != P1.nnz
    clear_pattern_cache()
    assert conv_pattern((2, 5, 5), (3, 2, 3, 3), stride=2, padding=1) is not P1


def test_cached_jacobian_can_be_modified_without_touching_the_cache(rng):
    """A user's in-place scipy operation on a built Jacobian must neither corrupt the cached
    pattern nor fail: a zero in ``A`` (ReLU, padding) makes ``eliminate_zeros`` natural."""
    clear_pattern_cache()
    A = rng.standard_normal((1, 4, 4))
    A[0, 1, 1] = 0.0
    J = conv_wrt_kernel(A, (2, 1, 2, 2))
    J.matrix.eliminate_zeros()
    again = conv_wrt_kernel(A, (2, 1, 2, 2))
    assert check_jacobian(again, lambda X: direct.conv2d(A, X), np.zeros((2, 1, 2, 2))) < 1e-12


# --- the Jacobian object -----------------------------------------------------------------------
def test_chain_rule_of_two_convolutions_against_the_definition(rng):
    """``dZ2/dZ1 @ dZ1/dA = dZ2/dA``, checked against the oracle's two-layer composition."""
    A = rng.standard_normal((2, 6, 5))
    K1, K2 = rng.standard_normal((3, 2, 3, 2)), rng.standard_normal((2, 3, 2, 2))
    Z1_shape = conv2d_naive(A, K1, None, 1, 1).shape
    J1 = conv_wrt_input(K1, A.shape, 1, 1, of="Z1", wrt="A")
    J2 = conv_wrt_input(K2, Z1_shape, (2, 1), 0, of="Z2", wrt="Z1")
    chained = J2 @ J1
    assert isinstance(chained, vj.Jacobian)
    assert (chained.of, chained.wrt) == ("Z2", "A")
    assert chained.name == "dZ2/dA"
    assert chained.of_shape == J2.of_shape and chained.wrt_shape == A.shape
    expected = jacobian_by_definition(
        lambda X: conv2d_naive(conv2d_naive(X, K1, None, 1, 1), K2, None, (2, 1), 0), A
    )
    np.testing.assert_allclose(chained.toarray(), expected, rtol=0, atol=1e-12)


def test_repr_and_density():
    J = conv_wrt_input(np.ones((3, 2, 3, 3)), (2, 5, 5), 1, 1, of="Z2", wrt="A1")
    assert re.fullmatch(
        r"Jacobian dZ2/dA1: 75 x 50, nnz \d+, density \d+\.\d%", repr(J)
    ), repr(J)
    assert f"nnz {J.nnz}," in repr(J)
    assert J.density == pytest.approx(J.nnz / (75 * 50))
    assert f"{100 * J.density:.1f}%" in repr(J)


def test_transpose_and_toarray(rng):
    K = rng.standard_normal((2, 1, 2, 2))
    J = conv_wrt_input(K, (1, 3, 4))
    assert isinstance(J.T, vj.Jacobian) and J.T.name == "(dZ/dA)^T"  # a Jacobian since wave 2
    assert sp.issparse(J.T.matrix)
    assert J.T.shape == (J.shape[1], J.shape[0])
    np.testing.assert_array_equal(J.T.toarray(), J.toarray().T)
    assert isinstance(J.toarray(), np.ndarray)


def test_gradient_of_a_scalar_function(rng):
    """The note's section 3.2: for a scalar ``L = <G, Z>``, ``dL/dA`` is a 1 x n row and its
    gradient ``(dL/dA)^T``, unvec-ed, is the backward pass."""
    A, K = rng.standard_normal((2, 4, 4)), rng.standard_normal((3, 2, 2, 2))
    J = conv_wrt_input(K, A.shape, 1, 0, of="Z", wrt="A")
    G = rng.standard_normal(J.of_shape)
    row = vj.Jacobian(vj.vec(G)[None, :], "L", "Z", (), J.of_shape)
    dL_dA = row @ J
    assert dL_dA.shape == (1, A.size) and dL_dA.name == "dL/dA"
    np.testing.assert_allclose(
        dL_dA.gradient(), conv2d_backward_naive(G, A, K, 1, 0)[0], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(vec_naive(dL_dA.gradient()), dL_dA.toarray()[0], rtol=0, atol=0)


def test_shared_patterns_switches_between_copies_and_the_cache(rng):
    """Default: each Jacobian owns its index arrays; inside ``shared_patterns()`` it uses the
    cache's read-only arrays (the network's gradient path), with the same values."""
    from vecjac.jacobians import conv_pattern, shared_patterns

    A, K = rng.standard_normal((2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    P = conv_pattern(A.shape, K.shape, 1, 1)
    own = conv_wrt_input(K, A.shape, 1, 1)
    with shared_patterns():
        shared = conv_wrt_input(K, A.shape, 1, 1)
    assert not np.shares_memory(own.matrix.indptr, P.indptr)
    assert np.shares_memory(shared.matrix.indptr, P.indptr)
    assert not shared.matrix.indices.flags.writeable
    assert (own.matrix != shared.matrix).nnz == 0
    own.matrix.eliminate_zeros()  # in place, allowed on an owned matrix
