"""The note's CNN end to end: three gradient paths, finite differences, chain orders, slides."""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac.testing import central_differences, reference_jacobian

# (activation, pool, stride, padding, output, loss, n_out); a list is (layer 1, layer 2)
CONFIGS = [
    ("sigmoid", "avg", 1, 1, "softmax", "cross_entropy", 4),
    ("tanh", "max", 1, 0, "softmax", "cross_entropy", 3),
    ("softplus", "l2", [1, 2], 1, "sigmoid", "binary_cross_entropy", 1),
    ("relu", "avg", [2, 1], 1, "identity", "squared_error", 2),
    ("leaky_relu", None, 1, [0, 1], "sigmoid", "squared_error", 2),
    ("sigmoid", "max", [(2, 1), 1], 1, "identity", "squared_error", 3),
]


def make_net(activation, pool, stride, padding, output, loss, n_out, reduction="sum", seed=0):
    return vj.CNN(input_shape=(2, 11, 10), channels=(2, 3), kernel_size=3, stride=stride,
                  padding=padding, activation=activation, pool=pool, pool_size=2, n_out=n_out,
                  output=output, loss=loss, reduction=reduction, seed=seed)


def batch(net, rng, N=3):
    X = rng.standard_normal((N,) + net.input_shape)
    y = rng.integers(0, max(net.n_out, 2), N)
    # biases start at zero: make them non-zero so their gradients are tested for real
    for name in net.params:
        if name.startswith("b"):
            net.params[name] = rng.standard_normal(net.params[name].shape) * 0.1
    return X, y


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("config", CONFIGS, ids=[f"{c[0]}-{c[1]}-{c[5]}" for c in CONFIGS])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_three_gradient_methods_agree(config, reduction, rng):
    net = make_net(*config, reduction=reduction)
    X, y = batch(net, rng)
    direct = net.gradients(X, y, method="direct")
    for method in ("jacobian", "paper"):
        got = net.gradients(X, y, method=method)
        assert set(got) == set(net.params)
        for name in net.params:
            assert got[name].shape == net.params[name].shape
            assert rel_err(got[name], direct[name]) < 1e-10, (method, name)


@pytest.mark.parametrize("config", [c for c in CONFIGS if c[0] not in ("relu", "leaky_relu")],
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_gradients_match_central_differences(config, rng):
    net = make_net(*config)
    X, y = batch(net, rng, N=2)
    grads = net.gradients(X, y, method="jacobian")
    numeric = central_differences(lambda: net.loss(X, y), net.params)
    for name in net.params:
        assert np.allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7), name


def test_named_jacobians_of_the_chain(rng):
    net = make_net(*CONFIGS[0])
    X, y = batch(net, rng)
    J = net.jacobians(X, y)
    expected = ["dJ/dA3", "dA3/dZ3", "dZ3/dW3", "dZ3/db3", "dZ3/dB2", "dB2/dA2", "dA2/dI2",
                "dI2/dZ2", "dZ2/dK2", "dZ2/db2", "dZ2/dA1", "dA1/dI1", "dI1/dZ1", "dZ1/dK1",
                "dZ1/db1", "dZ1/dX"]
    assert sorted(J) == sorted(expected)
    for name, jacobian in J.items():
        assert jacobian.name == name
    assert J["dJ/dA3"].shape == (1, net.n_out * 3)


@pytest.mark.parametrize("of,wrt", [("A3", "X"), ("A3", "K1"), ("Z2", "K1"), ("Z2", "X"),
                                    ("A3", "W3"), ("J", "A1"), ("B2", "b1")])
def test_reverse_and_forward_orders_agree(of, wrt, rng):
    net = make_net(*CONFIGS[0])
    X, y = batch(net, rng)
    reverse, steps = net.jacobian(X, of=of, wrt=wrt, y=y, order="reverse", report=True)
    forward = net.jacobian(X, of=of, wrt=wrt, y=y, order="forward")
    assert reverse.name == forward.name == f"d{of}/d{wrt}"
    assert np.allclose(reverse.toarray(), forward.toarray(), rtol=1e-12, atol=1e-14)
    assert all(step["nnz"] >= 0 for step in steps) and steps[-1]["product"] == reverse.name


@pytest.mark.parametrize("config", CONFIGS[:4], ids=lambda c: f"{c[0]}-{c[1]}")
def test_dA3_dX_equals_brute_force_from_direct_forward(config, rng):
    net = make_net(*config)
    X, _ = batch(net, rng, N=2)
    J = net.jacobian(X, of="A3", wrt="X")
    # A3 in the note's layout is (n_out, N): the transpose of what forward() returns.
    reference = reference_jacobian(lambda x: net.forward(x).T, X, method="differentiate")
    assert np.allclose(J.toarray(), reference, rtol=1e-6, atol=1e-8)


def test_jacobian_of_param_matches_gradient(rng):
    net = make_net(*CONFIGS[0])
    X, y = batch(net, rng)
    dJ_dK1 = net.jacobian(X, of="J", wrt="K1", y=y)
    assert np.allclose(dJ_dK1.gradient(), net.gradients(X, y, method="direct")["K1"])


def test_training_jacobian_and_direct_give_the_same_parameters(rng):
    X = rng.standard_normal((40, 1, 8, 8))
    y = rng.integers(0, 3, 40)
    nets = {m: vj.CNN(input_shape=(1, 8, 8), channels=(2, 3), n_out=3, seed=1)
            for m in ("jacobian", "direct")}
    for method, net in nets.items():
        vj.train(net, X, y, epochs=50, batch_size=8, lr=0.05, method=method, progress=False,
                 max_steps=50)
    for name in nets["direct"].params:
        np.testing.assert_allclose(nets["jacobian"].params[name], nets["direct"].params[name],
                                   rtol=1e-9, atol=1e-12)


def test_training_on_the_digits_learns():
    data = vj.data.load_digits()
    net = vj.CNN(input_shape=(1, 8, 8), channels=(4, 8), activation="tanh", n_out=10, seed=0)
    history = vj.train(net, data.X_train, data.y_train, data.X_test, data.y_test, epochs=4,
                       batch_size=32, lr=0.05, progress=False)
    assert history["test_accuracy"][-1] >= 0.85
    assert history["loss"][-1] < history["loss"][0]


class TestSlidesNetwork:
    """Seed 001's network: X [100x22x22] -> conv 3x3 -> sigmoid -> FC to 1 -> sigmoid -> E.

    Shapes are the slides' (features x samples for the FC part, as the slides write H1)."""

    @pytest.fixture
    def slides(self, rng):
        def build(filters):
            net = vj.CNN(input_shape=(1, 22, 22), channels=(filters,), kernel_size=3,
                         padding=0, activation="sigmoid", pool=None, n_out=1,
                         output="sigmoid", loss="squared_error", seed=0)
            X = rng.standard_normal((100, 1, 22, 22))
            y = rng.integers(0, 2, 100).astype(float)
            return net, X, y
        return build

    def test_one_filter_shapes(self, slides):
        net, X, y = slides(1)
        cache = net._forward(X)
        assert cache["X"].shape == (100, 1, 22, 22)  # X = [100 x 22 x 22]
        assert cache["Z1"].shape == (100, 1, 20, 20)  # Z1 = [100 x 20 x 20]
        assert cache["B1"].shape == (400, 100)  # H1 = [400 x 100], flattened, slides' layout
        assert net.params["W2"].T.shape == (1, 400)  # W^T = [1 x 400]
        assert cache["A2"].shape == (1, 100)  # O = [1 x 100]
        grads = net.gradients(X, y, method="jacobian")
        assert grads["W2"].shape == (400, 1)  # dE/dW = (400 x 1)
        assert grads["K1"][0, 0].shape == (3, 3)  # dE/df = (3 x 3)
        direct = net.gradients(X, y, method="direct")
        for name in grads:
            assert rel_err(grads[name], direct[name]) < 1e-10

    def test_slides_formula_dE_dW(self, slides):
        """dE/dW = dZ2/dW x [dE/dO * dO/dZ2]^T = H1 (O - Y) O (1 - O)^T: (400x100)(100x1)."""
        net, X, y = slides(1)
        cache = net._forward(X)
        O, H1 = cache["A2"], cache["B1"]
        delta = (O - y[None, :]) * O * (1 - O)  # (1 x 100)
        assert np.allclose(net.gradients(X, y)["W2"], H1 @ delta.T)
        assert np.allclose(net.gradients(X, y)["b2"], delta.sum(axis=1))

    def test_multi_filter_shapes(self, slides):
        """The multi-filter slides write f = [5 x 3 x 3] but also H1 = [100 x 20 x 20 x 3],
        H1 = [1200 x 100] and W^T = [1 x 1200] (one slide says [1200 x 1]).  1200 = 20*20*3,
        so the consistent reading has 3 filters: the '5' is the slide's error (5 filters would
        give H1 = [2000 x 100]).  The FC slide's 'dE/dW = [1200 x 100]' is the product before
        the sum over samples; the gradient itself is 1200 x 1."""
        net, X, y = slides(3)
        cache = net._forward(X)
        assert cache["I1"].shape == (100, 3, 20, 20)  # H1 = [100 x 20 x 20 x 3]
        assert cache["B1"].shape == (1200, 100)  # H1 = [1200 x 100]
        assert net.params["W2"].T.shape == (1, 1200)  # W^T = [1 x 1200]
        grads = net.gradients(X, y, method="paper")
        assert grads["W2"].shape == (1200, 1)
        assert grads["K1"].shape == (3, 1, 3, 3)


class TestBadInput:
    @pytest.fixture
    def net(self):
        return vj.CNN(input_shape=(1, 8, 8), channels=(2, 3), n_out=4)

    def test_wrong_channels_or_size(self, net, rng):
        with pytest.raises(ValueError, match=r"X must have shape \(N, 1, 8, 8\)"):
            net.forward(rng.standard_normal((2, 3, 8, 8)))
        with pytest.raises(ValueError, match=r"X must have shape"):
            net.forward(rng.standard_normal((2, 1, 9, 8)))
        with pytest.raises(ValueError, match="X must have 4 dimensions"):
            net.forward(rng.standard_normal((1, 8, 8)))

    def test_labels_out_of_range(self, net, rng):
        X = rng.standard_normal((2, 1, 8, 8))
        with pytest.raises(ValueError, match=r"labels y must lie in \[0, 3\]"):
            net.loss(X, np.array([0, 4]))
        with pytest.raises(ValueError, match="one label per sample"):
            net.gradients(X, np.array([0, 1, 2]))

    def test_of_wrt_not_on_the_chain(self, net, rng):
        X = rng.standard_normal((2, 1, 8, 8))
        with pytest.raises(ValueError, match=r"of must be one of \['J', 'A3'"):
            net.jacobian(X, of="Q", wrt="X")
        with pytest.raises(ValueError, match=r"wrt must be on the chain below 'Z1'.*'K1'"):
            net.jacobian(X, of="Z1", wrt="K2")
        with pytest.raises(ValueError, match="order must be"):
            net.jacobian(X, of="A3", wrt="X", order="sideways")

    @pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None, True])
    def test_learning_rate(self, net, rng, lr):
        X, y = rng.standard_normal((2, 1, 8, 8)), np.array([0, 1])
        with pytest.raises(ValueError, match="lr .* positive finite number"):
            vj.train(net, X, y, lr=lr, progress=False)

    def test_unknown_settings(self):
        with pytest.raises(ValueError, match="output must be one of"):
            vj.CNN(output="tanh")
        with pytest.raises(ValueError, match="loss must be one of"):
            vj.CNN(loss="hinge")
        with pytest.raises(ValueError, match="kernel size .* larger than the padded input"):
            vj.CNN(input_shape=(1, 4, 4), kernel_size=7, padding=0)

    @pytest.mark.parametrize("settings,message", [
        (dict(pool="mean"), "unknown pool 'mean'; valid pools are 'avg', 'max', 'l2'"),
        (dict(activation="softmax"), "unknown activation 'softmax'"),
        (dict(pool="max", pool_padding=2), "padding .* larger than half the pool size"),
        (dict(pool_size=9), "pool size .* larger than the padded input"),
    ])
    def test_layer_settings_are_checked_at_construction(self, settings, message):
        with pytest.raises(ValueError, match=message):
            vj.CNN(input_shape=(1, 8, 8), **settings)


def test_loss_and_gradients_share_one_forward_pass(rng):
    net = make_net(*CONFIGS[0])
    X, y = batch(net, rng)
    J, grads = net.loss_and_gradients(X, y, method="direct")
    assert J == net.loss(X, y)
    for name, g in net.gradients(X, y, method="direct").items():
        np.testing.assert_array_equal(grads[name], g)
    with pytest.raises(ValueError, match="method must be 'jacobian', 'paper' or 'direct'"):
        net.loss_and_gradients(X, y, method="autograd")
