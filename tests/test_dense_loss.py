"""The FC layer (section 3.1.1), flatten (3.1.2) and the losses, against loop oracles.

FC layout: features x samples, one sample ``(n,)``, a batch ``(n, N)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles_layers import dense_naive, loss_naive, one_hot_naive, softmax_naive

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import (
    activation,
    dense_wrt_bias,
    dense_wrt_input,
    dense_wrt_weight,
    flatten,
    loss,
    loss_from_logits,
)
from vecjac.testing import check_jacobian

LOSSES = ("squared_error", "binary_cross_entropy", "cross_entropy")


def _fc(rng, n_in=5, n_out=3, n_samples=None):
    B = rng.standard_normal((n_in,) if n_samples is None else (n_in, n_samples))
    return B, rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)


# --- the fully-connected layer -----------------------------------------------------------------
@pytest.mark.parametrize("n_samples", [None, 1, 4])
def test_dense_matches_oracle_and_jacobians_pass_the_basis_check(n_samples):
    B, W, b = _fc(np.random.default_rng(0), n_samples=n_samples)
    N = n_samples
    Z = direct.dense(B, W, b)
    np.testing.assert_allclose(Z, dense_naive(B, W, b), atol=1e-14)
    J_B, J_W, J_b = dense_wrt_input(W, N), dense_wrt_weight(B, 3), dense_wrt_bias(3, N)
    assert check_jacobian(J_B, lambda X: direct.dense(X, W, b), B) < 1e-12
    assert check_jacobian(J_W, lambda X: direct.dense(B, X, b), W) < 1e-12
    assert check_jacobian(J_b, lambda X: direct.dense(B, W, X), b) < 1e-12
    assert (J_B.of, J_B.wrt, J_W.wrt, J_b.wrt) == ("Z3", "B2", "W3", "b3")
    assert J_B.of_shape == J_W.of_shape == J_b.of_shape == Z.shape


@pytest.mark.parametrize("n_samples", [None, 3])
def test_transposed_jacobians_are_dense_backward(n_samples):
    rng = np.random.default_rng(1)
    B, W, _ = _fc(rng, n_samples=n_samples)
    dZ = rng.standard_normal((3,) if n_samples is None else (3, n_samples))
    dB, dW, db = direct.dense_backward(dZ, B, W)
    np.testing.assert_allclose(dense_wrt_input(W, n_samples).gradient(dZ), dB, atol=1e-14)
    np.testing.assert_allclose(dense_wrt_weight(B, 3).gradient(dZ), dW, atol=1e-14)
    np.testing.assert_allclose(dense_wrt_bias(3, n_samples).gradient(dZ), db, atol=1e-14)
    columns = dZ.reshape(3, -1)  # the note: dJ/dW3 = (dJ/dZ3)^T B2^T, summed over samples
    np.testing.assert_allclose(dW, B.reshape(5, -1) @ columns.T, atol=1e-14)
    np.testing.assert_allclose(db, columns.sum(axis=1), atol=1e-14)


def test_dense_jacobians_are_the_notes_kronecker_products():
    rng = np.random.default_rng(2)
    B, W, _ = _fc(rng, n_samples=4)
    eye = sp.eye_array(3)
    single = dense_wrt_weight(B[:, 0], 3).toarray()
    np.testing.assert_array_equal(single, sp.kron(eye, B[None, :, 0]).toarray())  # I (x) B^T
    stacked = np.vstack([sp.kron(eye, B[None, :, n]).toarray() for n in range(4)])
    np.testing.assert_array_equal(dense_wrt_weight(B, 3).toarray(), stacked)
    np.testing.assert_array_equal(dense_wrt_input(W).toarray(), W.T)
    block_diagonal = sp.kron(sp.eye_array(4), W.T).toarray()  # I_N (x) W3^T
    np.testing.assert_array_equal(dense_wrt_input(W, 4).toarray(), block_diagonal)
    np.testing.assert_array_equal(dense_wrt_bias(3).toarray(), np.eye(3))
    np.testing.assert_array_equal(dense_wrt_bias(3, 4).toarray(), np.tile(np.eye(3), (4, 1)))


@settings(deadline=None, max_examples=30)
@given(
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 4),
    n_samples=st.sampled_from([None, 1, 2, 5]),
    seed=st.integers(0, 2**16),
)
def test_dense_random_sizes(n_in, n_out, n_samples, seed):
    rng = np.random.default_rng(seed)
    B, W, b = _fc(rng, n_in, n_out, n_samples)
    Z = direct.dense(B, W, b)
    np.testing.assert_allclose(Z, dense_naive(B, W, b), atol=1e-13)
    # Z3 is linear in B2 and in W3, and affine in b3: each Jacobian reproduces it
    J_B, J_b = dense_wrt_input(W, n_samples), dense_wrt_bias(n_out, n_samples)
    np.testing.assert_allclose(J_B @ vj.vec(B) + J_b @ b, vj.vec(Z), atol=1e-13)
    J_W = dense_wrt_weight(B, n_out)
    np.testing.assert_allclose(J_W @ vj.vec(W), vj.vec(direct.dense(B, W)), atol=1e-13)
    for J in (J_B, J_W, J_b):
        J.matrix.check_format(full_check=True)


# --- flatten ------------------------------------------------------------------------------------
def _flatten_c(A):
    """B2 with columns A[n].ravel() (C order), or the vector A.ravel() for one sample."""
    return A.ravel() if A.ndim == 3 else A.reshape(A.shape[0], -1).T


@pytest.mark.parametrize("shape", [(3, 2, 4), (2, 3, 2, 4), (1, 1, 1)])
def test_flatten_is_the_identity_in_the_notes_order_and_a_permutation_in_c_order(shape):
    A = np.random.default_rng(3).standard_normal(shape)
    J = flatten(shape)
    np.testing.assert_array_equal(J.toarray(), np.eye(A.size))
    B2 = vj.unvec(J @ vj.vec(A), J.of_shape)  # B2 = [vec A_1; ...; vec A_c] per sample
    per_sample = [vj.vec(A)] if A.ndim == 3 else [vj.vec(a) for a in A]
    np.testing.assert_array_equal(B2.reshape(-1, len(per_sample)).T, per_sample)
    J_C = flatten(shape, order="C")
    assert J_C.of_shape == _flatten_c(A).shape
    assert check_jacobian(J_C, _flatten_c, A) < 1e-15
    assert check_jacobian(J, lambda X: vj.unvec(vj.vec(X), J.of_shape), A) < 1e-15
    np.testing.assert_array_equal(J_C.matrix.sum(axis=0), 1)  # a permutation


# --- losses -------------------------------------------------------------------------------------
def _probabilities(rng, n_out, n_samples, kind):
    shape = (n_out,) if n_samples is None else (n_out, n_samples)
    if kind == "cross_entropy" and n_out > 1:
        return softmax_naive(rng.standard_normal(shape))
    return rng.uniform(0.05, 0.95, size=shape)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("n_out, n_samples", [(4, None), (4, 5), (1, 3), (1, None)])
def test_loss_and_its_row_against_oracle_and_differentiate(kind, reduction, n_out, n_samples):
    rng = np.random.default_rng(4)
    A3 = _probabilities(rng, n_out, n_samples, kind)
    labels = rng.integers(0, max(n_out, 2), size=() if n_samples is None else (n_samples,))
    Y = labels.reshape(A3.shape).astype(float) if n_out == 1 else one_hot_naive(labels, n_out)
    Y = Y.reshape(A3.shape)
    for y in (labels, Y):  # class indices, and targets of A3's shape
        J, row = loss(A3, y, kind, reduction)
        assert J == pytest.approx(loss_naive(A3, Y, kind, reduction), rel=1e-13)
        assert (row.shape, row.of_shape, row.wrt_shape) == ((1, A3.size), (), A3.shape)
        assert row.name == "dJ/dA3"
        f = lambda X, y=y: direct.loss(X, y, kind, reduction)  # noqa: E731
        assert check_jacobian(row, f, A3, method="differentiate") < 1e-7
        np.testing.assert_allclose(row.gradient(), direct.loss_backward(A3, y, kind, reduction))


@pytest.mark.parametrize(
    "kind, output", [("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid")]
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("n_samples", [None, 4])
@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_fused_from_logits_equals_the_unfused_chain(kind, output, reduction, n_samples, targets):
    rng = np.random.default_rng(5)
    Z3 = rng.standard_normal((3,) if n_samples is None else (3, n_samples)) * 2
    y = rng.integers(0, 3, size=() if n_samples is None else (n_samples,))
    if kind == "binary_cross_entropy" and targets == "labels":
        y = rng.integers(0, 2, size=Z3.shape)  # 0/1 targets, one per output
    elif targets == "soft":
        y = rng.uniform(size=Z3.shape)  # soft targets; for CE their sum is not 1
    A3 = direct.activate(Z3, output)
    J_fused, row_fused = loss_from_logits(Z3, y, kind, reduction)
    J, row = loss(A3, y, kind, reduction)
    chain = row @ activation(Z3, output, of="A3", wrt="Z3")  # dJ/dA3 dA3/dZ3
    assert chain.name == row_fused.name == "dJ/dZ3"
    assert J_fused == pytest.approx(J, rel=1e-12)
    np.testing.assert_allclose(row_fused.toarray(), chain.toarray(), rtol=1e-10, atol=1e-13)
    f = lambda X: direct.loss_from_logits(X, y, kind, reduction)[0]  # noqa: E731
    assert check_jacobian(row_fused, f, Z3, method="differentiate") < 1e-7


def test_squared_error_is_the_slides_E():
    O, y = np.array([[0.2, 0.9]]), np.array([1, 0])  # n_out = 1, two samples, 0/1 labels
    assert direct.loss(O, y) == pytest.approx(((1 - 0.2) ** 2 + 0.9**2) / 2)
    np.testing.assert_allclose(direct.loss_backward(O, y), O - [[1, 0]])
    assert direct.loss(O, y, reduction="mean") == pytest.approx(direct.loss(O, y) / 2)


def test_losses_are_finite_without_warnings_at_the_extremes():
    Z3 = np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in ("cross_entropy", "binary_cross_entropy"):
            J, row = loss_from_logits(Z3, np.array([1, 1]), kind)
            assert np.isfinite(J) and np.all(np.isfinite(row.matrix.data))
        A3 = np.array([[0.0, 1.0], [1.0, 0.0]])  # saturated probabilities: logs clamped
        for kind in LOSSES:
            J, row = loss(A3, np.array([0, 0]), kind)
            assert np.isfinite(J) and np.all(np.isfinite(row.matrix.data))
    J, _ = loss_from_logits(Z3, np.array([1, 1]), "cross_entropy")
    assert J == pytest.approx(2000.0, rel=1e-15)  # -log_softmax: 1000 + 1000, then 0


# --- bad input ------------------------------------------------------------------------------------
def test_bad_fc_input():
    B, W, b = _fc(np.random.default_rng(6), n_samples=2)
    with pytest.raises(ValueError, match="B has 4 features"):
        direct.dense(B[:4], W)
    with pytest.raises(ValueError, match="b has shape"):
        direct.dense(B, W, b[:2])
    with pytest.raises(ValueError, match="dZ has shape"):
        direct.dense_backward(np.ones((2, 2)), B, W)
    with pytest.raises(ValueError, match="W must have 2 dimensions"):
        dense_wrt_input(np.ones(3))
    with pytest.raises(ValueError, match="n_out must be >= 1"):
        dense_wrt_weight(B, 0)
    with pytest.raises(TypeError, match="n_samples must be an int"):
        dense_wrt_bias(3, 2.0)
    with pytest.raises(ValueError, match="A_shape must be"):
        flatten((3, 4))
    with pytest.raises(ValueError, match="order must be"):
        flatten((1, 2, 2), order="K")
    for build in (  # flat builds count the flat matrix
        lambda: dense_wrt_input(W, 1000, max_bytes=1000, structured=False),
        lambda: dense_wrt_weight(np.ones((5, 1000)), 3, max_bytes=1000, structured=False),
        lambda: dense_wrt_bias(3, 1000, max_bytes=1000, structured=False),
        lambda: flatten((1000, 1, 2, 2), max_bytes=1000, structured=False),
    ):
        with pytest.raises(vj.MemoryBudgetError, match="max_bytes="):
            build()


def test_bad_loss_input():
    A3 = np.full((3, 2), 1 / 3)
    with pytest.raises(ValueError, match="unknown kind 'hinge'; valid kinds are 'squared_error', "
                       "'binary_cross_entropy', 'cross_entropy'"):
        loss(A3, [0, 1], "hinge")
    with pytest.raises(ValueError, match="valid kinds are 'cross_entropy', 'binary_cross_entropy'"):
        loss_from_logits(A3, [0, 1], "squared_error")
    with pytest.raises(ValueError, match="unknown reduction 'max'; valid reductions are 'sum'"):
        direct.loss(A3, [0, 1], reduction="max")
    with pytest.raises(ValueError, match=r"y holds labels outside \[0, 2\]"):
        direct.loss(A3, [0, 3])
    with pytest.raises(ValueError, match=r"y holds labels outside \[0, 2\]"):
        direct.loss_backward(A3, [-1, 0])
    with pytest.raises(ValueError, match=r"y holds labels outside \[0, 1\]"):
        direct.loss(np.full((1, 2), 0.5), [0, 2], "binary_cross_entropy")
    with pytest.raises(ValueError, match=r"y has shape \(3,\): class indices .* shape \(2,\)"):
        direct.loss(A3, [0, 1, 2])
    with pytest.raises(ValueError, match=r"y has shape \(2, 3\) but A3 has shape \(3, 2\)"):
        direct.loss(A3, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="A3 must hold probabilities"):
        direct.loss(A3 * 4, [0, 1], "cross_entropy")
    with pytest.raises(ValueError, match="A3 must have 1 or 2 dimensions"):
        direct.loss(np.ones((1, 2, 2)), 0)


def test_block_of_the_fc_layout_is_one_sample(rng):
    """A matrix side (n, N) splits into its columns: block (n, n) of dZ3/dB2 is W3^T and the
    off-diagonal blocks are empty (samples are independent)."""
    W = rng.standard_normal((6, 4))
    J = vj.jacobians.dense_wrt_input(W, n_samples=3)
    for n in range(3):
        np.testing.assert_array_equal(J.block(n, n).toarray(), W.T)
    assert J.block(0, 2).nnz == 0
    with pytest.raises(IndexError, match="out of range for 3 blocks"):
        J.block(3, 0)
