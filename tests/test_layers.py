"""Each layer class against ``testing.check_jacobian`` (the direct forward pass as the oracle),
its backward pass against its own Jacobian's transpose, and its settings checked at once."""

from __future__ import annotations

import numpy as np
import pytest

from vecjac import vec
from vecjac.layers import Activation, Conv2d, Dense, Flatten, Pool2d
from vecjac.testing import check_jacobian

LINEAR = "basis"  # exact for maps linear in the variable
NONLINEAR = "differentiate"

# (layer, per-sample input shape, method for d out / d input)
CASES = [
    (Conv2d(3, 3, padding=1), (2, 5, 4), LINEAR),
    (Conv2d(2, (2, 3), stride=(2, 1), padding=(0, 1)), (3, 6, 5), LINEAR),
    (Conv2d(1, 1), (2, 3, 3), LINEAR),
    (Conv2d(2, 4, stride=3), (1, 4, 4), LINEAR),  # kernel equal to the input
    (Conv2d(2, 3, padding=1, padding_mode="circular"), (2, 4, 5), LINEAR),
    (Conv2d(2, (3, 2), stride=(2, 1), padding=(2, 1), padding_mode="circular"), (1, 5, 4),
     LINEAR),
    (Pool2d("avg", 2), (2, 4, 6), LINEAR),
    (Pool2d("avg", 3, stride=2, padding=1), (2, 5, 5), LINEAR),
    (Pool2d("max", 2, stride=1), (2, 4, 5), NONLINEAR),
    (Pool2d("max", (3, 2), padding=(1, 1)), (1, 5, 4), NONLINEAR),
    (Pool2d("l2", 2), (2, 4, 4), NONLINEAR),
    (Pool2d("l2", 2, stride=1, padding=1), (1, 3, 4), NONLINEAR),
    (Activation("sigmoid"), (2, 3, 3), NONLINEAR),
    (Activation("tanh"), (5,), NONLINEAR),
    (Activation("relu"), (2, 3, 3), NONLINEAR),
    (Activation("leaky_relu", negative_slope=0.2), (4,), NONLINEAR),
    (Activation("softplus"), (2, 2, 3), NONLINEAR),
    (Activation("identity"), (6,), LINEAR),
    (Activation("softmax"), (4,), NONLINEAR),
    (Flatten(), (3, 2, 4), LINEAR),
    (Dense(3), (7,), LINEAR),
]
IDS = [repr(case[0]) for case in CASES]


def setup(layer, shape, rng, N=2):
    layer = layer.bind(shape)
    p = {k: rng.standard_normal(v.shape) for k, v in layer.init_params(rng, np.float64).items()}
    # feature maps are (N, C, H, W); vectors are the note's features x samples (n, N)
    A = rng.standard_normal((N,) + shape if len(shape) == 3 else shape + (N,))
    return layer, p, A


@pytest.mark.parametrize("layer,shape,method", CASES, ids=IDS)
def test_jacobian_wrt_input(layer, shape, method, rng):
    layer, p, A = setup(layer, shape, rng)
    J = layer.jacobian(A, p, "out", "in")
    assert J.name == "dout/din" and J.wrt_shape == A.shape
    assert check_jacobian(J, lambda a: layer.forward(a, p), A, method) < 1e-7


@pytest.mark.parametrize("layer,shape,method", [c for c in CASES if c[0].params], ids=repr)
def test_jacobians_wrt_parameters(layer, shape, method, rng):
    layer, p, A = setup(layer, shape, rng)
    for symbol in layer.params:  # conv and dense are affine in each parameter

        def f(theta, symbol=symbol):
            return layer.forward(A, {**p, symbol: theta})

        J = layer.param_jacobian(symbol, A, p, "Z", symbol)
        assert J.wrt_shape == p[symbol].shape
        assert check_jacobian(J, f, p[symbol], LINEAR) < 1e-12


@pytest.mark.parametrize("layer,shape,method", CASES, ids=IDS)
def test_backward_is_the_jacobians_transpose(layer, shape, method, rng):
    layer, p, A = setup(layer, shape, rng)
    out = layer.forward(A, p)
    dOut = rng.standard_normal(out.shape)
    dA, grads = layer.backward(dOut, A, p)
    np.testing.assert_allclose(vec(dA), layer.jacobian(A, p, "o", "i").matrix.T @ vec(dOut),
                               rtol=1e-12, atol=1e-12)
    for symbol in layer.params:
        J = layer.param_jacobian(symbol, A, p, "o", symbol)
        np.testing.assert_allclose(vec(grads[symbol]), J.matrix.T @ vec(dOut), rtol=1e-12,
                                   atol=1e-12)
    if layer.params:
        assert layer.backward(dOut, A, p, input_grad=False)[0] is None


@pytest.mark.parametrize("make,message", [
    (lambda: Conv2d(0), "out_channels must be a positive int"),
    (lambda: Conv2d(2, 0), "kernel_size"),
    (lambda: Conv2d(2, 3, stride=0), "stride"),
    (lambda: Conv2d(2, 3, padding=-1), "padding"),
    (lambda: Conv2d(2, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: Pool2d("mean"), "unknown pool 'mean'"),
    (lambda: Pool2d("max", 2, padding=2), "larger than half the pool size"),
    (lambda: Pool2d("max", ties="last"), "unknown ties 'last'"),
    (lambda: Activation("swish"), "unknown activation 'swish'"),
    (lambda: Activation("leaky_relu", negative_slope=float("nan")), "negative_slope"),
    (lambda: Dense(0), "out_features must be a positive int"),
    (lambda: Dense(2.5), "out_features must be a positive int"),
])
def test_settings_are_checked_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_settings_are_kept_normalised():
    conv = Conv2d(4, 3, stride=(2, 1), padding=1)
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (2, 1), (1, 1))
    pool = Pool2d("avg", (2, 3))
    assert pool.stride == (2, 3) and pool.padding == (0, 0)
    bound = conv.bind((2, 8, 8))
    assert bound.output_shape == (4, 4, 8) and conv.output_shape is None  # bind copies


def test_circular_padding_is_checked_against_the_input():
    with pytest.raises(ValueError, match="padding .* is larger than the input"):
        Conv2d(2, 3, padding=4, padding_mode="circular").bind((1, 3, 3))
    with pytest.raises(ValueError, match="kernel_size .* larger than the input"):
        Conv2d(2, 4, padding=1, padding_mode="circular").bind((1, 3, 3))
    assert "padding_mode='circular'" in repr(Conv2d(2, padding_mode="circular"))


def test_base_class_is_abstract_and_parameter_free_layers_say_so(rng):
    from vecjac.layers import Layer

    with pytest.raises(TypeError, match="abstract"):
        Layer()
    act = Activation("tanh").bind((3,))
    with pytest.raises(ValueError, match=r"Activation\('tanh'\) has no parameter 'W'"):
        act.param_jacobian("W", rng.standard_normal((3, 2)), {}, "I", "W")
