"""The exact GGN and the empirical NTK against brute force: the Jacobian of the network's
output with respect to every parameter entry by central differences of the forward pass, and
the loss's Hessian with respect to ``Z_L`` by second differences of the loss; plus PyTorch's
``torch.func`` when it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac.layers import Activation, Conv2d, Dense, Flatten, Pool2d
from vecjac.vec import unvec, vec

NETS = {
    "cnn-softmax-ce": lambda r: vj.CNN(input_shape=(1, 6, 6), channels=(2, 3), n_out=3,
                                       reduction=r),
    "cnn-logits-max": lambda r: vj.CNN(input_shape=(2, 6, 5), channels=(2, 2), n_out=3,
                                       pool="max", activation="tanh", output="identity",
                                       reduction=r),
    "cnn-sigmoid-bce": lambda r: vj.CNN(input_shape=(1, 6, 6), channels=(2,), n_out=1,
                                        output="sigmoid", loss="binary_cross_entropy",
                                        activation="softplus", reduction=r),
    "bce-logits": lambda r: vj.Sequential((1, 4, 4), [Conv2d(2, 3), Activation("relu"),
                                                      Flatten(), Dense(2)],
                                          loss="binary_cross_entropy", reduction=r),
    "mse-dense": lambda r: vj.Sequential((1, 4, 4), [Flatten(), Dense(5), Activation("tanh"),
                                                     Dense(3)],
                                         loss="squared_error", reduction=r),
    "mse-after-sigmoid": lambda r: vj.Sequential((1, 4, 4), [Flatten(), Dense(3),
                                                             Activation("sigmoid")],
                                                 loss="squared_error", reduction=r),
    "two-activations-on-top": lambda r: vj.Sequential(
        (1, 5, 5), [Conv2d(2, 3), Activation("sigmoid"), Flatten(), Dense(4),
                    Activation("tanh"), Activation("softmax")],
        loss="cross_entropy", reduction=r),
    "conv-on-top": lambda r: vj.Sequential((1, 6, 6), [Conv2d(2, 3, padding=1),
                                                       Activation("sigmoid"),
                                                       Pool2d("avg", 2), Flatten()],
                                           loss="squared_error", reduction=r),
}


def targets(net, rng, N):
    if net.loss_kind == "squared_error":
        return rng.standard_normal((N, net.n_out))
    if net.loss_kind == "binary_cross_entropy" and net.n_out > 1:
        return rng.integers(0, 2, (N, net.n_out)).astype(float)
    return rng.integers(0, max(net.n_out, 2), N)


def perturbed(params, theta, k, h):
    """``params`` with entry ``k`` (vec order) of ``theta`` moved by ``h`` (a new dict)."""
    params = {name: value.copy() for name, value in params.items()}
    e = np.zeros(params[theta].size)
    e[k] = h
    params[theta] = params[theta] + unvec(e, params[theta].shape)
    return params


def fd_parameter_jacobian(net, X, of, h=1e-6):
    """``d vec(of) / d theta`` (all parameters, params order) by central differences."""
    columns, original = [], net.params
    for theta, value in original.items():
        for k in range(value.size):
            outs = []
            for sign in (1, -1):
                net.params = perturbed(original, theta, k, sign * h)
                outs.append(vec(net._forward(X)[of]))
            net.params = original
            columns.append((outs[0] - outs[1]) / (2 * h))
    return np.stack(columns, axis=1)


def fd_loss_hessian(net, X, y, h=1e-5):
    """``d^2 J / d vecZ_L^2`` by central differences of the loss's gradient with respect to
    ``Z_L``, back-propagated by the layers' direct backward passes above ``Z_L``."""
    split = f"Z{net.L}"
    Z, first = net._forward(X)[split], net.names.index(split) + 1
    Y = net._targets(y, X.shape[0])

    def gradient(z):
        inputs = [unvec(z, Z.shape)]
        for i in range(first, len(net.layers)):
            inputs.append(net.layers[i].forward(inputs[-1], net._local(i)))
        top = inputs.pop()
        if net.from_logits:
            dA = vj.direct.loss_from_logits(top, Y, net.loss_kind, net.reduction)[1]
        else:
            dA = vj.direct.loss_backward(top, Y, net.loss_kind, net.reduction)
        for i in range(len(net.layers) - 1, first - 1, -1):
            dA = net.layers[i].backward(dA, inputs.pop(), net._local(i))[0]
        return vec(dA)

    z = vec(Z).copy()
    columns = []
    for k in range(z.size):
        e = np.zeros_like(z)
        e[k] = h
        columns.append((gradient(z + e) - gradient(z - e)) / (2 * h))
    return np.stack(columns, axis=1)


def randomised(make, reduction, rng):
    net = make(reduction)
    for name in net.params:  # non-zero biases everywhere
        net.params[name] = net.params[name] + 0.2 * rng.standard_normal(net.params[name].shape)
    return net


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("name", list(NETS))
def test_ggn_equals_brute_force(name, reduction, rng):
    net = randomised(NETS[name], reduction, rng)
    X, y = rng.standard_normal((3,) + net.input_shape), None
    y = targets(net, rng, 3)
    J = fd_parameter_jacobian(net, X, f"Z{net.L}")
    H = fd_loss_hessian(net, X, y)
    expected = J.T @ H @ J
    G = net.ggn(X, y)
    assert G.shape == (J.shape[1],) * 2
    scale = np.abs(expected).max()
    np.testing.assert_allclose(G, expected, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(G, G.T)
    diagonal = net.ggn(X, y, diagonal=True)
    assert list(diagonal) == list(net.params)
    flat = np.concatenate([vec(diagonal[t]) for t in net.params])
    np.testing.assert_allclose(flat, np.diag(G), rtol=1e-10, atol=1e-14 * scale)
    for t, value in diagonal.items():
        assert value.shape == net.params[t].shape


@pytest.mark.parametrize("name", ["cnn-softmax-ce", "cnn-logits-max", "cnn-sigmoid-bce",
                                  "bce-logits", "mse-dense"])
def test_ggn_is_positive_semidefinite_for_convex_tops(name, rng):
    net = randomised(NETS[name], "sum", rng)
    X, y = rng.standard_normal((4,) + net.input_shape), targets(net, rng, 4)
    G = net.ggn(X, y)
    eigenvalues = np.linalg.eigvalsh(G)
    assert eigenvalues.min() >= -1e-10 * eigenvalues.max()


def test_ggn_of_softmax_layer_equals_fused_logits(rng):
    """Softmax + cross-entropy as a layer and as the fused loss: the same ``H``,
    ``diag(p) - p p^T``, reached by two different routes."""
    layers = [Conv2d(2, 3), Activation("tanh"), Flatten(), Dense(4)]
    fused = vj.Sequential((1, 5, 5), layers, loss="cross_entropy")
    unfused = vj.Sequential((1, 5, 5), layers + [Activation("softmax")], loss="cross_entropy")
    unfused.params = fused.params
    X, y = rng.standard_normal((5, 1, 5, 5)), rng.integers(0, 4, 5)
    np.testing.assert_allclose(unfused.ggn(X, y), fused.ggn(X, y), rtol=1e-9, atol=1e-12)


def test_ggn_mean_is_sum_over_n(rng):
    net_sum, net_mean = NETS["cnn-logits-max"]("sum"), NETS["cnn-logits-max"]("mean")
    X, y = rng.standard_normal((4, 2, 6, 5)), rng.integers(0, 3, 4)
    np.testing.assert_allclose(net_mean.ggn(X, y), net_sum.ggn(X, y) / 4, rtol=1e-12,
                               atol=1e-15)


def test_ggn_operator_equals_dense(rng):
    net = randomised(NETS["cnn-softmax-ce"], "sum", rng)
    X, y = rng.standard_normal((3, 1, 6, 6)), rng.integers(0, 3, 3)
    G, op = net.ggn(X, y), net.ggn_operator(X, y)
    P = G.shape[0]
    assert op.shape == (P, P)
    v, V = rng.standard_normal(P), rng.standard_normal((P, 4))
    np.testing.assert_allclose(op @ v, G @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(v), G @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op @ V, G @ V, rtol=1e-10, atol=1e-12)


def test_ggn_refuses_dense_over_budget_before_any_work(rng):
    net = NETS["cnn-softmax-ce"]("sum")
    previous = vj.set_memory_budget(40_000)  # the dense 89 x 89 needs 63,368 bytes
    try:
        with pytest.raises(vj.MemoryBudgetError, match=r"diagonal=True.*ggn_operator"):
            net.ggn("not even an array", None)
        X, y = rng.standard_normal((2, 1, 6, 6)), rng.integers(0, 3, 2)
        assert set(net.ggn(X, y, diagonal=True)) == set(net.params)
        assert net.ggn_operator(X, y).shape == (89, 89)
    finally:
        vj.set_memory_budget(previous)


def test_ggn_bad_input(rng):
    net = NETS["cnn-softmax-ce"]("sum")
    X, y = rng.standard_normal((2, 1, 6, 6)), rng.integers(0, 3, 2)
    with pytest.raises(TypeError, match="diagonal"):
        net.ggn(X, y, diagonal="yes")
    with pytest.raises(ValueError, match="no loss"):
        vj.Sequential((1, 4, 4), [Flatten(), Dense(2)]).ggn(X[:, :, :4, :4], y)
    l2 = vj.Sequential((1, 6, 6), [Conv2d(2, 3, padding=1), Pool2d("l2", 2), Flatten()],
                       loss="squared_error")
    with pytest.raises(ValueError, match="L2 pooling above Z1"):
        l2.ggn(X, rng.standard_normal((2, 18)))


@pytest.mark.parametrize("of", [None, "A3", "A1", "Z2"])
def test_ntk_equals_brute_force(of, rng):
    net = randomised(NETS["cnn-softmax-ce"], "sum", rng)
    X1, X2 = rng.standard_normal((3, 1, 6, 6)), rng.standard_normal((2, 1, 6, 6))
    name = of or "Z3"
    m = int(np.prod(net.shapes[name]))
    J1, J2 = fd_parameter_jacobian(net, X1, name), fd_parameter_jacobian(net, X2, name)
    expected = (J1 @ J2.T).reshape(3, m, 2, m).transpose(0, 2, 1, 3)
    K = net.ntk(X1, X2, of=of)
    assert K.shape == (3, 2, m, m)
    np.testing.assert_allclose(K, expected, rtol=0, atol=1e-7 * np.abs(expected).max())


def test_ntk_is_symmetric_for_one_batch(rng):
    net = NETS["cnn-logits-max"]("sum")
    X = rng.standard_normal((4, 2, 6, 5))
    K = net.ntk(X)
    np.testing.assert_allclose(K, K.transpose(1, 0, 3, 2), rtol=1e-12, atol=1e-14)
    flat = K.transpose(0, 2, 1, 3).reshape(12, 12)
    assert np.linalg.eigvalsh(flat).min() >= -1e-10 * np.abs(flat).max()
    np.testing.assert_allclose(K, net.ntk(X, X), rtol=1e-12, atol=1e-14)


def test_ntk_bad_input(rng):
    net = NETS["cnn-softmax-ce"]("sum")
    X = rng.standard_normal((2, 1, 6, 6))
    for of in ("J", "Z9", "K1"):
        with pytest.raises(ValueError, match="of must be one of"):
            net.ntk(X, of=of)
    with pytest.raises(ValueError, match="X must have shape"):
        net.ntk(X, rng.standard_normal((2, 1, 5, 5)))
    previous = vj.set_memory_budget(100)
    try:
        with pytest.raises(vj.MemoryBudgetError, match="NTK"):
            net.ntk(X)
    finally:
        vj.set_memory_budget(previous)


# --- PyTorch's torch.func as the outside oracle -------------------------------------------
def _torch_logits(torch, net, p, x):
    """The network ``vj.CNN(..., pool="avg", activation="sigmoid", output="identity")`` in
    PyTorch on vecjac's parameter layout (flatten column-major: swap H and W first)."""
    F = torch.nn.functional
    h = x
    for l in (1, 2):
        h = F.avg_pool2d(torch.sigmoid(F.conv2d(h, p[f"K{l}"], p[f"b{l}"], padding=1)), 2)
    return h.transpose(-1, -2).reshape(h.shape[0], -1) @ p["W3"] + p["b3"]


def _torch_net():
    return vj.CNN(input_shape=(1, 8, 8), channels=(2, 3), kernel_size=3, padding=1,
                  activation="sigmoid", pool="avg", n_out=4, output="identity", seed=1)


def _torch_parameter_jacobian(torch, net, X):
    """``d vec(logits) / d theta`` from ``torch.func.jacrev``, columns in vecjac's vec order
    (the last two axes of each parameter swapped, then row-major)."""
    p = {k: torch.tensor(v) for k, v in net.params.items()}
    jac = torch.func.jacrev(lambda q: _torch_logits(torch, net, q, torch.tensor(X)))(p)
    columns = []
    for theta, value in net.params.items():
        block = jac[theta].numpy().reshape((X.shape[0] * net.n_out,) + value.shape)
        if value.ndim >= 2:
            block = np.swapaxes(block, -1, -2)
        columns.append(block.reshape(block.shape[0], -1))
    return np.concatenate(columns, axis=1)


def test_ntk_equals_torch_func_jacrev_contraction(rng):
    torch = pytest.importorskip("torch")
    net = _torch_net()
    X1, X2 = rng.random((5, 1, 8, 8)), rng.random((3, 1, 8, 8))
    p = {k: torch.tensor(v) for k, v in net.params.items()}

    def f(q, x):  # one sample, as in the torch.func NTK tutorial
        return _torch_logits(torch, net, q, x[None])[0]

    jac1 = torch.func.vmap(torch.func.jacrev(f), (None, 0))(p, torch.tensor(X1))
    jac2 = torch.func.vmap(torch.func.jacrev(f), (None, 0))(p, torch.tensor(X2))
    expected = sum(torch.einsum("Naf,Mbf->NMab", jac1[k].flatten(2), jac2[k].flatten(2))
                   for k in p).numpy()
    np.testing.assert_allclose(net.ntk(X1, X2), expected, rtol=1e-10, atol=1e-13)


def test_ggn_equals_one_assembled_from_torch_jacrev(rng):
    torch = pytest.importorskip("torch")
    net = _torch_net()
    X, y = rng.random((4, 1, 8, 8)), rng.integers(0, 4, 4)
    J = _torch_parameter_jacobian(torch, net, X)
    logits = torch.tensor(net.forward(X))

    def loss(z):
        return torch.nn.functional.cross_entropy(z, torch.tensor(y), reduction="sum")

    H = torch.func.jacrev(torch.func.jacrev(loss))(logits).numpy().reshape(4 * 4, 4 * 4)
    expected = J.T @ H @ J
    np.testing.assert_allclose(net.ggn(X, y), expected, rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())
