"""Per-sample gradients: their sum is the batch gradient, and each is the gradient of the
network on that sample alone (computed independently, by direct back-propagation on a batch
of one), for every layer kind and both reductions; central differences on a small net."""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac.layers import Activation, Conv2d, Dense, Flatten, Pool2d
from vecjac.testing import central_differences

NETS = [
    lambda r: vj.CNN(input_shape=(1, 9, 8), channels=(2, 3), n_out=3, reduction=r),
    lambda r: vj.CNN(input_shape=(2, 10, 10), channels=(2, 2, 3), pool=["max", "l2", None],
                     activation=["relu", "tanh", "softplus"], stride=[1, 1, 2], n_out=1,
                     output="sigmoid", loss="binary_cross_entropy", reduction=r),
    lambda r: vj.Sequential((1, 8, 8), [Conv2d(2, 3, stride=2, padding=1),
                                        Activation("leaky_relu"), Pool2d("avg", 2), Flatten(),
                                        Dense(5), Activation("tanh"), Dense(2)],
                            loss="squared_error", reduction=r),
]


def labels(net, rng, N):
    if net.loss_kind == "squared_error":
        return rng.standard_normal((N, net.n_out))
    return rng.integers(0, max(net.n_out, 2), N)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("make", NETS, ids=["cnn", "cnn3-max-l2", "sequential-mse"])
def test_per_sample_gradients(make, reduction, rng):
    net = make(reduction)
    N = 4
    X, y = rng.standard_normal((N,) + net.input_shape), labels(net, rng, N)
    for name in net.params:
        if name.startswith("b"):
            net.params[name] = 0.1 * rng.standard_normal(net.params[name].shape)
    per = net.per_sample_gradients(X, y)
    batch = net.gradients(X, y, method="direct")
    assert set(per) == set(net.params)
    scale = 1 / N if reduction == "mean" else 1.0
    for name, value in net.params.items():
        assert per[name].shape == (N,) + value.shape
        np.testing.assert_allclose(per[name].sum(axis=0), batch[name], rtol=1e-10, atol=1e-13)
        for n in range(N):  # the sample alone, as its own batch of one
            alone = net.gradients(X[n : n + 1], y[n : n + 1], method="direct")[name]
            np.testing.assert_allclose(per[name][n], scale * alone, rtol=1e-10, atol=1e-13)


def test_per_sample_gradients_match_central_differences(rng):
    net = vj.CNN(input_shape=(1, 6, 6), channels=(2,), pool="avg", n_out=2)
    X, y = rng.standard_normal((3, 1, 6, 6)), np.array([0, 1, 1])
    per = net.per_sample_gradients(X, y)
    for n in range(3):
        numeric = central_differences(lambda n=n: net.loss(X[n : n + 1], y[n : n + 1]),
                                      net.params)
        for name in net.params:
            np.testing.assert_allclose(per[name][n], numeric[name], rtol=1e-5, atol=1e-7)


def test_per_sample_gradients_equal_torch_vmap(rng):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.Tanh(),
                                torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(3 * 4 * 4, 4)).double()
    net = vj.from_torch(model, input_shape=(1, 8, 8), loss="cross_entropy")
    X, y = rng.standard_normal((5, 1, 8, 8)), rng.integers(0, 4, 5)
    params = dict(model.named_parameters())

    def loss(p, x, t):
        out = torch.func.functional_call(model, p, (x[None],))
        return torch.nn.functional.cross_entropy(out, t[None], reduction="sum")

    grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(
        {k: v.detach() for k, v in params.items()}, torch.tensor(X), torch.tensor(y))
    per = net.per_sample_gradients(X, y)
    np.testing.assert_allclose(per["K1"], grads["0.weight"].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(per["b1"], grads["0.bias"].numpy(), rtol=1e-10, atol=1e-12)
    W = grads["4.weight"].numpy().transpose(0, 2, 1)[:, vj.order_permutation((3, 4, 4))]
    np.testing.assert_allclose(per["W2"], W, rtol=1e-10, atol=1e-12)
