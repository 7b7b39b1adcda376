"""Sequential: any CNN of the note's shape, its names, three gradients and end-to-end Jacobians.

Oracles: the three gradient methods against each other, central differences of the direct
loss, and ``scipy.differentiate`` applied to the direct forward pass (``reference_jacobian``).
"""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac.layers import Activation, Conv2d, Dense, Flatten, Pool2d
from vecjac.testing import central_differences, reference_jacobian

# (id, input shape, layers, loss, expected chain below J); 1 to 4 conv blocks, 1 to 3 dense
NETS = [
    ("1conv-1dense-logits", (2, 7, 6),
     lambda: [Conv2d(3, 3, padding=1), Activation("tanh"), Pool2d("avg", 2), Flatten(),
              Dense(3)],
     "cross_entropy", ["Z2", "B1", "A1", "I1", "Z1"]),
    ("2conv-2dense-max", (1, 9, 9),
     lambda: [Conv2d(2, 3, stride=2, padding=1), Activation("relu"), Pool2d("max", 2, stride=1),
              Conv2d(3, (2, 3)), Activation("sigmoid"), Flatten(), Dense(5), Activation("tanh"),
              Dense(3), Activation("softmax")],
     "cross_entropy", ["A4", "Z4", "A3", "Z3", "B2", "A2", "Z2", "A1", "I1", "Z1"]),
    ("3conv-l2-bce", (1, 12, 12),
     lambda: [Conv2d(2, 3, padding=1), Activation("softplus"), Pool2d("l2", 2),
              Conv2d(2, 3, padding=1), Activation("leaky_relu", 0.1),
              Conv2d(3, 2, stride=(2, 1)), Activation("tanh"), Pool2d("avg", 2, padding=1),
              Flatten(), Dense(1), Activation("sigmoid")],
     "binary_cross_entropy",
     ["A4", "Z4", "B3", "A3", "I3", "Z3", "A2", "Z2", "A1", "I1", "Z1"]),
    ("4conv-3dense-squared", (1, 16, 16),
     lambda: [Conv2d(2, 3, padding=1), Activation("tanh"), Conv2d(2, 3, stride=2, padding=1),
              Activation("sigmoid"), Pool2d("max", 3, stride=2, padding=1),
              Conv2d(3, 3, padding=1), Activation("identity"), Conv2d(2, 2),
              Pool2d("avg", (2, 1)), Flatten(), Dense(6), Activation("tanh"), Dense(4),
              Activation("softplus"), Dense(2)],
     "squared_error",
     ["Z7", "A6", "Z6", "A5", "Z5", "B4", "A4", "Z4", "A3", "Z3", "A2", "I2", "Z2", "A1",
      "Z1"]),
    ("pool-before-activation", (1, 8, 8),
     lambda: [Conv2d(2, 3), Pool2d("max", 2), Activation("relu"), Flatten(), Dense(2),
              Activation("sigmoid")],
     "squared_error", ["A2", "Z2", "B1", "A1", "I1", "Z1"]),
    ("three-channel-wise", (1, 8, 8),
     lambda: [Conv2d(2, 3, padding=1), Activation("tanh"), Pool2d("avg", 2),
              Activation("sigmoid"), Flatten(), Dense(3), Activation("softmax")],
     "cross_entropy", ["A2", "Z2", "B1", "A1", "I1_2", "I1_1", "Z1"]),
    ("flatten-first-mlp", (2, 3, 3),
     lambda: [Flatten(), Dense(4), Activation("tanh"), Dense(3)],
     "cross_entropy", ["Z2", "A1", "Z1", "B0"]),
]
IDS = [n[0] for n in NETS]


def build(spec, reduction="sum", seed=0):
    _, shape, layers, loss, _ = spec
    return vj.Sequential(shape, layers(), loss=loss, reduction=reduction, seed=seed)


def data(net, rng, N=3):
    X = rng.standard_normal((N,) + net.input_shape)
    if net.loss_kind == "squared_error":
        y = rng.standard_normal((N, net.n_out))
    else:
        y = rng.integers(0, max(net.n_out, 2), N)
    for name in net.params:  # biases start at zero: make their gradients count
        if name.startswith("b"):
            net.params[name] = 0.1 * rng.standard_normal(net.params[name].shape)
    return X, y


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("spec", NETS, ids=IDS)
def test_chain_names(spec):
    net = build(spec)
    assert net.chain == ["J"] + spec[4]
    assert net.L == sum(name.startswith("Z") for name in spec[4])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("spec", NETS, ids=IDS)
def test_three_gradient_methods_agree(spec, reduction, rng):
    net = build(spec, reduction)
    X, y = data(net, rng)
    direct = net.gradients(X, y, method="direct")
    assert set(direct) == set(net.params)
    for method in ("jacobian", "paper"):
        got = net.gradients(X, y, method=method)
        for name, value in net.params.items():
            assert got[name].shape == value.shape
            assert rel_err(got[name], direct[name]) < 1e-10, (method, name)


@pytest.mark.parametrize("spec", NETS, ids=IDS)
def test_gradients_match_central_differences(spec, rng):
    net = build(spec)
    X, y = data(net, rng, N=2)
    grads = net.gradients(X, y, method="jacobian")
    numeric = central_differences(lambda: net.loss(X, y), net.params)
    for name in net.params:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)


@pytest.mark.parametrize("spec", NETS, ids=IDS)
def test_end_to_end_jacobian_orders_and_brute_force(spec, rng):
    net = build(spec)
    X, _ = data(net, rng, N=2)
    reverse = net.jacobian(X, of=net.top, wrt="X", order="reverse")
    forward = net.jacobian(X, of=net.top, wrt="X", order="forward")
    np.testing.assert_allclose(reverse.toarray(), forward.toarray(), rtol=1e-12, atol=1e-14)
    # the top in the note's layout is (n_out, N): the transpose of what forward() returns
    reference = reference_jacobian(lambda x: net.forward(x).T, X, method="differentiate")
    np.testing.assert_allclose(reverse.toarray(), reference, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("spec", NETS, ids=IDS)
def test_jacobian_wrt_every_parameter_gives_its_gradient(spec, rng):
    net = build(spec)
    X, y = data(net, rng, N=2)
    grads = net.gradients(X, y, method="direct")
    for theta in net.params:
        for order in ("reverse", "forward"):
            dJ = net.jacobian(X, of="J", wrt=theta, y=y, order=order)
            assert dJ.name == f"dJ/d{theta}"
            np.testing.assert_allclose(dJ.gradient(), grads[theta], rtol=1e-10, atol=1e-12)


def test_jacobians_are_named_for_the_chain(rng):
    net = build(NETS[1])
    X, y = data(net, rng)
    J = net.jacobians(X, y)
    assert sorted(J) == sorted([
        "dJ/dA4", "dA4/dZ4", "dZ4/dW4", "dZ4/db4", "dZ4/dA3", "dA3/dZ3", "dZ3/dW3", "dZ3/db3",
        "dZ3/dB2", "dB2/dA2", "dA2/dZ2", "dZ2/dK2", "dZ2/db2", "dZ2/dA1", "dA1/dI1",
        "dI1/dZ1", "dZ1/dK1", "dZ1/db1", "dZ1/dX"])
    for name, jacobian in J.items():
        assert jacobian.name == name


def test_unknown_names_list_the_valid_ones(rng):
    net = build(NETS[0])
    X, _ = data(net, rng)
    with pytest.raises(ValueError, match=r"of must be one of \['J', 'Z2', 'B1'"):
        net.jacobian(X, of="A3", wrt="X")
    with pytest.raises(ValueError, match=r"wrt must be on the chain below 'B1'.*'K1', 'b1'"):
        net.jacobian(X, of="B1", wrt="W2")


def test_repr_shows_every_layer_with_its_settings():
    text = repr(build(NETS[2]))
    assert "Z1 = Conv2d(2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in text
    assert "A1 = Pool2d('l2', size=(2, 2), stride=(2, 2), padding=(0, 0))" in text
    assert "A2 = Activation('leaky_relu', negative_slope=0.1)" in text
    assert "B3 = Flatten()  -> (18,)" in text and "loss='binary_cross_entropy'" in text


def test_cross_entropy_reads_logits_unless_a_softmax_ends_the_network(rng):
    X, y = rng.standard_normal((4, 1, 6, 6)), rng.integers(0, 3, 4)
    layers = [Conv2d(2, 3), Activation("tanh"), Flatten(), Dense(3)]
    logits = vj.Sequential((1, 6, 6), layers, loss="cross_entropy")
    probs = vj.Sequential((1, 6, 6), layers + [Activation("softmax")], loss="cross_entropy")
    assert logits.from_logits and not probs.from_logits
    assert logits.loss(X, y) == pytest.approx(probs.loss(X, y), rel=1e-12)
    Z = logits.forward(X)
    expected = -np.sum(Z[np.arange(4), y] - np.log(np.exp(Z).sum(axis=1)))
    assert logits.loss(X, y) == pytest.approx(expected, rel=1e-12)


def test_layer_objects_are_copied_and_reusable(rng):
    layers = [Conv2d(2, 3), Activation("tanh"), Flatten(), Dense(2)]
    small = vj.Sequential((1, 5, 5), layers, loss="squared_error")
    large = vj.Sequential((1, 9, 9), layers, loss="squared_error")
    assert layers[0].input_shape is None
    assert small.shapes["B1"] == (18,) and large.shapes["B1"] == (98,)
    assert small.params["W2"].shape == (18, 2) and large.params["W2"].shape == (98, 2)


def test_trains_with_vecjac_train(rng):
    X = rng.standard_normal((32, 1, 8, 8))
    y = (X[:, 0, :4].sum(axis=(1, 2)) > 0).astype(int)
    net = build(NETS[5], seed=1)
    history = vj.train(net, X, y, epochs=10, batch_size=8, lr=0.05, progress=False)
    assert history["loss"][-1] < 0.7 * history["loss"][0]


def test_no_loss_means_forward_and_jacobians_only(rng):
    net = vj.Sequential((1, 6, 6), [Conv2d(2, 3), Activation("relu")])
    X = rng.standard_normal((2, 1, 6, 6))
    assert net.forward(X).shape == (2, 2, 4, 4) and net.chain == ["A1", "Z1"]
    assert net.jacobian(X, of="A1", wrt="K1").shape == (64, 18)
    with pytest.raises(ValueError, match="this network has no loss"):
        net.gradients(X, np.zeros(2, dtype=int))


@pytest.mark.parametrize("layers,message", [
    ([Conv2d(2, 3), Dense(3)], r"layer 2, Dense\(3\) \(giving Z2.*put Flatten\(\) before it"),
    ([Conv2d(2, 3), Activation("softmax")], "softmax acts on the features of one sample"),
    ([Activation("tanh"), Conv2d(2, 3)], "cannot be the first layer"),
    ([Flatten(), Activation("tanh"), Dense(2)], "cannot be right after Flatten"),
    ([Flatten(), Flatten()], r"layer 2, Flatten\(\).*needs feature maps"),
    ([Conv2d(2, 3), Pool2d("avg", 2), Conv2d(2, 3, stride=2)],
     r"layer 3, Conv2d\(2, .*giving Z2, input of shape \(2, 2, 2\)\): kernel size"),
    ([Conv2d(2, 3), Pool2d("max", 9)],
     r"layer 2, Pool2d\('max'.*giving A1.*pool size \(9, 9\) is larger"),
])
def test_bad_networks_name_the_layer(layers, message):
    with pytest.raises(ValueError, match=message):
        vj.Sequential((1, 6, 6), layers, loss=None)


def test_bad_arguments():
    with pytest.raises(TypeError, match="layers must be a non-empty list of vecjac.layers"):
        vj.Sequential((1, 6, 6), ["conv"])
    with pytest.raises(ValueError, match="needs a vector output"):
        vj.Sequential((1, 6, 6), [Conv2d(2, 3)], loss="squared_error")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        vj.Sequential((1, 6, 6), [Flatten(), Dense(2)], loss="hinge")
    with pytest.raises(ValueError, match="input_shape must be"):
        vj.Sequential((6, 6), [Flatten(), Dense(2)])
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        vj.Sequential((1, 6, 6), [Flatten(), Dense(2)], dtype=np.int64)


class TestCNNConfiguration:
    def test_any_number_of_conv_layers(self, rng):
        net = vj.CNN(input_shape=(1, 16, 16), channels=(2, 3, 4), n_out=3,
                     pool=["avg", "max", None], activation=("tanh", "relu", "sigmoid"))
        assert net.chain == ["J", "A4", "Z4", "B3", "A3", "I3", "Z3", "A2", "I2", "Z2", "A1",
                             "I1", "Z1"]
        assert net.params["K3"].shape == (4, 3, 3, 3) and net.params["W4"].shape == (64, 3)
        X, y = rng.standard_normal((2, 1, 16, 16)), np.array([0, 2])
        direct = net.gradients(X, y, method="direct")
        for method in ("jacobian", "paper"):
            got = net.gradients(X, y, method=method)
            for name in direct:
                assert rel_err(got[name], direct[name]) < 1e-10

    def test_per_layer_settings_are_lists(self):
        net = vj.CNN(input_shape=(1, 12, 12), channels=(2, 3), stride=[1, 2], padding=[(1, 0), 1])
        convs = [layer for layer in net.layers if isinstance(layer, Conv2d)]
        assert [c.stride for c in convs] == [(1, 1), (2, 2)]
        assert [c.padding for c in convs] == [(1, 0), (1, 1)]
        one = vj.CNN(input_shape=(1, 12, 12), channels=(2,), stride=(1, 2))
        assert one.layers[0].stride == (1, 2)  # a tuple is a (height, width) pair
        three = vj.CNN(input_shape=(1, 24, 24), channels=(2, 2, 2), stride=(1, 2), pool=None)
        assert all(c.stride == (1, 2) for c in three.layers if isinstance(c, Conv2d))

    def test_two_int_tuple_with_two_layers_is_ambiguous(self):
        with pytest.raises(ValueError, match=r"stride=\(1, 2\) is ambiguous with two conv "
                                             r"layers: write stride=\[1, 2\]"):
            vj.CNN(stride=(1, 2))
        with pytest.raises(ValueError, match="kernel_size as a list gives one value per conv "
                                             "layer: 3 expected, got 2"):
            vj.CNN(channels=(2, 2, 2), kernel_size=[3, 3])

    def test_cnn_is_a_sequential(self):
        assert isinstance(vj.CNN(), vj.Sequential)


@pytest.mark.parametrize("spec", NETS, ids=IDS)
def test_shape_only_jacobians_are_reused_only_where_the_shape_matches(spec, rng):
    """The gradient paths build average pooling, flatten and bias Jacobians once per batch
    shape and dtype; other batch sizes, the other dtype and changed data still give the
    direct gradients, and ``jacobians()`` hands out objects of its own."""
    net = build(spec)
    for N in (3, 5, 3, 1):
        X, y = data(net, rng, N)
        direct = net.gradients(X, y, method="direct")
        for method_grads in (net.gradients(X, y), net.per_sample_gradients(X, y)):
            for name, value in direct.items():
                got = method_grads[name]
                got = got if got.shape == value.shape else got.sum(axis=0)
                assert rel_err(got, value) < 1e-10, (N, name)
    once = build(spec)
    once.gradients(*data(once, rng, 3))
    kept = {id(J) for J in net._shape_only.values()}
    assert len(once._shape_only) > 0 and len(kept) == 3 * len(once._shape_only)  # N = 3, 5, 1
    X, y = data(net, rng, 3)
    assert not kept & {id(J) for J in net.jacobians(X, y).values()}


def test_shape_only_jacobians_follow_the_dtype(rng):
    spec = NETS[0]
    net64, net32 = build(spec), vj.Sequential(spec[1], spec[2](), loss=spec[3], dtype=np.float32)
    X, y = data(net64, rng, 4)
    net32.params = {k: v.astype(np.float32) for k, v in net64.params.items()}
    for net in (net64, net32, net64):
        got = net.gradients(X, y)
        assert all(g.dtype == net.dtype for g in got.values())
    assert {key[2] for key in net64._shape_only} == {np.dtype(np.float64)}
    assert {key[2] for key in net32._shape_only} == {np.dtype(np.float32)}


def test_gradient_paths_build_each_jacobian_when_the_chain_asks(rng):
    """The gradient path's mapping builds a Jacobian on its first lookup and forgets it then;
    every Jacobian of the chain is asked for once, and build_ms names them all."""
    net = build(NETS[1])
    X, y = data(net, rng)
    cache = net._forward(X, context=True)
    y = net._targets(y, X.shape[0])
    lazy = net._cached_jacobians(cache, y, wrt_X=False, reuse=True)
    eager = net._cached_jacobians(cache, y, wrt_X=False)
    assert len(lazy) == 0 and set(lazy._later) == set(eager)
    name = next(iter(eager))
    J = lazy[name]
    assert name not in lazy._later and len(lazy) == 0
    assert (J.matrix != eager[name].matrix).nnz == 0
    lazy = net._cached_jacobians(cache, y, wrt_X=False, reuse=True)
    grads = net._chain_gradients(lazy)
    assert not lazy._later and set(net.build_ms) == set(eager)
    direct = net.gradients(X, net_y := rng.integers(0, 3, X.shape[0]), method="direct")
    for theta, value in net.gradients(X, net_y).items():
        assert rel_err(value, direct[theta]) < 1e-10
    assert set(grads) == set(net.params)
