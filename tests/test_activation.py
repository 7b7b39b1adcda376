"""Activations (the note's section 3.1.4, and softmax of 3.1.1) against loop oracles.

Element-wise kinds give diagonal Jacobians for any shape (conv feature maps and the FC layout
``(n, N)``); softmax gives one dense ``diag(s) - s s^T`` block per sample.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles_layers import (
    activate_naive,
    activation_derivative_naive,
    softmax_jacobian_naive,
)

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import activation
from vecjac.testing import check_jacobian

ELEMENTWISE = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity")
SHAPES = [(7,), (5, 3), (2, 4, 3), (2, 3, 4, 5)]
EXTREMES = np.array([-1000.0, -710.0, -40.0, -1.0, -1e-300, 0.0, 1e-300, 1.0, 40.0, 710.0, 1000.0])


def _away_from_zero(rng, shape):
    """Values with |z| in [0.2, 3]: every activation is smooth in a 0.1-neighbourhood."""
    return rng.uniform(0.2, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


@pytest.mark.parametrize("kind", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES)
def test_elementwise_direct_and_jacobian_match_oracle(kind, shape):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal(shape) * 3
    I = direct.activate(Z, kind)
    np.testing.assert_allclose(I, activate_naive(Z, kind), rtol=1e-14, atol=1e-15)
    d_ref = activation_derivative_naive(Z, kind)
    np.testing.assert_allclose(direct.activation_derivative(Z, kind), d_ref, rtol=1e-13, atol=1e-16)
    J = activation(Z, kind)
    assert (J.of_shape, J.wrt_shape, J.nnz) == (shape, shape, Z.size)
    diagonal = sp.diags_array(vj.vec(d_ref)).toarray()
    np.testing.assert_allclose(J.toarray(), diagonal, rtol=1e-13, atol=1e-16)
    dI = rng.standard_normal(shape)
    dZ = direct.activate_backward(dI, Z, kind)
    np.testing.assert_allclose(J.T @ vj.vec(dI), vj.vec(dZ), rtol=1e-13, atol=1e-16)
    J.matrix.check_format(full_check=True)


@pytest.mark.parametrize(
    "kind, shape",
    [(kind, shape) for kind in ELEMENTWISE for shape in [(4,), (3, 2), (2, 3, 3)]]
    + [("softmax", (4,)), ("softmax", (3, 2))],
)
def test_check_jacobian_differentiate(kind, shape):
    Z = _away_from_zero(np.random.default_rng(1), shape)
    J = activation(Z, kind)
    assert check_jacobian(J, lambda X: direct.activate(X, kind), Z, method="differentiate") < 1e-7


@pytest.mark.parametrize("shape", [(4,), (4, 1), (3, 5)])
def test_softmax_jacobian_is_block_diagonal_with_dense_blocks(shape):
    rng = np.random.default_rng(2)
    Z = rng.standard_normal(shape) * 2
    S = direct.activate(Z, "softmax")
    np.testing.assert_allclose(S.sum(axis=0), 1)
    J = activation(Z, "softmax", of="A3", wrt="Z3")
    np.testing.assert_allclose(J.toarray(), softmax_jacobian_naive(Z), atol=1e-15)
    n = shape[0]
    n_samples = 1 if len(shape) == 1 else shape[1]
    assert J.nnz == n_samples * n * n and J.name == "dA3/dZ3"
    columns = S.reshape(n, n_samples)
    for k in range(n_samples):  # block k is diag(s) - s s^T of sample k
        s = columns[:, k]
        block = J.matrix[k * n : (k + 1) * n][:, k * n : (k + 1) * n].toarray()
        np.testing.assert_allclose(block, np.diag(s) - np.outer(s, s), atol=1e-15)
    dI = rng.standard_normal(shape)
    dZ = direct.activate_backward(dI, Z, "softmax")
    np.testing.assert_allclose(J.T @ vj.vec(dI), vj.vec(dZ), atol=1e-14)


@settings(deadline=None, max_examples=40)
@given(
    kind=st.sampled_from(ELEMENTWISE + ("softmax",)),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 800.0]),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_and_scales_match_oracle(kind, shape, scale, seed):
    if kind == "softmax":
        shape = shape[:2]
    Z = np.random.default_rng(seed).standard_normal(shape) * scale
    J = activation(Z, kind)
    if kind == "softmax":
        np.testing.assert_allclose(J.toarray(), softmax_jacobian_naive(Z), atol=1e-15)
    else:
        expected = vj.vec(activation_derivative_naive(Z, kind))
        np.testing.assert_allclose(J.matrix.diagonal(), expected, rtol=1e-12, atol=1e-300)
    expected = activate_naive(Z, kind)
    np.testing.assert_allclose(direct.activate(Z, kind), expected, rtol=1e-13, atol=1e-300)


# --- extreme inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ELEMENTWISE)
def test_extreme_inputs_are_finite_without_warnings(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        I = direct.activate(EXTREMES, kind)
        d = direct.activation_derivative(EXTREMES, kind)
        J = activation(EXTREMES, kind)
        dZ = direct.activate_backward(np.ones_like(EXTREMES), EXTREMES, kind)
    for array in (I, d, J.matrix.data, dZ):
        assert np.all(np.isfinite(array))
    np.testing.assert_allclose(I, activate_naive(EXTREMES, kind), rtol=1e-14, atol=1e-300)
    expected = activation_derivative_naive(EXTREMES, kind)
    np.testing.assert_allclose(d, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(
    "Z", [[1000.0, -1000.0, 0.0], [1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -999.0]]
)
def test_softmax_extreme_inputs(Z):
    Z = np.array(Z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S = direct.activate(Z, "softmax")
        J = activation(np.stack([Z, -Z], axis=1), "softmax")
    assert np.all(np.isfinite(S)) and np.all(np.isfinite(J.matrix.data))
    np.testing.assert_allclose(S, activate_naive(Z, "softmax"), atol=1e-15)


def test_relu_derivative_at_exactly_zero_is_zero():
    Z = np.array([-0.0, 0.0, 1e-320, -1e-320])
    np.testing.assert_array_equal(direct.activation_derivative(Z, "relu"), [0, 0, 1, 0])
    np.testing.assert_array_equal(activation(Z, "relu").matrix.diagonal(), [0, 0, 1, 0])
    leaky = activation(Z, "leaky_relu", negative_slope=0.2).matrix.diagonal()
    np.testing.assert_allclose(leaky, [0.2, 0.2, 1, 0.2])
    np.testing.assert_array_equal(direct.activate(Z, "relu"), [0, 0, 1e-320, 0])


def test_conv_feature_maps_and_vec_order():
    """The diagonal follows vec(Z): channel-major, columns of each channel stacked."""
    Z = np.arange(24.0).reshape(2, 3, 4) - 11.5
    J = activation(Z, "relu")
    np.testing.assert_array_equal(J.matrix.diagonal(), vj.vec(Z > 0))
    assert J.block(1, 1).shape == (12, 12) and J.block(0, 1).nnz == 0


def test_input_is_not_modified_and_float32_is_kept():
    Z = np.linspace(-2, 2, 6, dtype=np.float32)
    before = Z.copy()
    for kind in ELEMENTWISE:
        J = activation(Z, kind)
        assert J.matrix.dtype == np.float32
        assert direct.activate(Z, kind).dtype == np.float32
    np.testing.assert_array_equal(Z, before)


# --- bad input ---------------------------------------------------------------------------------
def test_unknown_kind_lists_the_valid_ones():
    valid = "'sigmoid', 'tanh', 'relu', 'leaky_relu', 'softplus', 'identity', 'softmax'"
    for call in (
        lambda: direct.activate(np.ones(3), "gelu"),
        lambda: direct.activate_backward(np.ones(3), np.ones(3), "gelu"),
        lambda: activation(np.ones(3), "gelu"),
    ):
        with pytest.raises(ValueError, match=f"unknown kind 'gelu'; valid kinds are {valid}"):
            call()


def test_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="softmax needs the FC layout"):
        activation(np.ones((2, 3, 4)), "softmax")
    with pytest.raises(ValueError, match="dI has shape"):
        direct.activate_backward(np.ones(3), np.ones(4), "relu")
    with pytest.raises(ValueError, match="Z contains NaN"):
        activation(np.array([0.0, np.inf]), "sigmoid")
    with pytest.raises(TypeError, match="Z must be a real numeric array"):
        direct.activate(np.array([1j]), "tanh")
    with pytest.raises(ValueError, match="not element-wise"):
        direct.activation_derivative(np.ones(3), "softmax")
    with pytest.raises(vj.MemoryBudgetError, match="max_bytes="):
        activation(np.ones((10, 10)), "tanh", max_bytes=64)
    with pytest.raises(vj.MemoryBudgetError, match="softmax"):
        activation(np.ones((10, 10)), "softmax", max_bytes=64)


# --- the derivative from the forward's output (the gradient paths) -------------------------
@pytest.mark.parametrize("kind", ELEMENTWISE)
def test_derivative_from_the_output_is_exact_to_rounding_in_absolute_terms(kind):
    """``s (1 - s)`` and ``1 - t^2`` from the output: within a few ulps of 1 of the scalar
    oracle everywhere (the relative accuracy of the tails is what the ``cosh`` form adds);
    the kinds that do not use the output give exactly what they give without it."""
    rng = np.random.default_rng(1)
    Z = np.concatenate([rng.uniform(-40, 40, 500), EXTREMES])
    output = direct.activate(Z, kind)
    fast = direct.activation_derivative(Z, kind, output=output)
    expected = activation_derivative_naive(Z, kind)
    assert np.all(np.abs(fast - expected) <= 4 * np.finfo(float).eps)
    if kind not in ("sigmoid", "tanh"):
        np.testing.assert_array_equal(fast, direct.activation_derivative(Z, kind))
    moderate = np.abs(Z) < 2  # f' > 0.07: the cancellation costs no relative accuracy here
    np.testing.assert_allclose(fast[moderate], expected[moderate], rtol=1e-13)


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
@pytest.mark.parametrize("order", ["C", "vec"])
def test_backward_and_jacobian_take_the_output(kind, order):
    rng = np.random.default_rng(2)
    Z = rng.uniform(-6, 6, (3, 2, 4, 5))
    if order == "vec":  # every channel column-major, as a network keeps its maps
        Z = np.ascontiguousarray(Z.swapaxes(-1, -2)).swapaxes(-1, -2)
    I = direct.activate(Z, kind)
    dI = rng.standard_normal(Z.shape)
    np.testing.assert_allclose(direct.activate_backward(dI, Z, kind, output=I),
                               direct.activate_backward(dI, Z, kind), rtol=1e-12, atol=1e-15)
    J, J_out = activation(Z, kind), activation(Z, kind, output=I)
    np.testing.assert_allclose(J_out.toarray(), J.toarray(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.diag(J_out.toarray()),
                               vj.vec(activation_derivative_naive(Z, kind)),
                               rtol=1e-12, atol=1e-15)


def test_an_output_of_another_shape_is_refused():
    Z = np.zeros((2, 3))
    for call in (lambda: direct.activation_derivative(Z, "sigmoid", output=np.zeros(6)),
                 lambda: direct.activate_backward(Z, Z, "tanh", output=np.zeros((3, 2))),
                 lambda: activation(Z, "sigmoid", output=np.zeros((2, 2)))):
        with pytest.raises(ValueError, match="output must have Z's shape"):
            call()


def test_the_layer_keeps_its_output_for_sigmoid_and_tanh_only():
    Z = np.linspace(-3, 3, 24).reshape(1, 2, 3, 4)
    for kind in ELEMENTWISE:
        layer = vj.layers.Activation(kind).bind((2, 3, 4))
        I, context = layer.forward_with_context(Z, {})
        np.testing.assert_array_equal(I, direct.activate(Z, kind))
        assert (context is I) == (kind in ("sigmoid", "tanh"))
        assert context is None or kind in ("sigmoid", "tanh")


def test_softmax_takes_s_from_the_forward_output():
    """Softmax's backward pass and Jacobian read ``s`` from the forward's output (the layer
    keeps it as its context) instead of computing it again: the same values, since ``s`` is
    the same array; an output of another shape is refused."""
    rng = np.random.default_rng(3)
    Z = rng.uniform(-5, 5, (6, 4))
    layer = vj.layers.Activation("softmax").bind((6,))
    S, context = layer.forward_with_context(Z, {})
    assert context is S
    dI = rng.standard_normal(Z.shape)
    np.testing.assert_array_equal(direct.activate_backward(dI, Z, "softmax", output=S),
                                  direct.activate_backward(dI, Z, "softmax"))
    J, J_out = activation(Z, "softmax"), activation(Z, "softmax", output=S)
    same = J_out.matrix != J.matrix
    assert J_out.structure == J.structure and same.nnz == 0
    np.testing.assert_array_equal(dI.ravel(order="F") @ J_out, dI.ravel(order="F") @ J)
    # an oracle apart from the builder: the blocks diag(s) - s s^T of one sample each
    s = np.exp(Z) / np.exp(Z).sum(axis=0)
    blocks = [np.diag(s[:, n]) - np.outer(s[:, n], s[:, n]) for n in range(Z.shape[1])]
    np.testing.assert_allclose(J_out.toarray(), sp.block_diag(blocks).toarray(), rtol=1e-12,
                               atol=1e-15)
    for call in (lambda: direct.activate_backward(dI, Z, "softmax", output=S[:, :2]),
                 lambda: activation(Z, "softmax", output=S.T)):
        with pytest.raises(ValueError, match="output must have Z's shape"):
            call()
