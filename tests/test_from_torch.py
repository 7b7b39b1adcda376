"""``vecjac.from_torch`` against PyTorch itself: outputs, losses and every gradient, float64.

Skipped when torch is absent (CI installs it for a second run); the missing-torch message is
tested in ``test_from_torch_missing.py``, which runs either way.  A torch gradient is put in
vecjac's layout as ``from_torch`` puts the weights: ``Linear.weight.grad^T``, rows permuted
by ``order_permutation`` for the first ``Linear`` after ``Flatten``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import vecjac as vj
from vecjac.layers import Activation, Conv2d, Dense, Flatten, Pool2d

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

METHODS = ("jacobian", "paper", "direct")


def build(spec, input_shape, seed=0):
    """``nn.Sequential`` of ``spec()``, float64; an int ``k`` in it is ``Linear(n_in, k)``
    with ``n_in`` read off the modules before it."""
    torch.manual_seed(seed)
    modules = []
    for item in spec():
        if isinstance(item, int):
            n_in = nn.Sequential(*modules)(torch.zeros(1, *input_shape)).shape[1]
            item = nn.Linear(n_in, item)
        modules.append(item)
    return nn.Sequential(*modules).double()


def leaves(model):
    """The modules of ``model``, nested ``Sequential`` flattened, as ``from_torch`` reads them."""
    out = []
    for child in model.children():
        out += leaves(child) if isinstance(child, nn.Sequential) else [child]
    return out


# (id, modules, input_shape, loss, n_out); every supported module and setting appears
CASES = [
    ("circular-tanh-avg-logits", lambda: [
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(3, 2, (3, 2), stride=(1, 2), padding=(2, 1), padding_mode="circular"),
        nn.Sigmoid(), nn.Flatten(), 3,
    ], (2, 8, 6), "cross_entropy", 3),
    ("relu-maxpad-logits", lambda: [
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(3, 4, (2, 3), stride=(2, 1)), nn.Tanh(), nn.Flatten(), 6, nn.ReLU(), 5,
    ], (2, 11, 10), "cross_entropy", 5),
    ("sigmoid-avgpad-softmax", lambda: [
        nn.Conv2d(1, 3, (3, 2), stride=(1, 2), padding=(1, 0)), nn.Sigmoid(),
        nn.AvgPool2d(2, stride=1, padding=1), nn.Flatten(), 4, nn.Softmax(dim=1),
    ], (1, 9, 9), "cross_entropy", 4),
    ("leaky-lp-same-bce", lambda: [
        nn.Conv2d(3, 2, 1), nn.LeakyReLU(0.2), nn.LPPool2d(2, 2),
        nn.Conv2d(2, 3, 3, padding="same"), nn.Softplus(), nn.Flatten(), 1, nn.Sigmoid(),
    ], (3, 8, 8), "binary_cross_entropy", 1),
    ("softplus-3dense-squared", lambda: [
        nn.Conv2d(2, 2, 3, stride=2, padding=2), nn.Softplus(), nn.Identity(),
        nn.AvgPool2d((2, 3)), nn.Flatten(), 3, nn.Tanh(), 4, nn.Identity(), 2,
    ], (2, 7, 9), "squared_error", 2),
    ("nested-lp-stride-bce-logits", lambda: [
        nn.Sequential(nn.Conv2d(1, 2, 3, padding="valid"), nn.Tanh()),
        nn.LPPool2d(2, (2, 3), stride=(1, 2)), nn.Flatten(), nn.Sequential(nn.Linear(12, 1)),
    ], (1, 6, 8), "binary_cross_entropy", 1),
    ("leaky-default-maxstride-softmax-none", lambda: [
        nn.Conv2d(1, 2, 5), nn.LeakyReLU(), nn.MaxPool2d(2, stride=3, padding=1), nn.Flatten(),
        3, nn.Softmax(dim=-1),
    ], (1, 10, 10), None, 3),
    ("conv-maps-none", lambda: [
        nn.Conv2d(2, 3, 3, stride=(1, 2)), nn.Sequential(nn.ReLU(), nn.AvgPool2d(2)),
    ], (2, 9, 12), None, None),
]
IDS = [case[0] for case in CASES]


def torch_loss(out, y, loss, reduction, from_logits):
    if loss == "cross_entropy":
        if from_logits:
            return F.cross_entropy(out, y, reduction=reduction)
        return F.nll_loss(torch.log(out), y, reduction=reduction)
    if loss == "binary_cross_entropy":
        fn = F.binary_cross_entropy_with_logits if from_logits else F.binary_cross_entropy
        return fn(out[:, 0], y.double(), reduction=reduction)
    half_sse = 0.5 * F.mse_loss(out, y, reduction="sum")  # vecjac: sum (y - O)^2 / 2
    return half_sse / len(out) if reduction == "mean" else half_sse


def torch_gradients(model, net):
    """torch's ``.grad`` of every parameter, in vecjac's names and layouts."""
    grads = {}
    for i, (module, layer) in enumerate(zip(leaves(model), net.layers, strict=True)):
        names = net.param_names[i]
        if isinstance(layer, Conv2d):
            grads[names["K"]] = module.weight.grad.numpy()
            grads[names["b"]] = module.bias.grad.numpy()
        elif isinstance(layer, Dense):
            W = module.weight.grad.numpy().T
            before = net.layers[i - 1]
            if isinstance(before, Flatten):
                W = W[vj.order_permutation(before.input_shape)]
            grads[names["W"]], grads[names["b"]] = W, module.bias.grad.numpy()
    return grads


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def data(input_shape, loss, n_out, rng, N=3):
    X = rng.standard_normal((N, *input_shape))
    if loss == "squared_error":
        return X, rng.standard_normal((N, n_out))
    return X, rng.integers(0, max(n_out, 2), N)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_equals_torch(case, rng):
    _, spec, shape, loss, n_out = case
    model = build(spec, shape)
    net = vj.from_torch(model, shape, loss=loss)
    X = rng.standard_normal((4, *shape))
    expected = model(torch.tensor(X)).detach().numpy()
    got = net.forward(X)
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_loss_and_gradients_equal_torch_autograd(case, reduction, rng):
    _, spec, shape, loss, n_out = case
    model = build(spec, shape)
    net = vj.from_torch(model, shape, loss=loss, reduction=reduction)
    logits = loss != "squared_error" and isinstance(leaves(model)[-1], nn.Linear)
    assert net.from_logits == logits
    X, y = data(shape, loss, n_out, rng)
    J = torch_loss(model(torch.tensor(X)), torch.tensor(y), loss, reduction, net.from_logits)
    J.backward()
    assert net.loss(X, y) == pytest.approx(J.item(), rel=1e-12, abs=1e-14)
    expected = torch_gradients(model, net)
    assert set(expected) == set(net.params)
    for method in METHODS:
        got = net.gradients(X, y, method=method)
        for name, g in expected.items():
            assert got[name].shape == g.shape, (method, name)
            assert rel_err(got[name], g) < 1e-10, (method, name)


def test_layers_carry_the_torch_settings():
    model = nn.Sequential(
        nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), nn.LeakyReLU(0.3),
        nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(3, 4, 3, padding="same"), nn.Softplus(),
        nn.AvgPool2d((2, 1), padding=(1, 0)), nn.LPPool2d(2, 2, stride=1), nn.Flatten(),
        nn.Linear(4 * 2 * 7, 7), nn.Sigmoid(),
    )
    net = vj.from_torch(model, (2, 7, 9))
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [Conv2d, Activation, Pool2d, Conv2d, Activation, Pool2d, Pool2d, Flatten,
                     Dense, Activation]
    conv1, conv2, dense = net.layers[0], net.layers[3], net.layers[8]
    assert (conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (
        3, (3, 2), (2, 1), (1, 0))
    assert (conv2.out_channels, conv2.kernel_size, conv2.padding) == (4, (3, 3), (1, 1))
    assert [(p.kind, p.size, p.stride, p.padding) for p in net.layers[2::4][:1]] + [
        (p.kind, p.size, p.stride, p.padding) for p in net.layers[5:7]] == [
        ("max", (3, 3), (1, 1), (1, 1)), ("avg", (2, 1), (2, 1), (1, 0)),
        ("l2", (2, 2), (1, 1), (0, 0))]
    assert net.layers[1].kind == "leaky_relu" and net.layers[1].negative_slope == 0.3
    assert [net.layers[i].kind for i in (4, 9)] == ["softplus", "sigmoid"]
    assert dense.out_features == 7 and net.output_shape == (7,)
    assert "Pool2d('l2', size=(2, 2), stride=(1, 1), padding=(0, 0))" in repr(net)
    assert net.names == ["Z1", "I1", "A1", "Z2", "I2_1", "I2_2", "A2", "B2", "Z3", "A3"]


def test_weights_are_converted_copies():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 3 * 4, 3))  # float32
    net = vj.from_torch(model, (1, 5, 6))
    W = model[2].weight.detach().double().numpy().T[vj.order_permutation((2, 3, 4))]
    assert all(value.dtype == np.float64 for value in net.params.values())
    np.testing.assert_array_equal(net.params["K1"], model[0].weight.detach().double().numpy())
    np.testing.assert_array_equal(net.params["W2"], W)
    np.testing.assert_array_equal(net.params["b2"], model[2].bias.detach().double().numpy())
    before = model[0].weight.detach().clone()
    net.params["K1"] += 1.0
    assert torch.equal(model[0].weight.detach(), before)  # no memory shared


def test_bias_free_layers_get_zero_trainable_biases(rng):
    def spec(bias):
        return lambda: [nn.Conv2d(1, 2, 3, bias=bias), nn.Tanh(), nn.Flatten(),
                        nn.Linear(2 * 4 * 4, 3, bias=bias)]

    free, twin = build(spec(False), (1, 6, 6)), build(spec(True), (1, 6, 6))
    with torch.no_grad():  # the twin: same weights, zero biases that torch differentiates
        for a, b in zip(leaves(free)[::3], leaves(twin)[::3], strict=True):
            b.weight.copy_(a.weight)
            b.bias.zero_()
    net = vj.from_torch(free, (1, 6, 6), loss="cross_entropy")
    assert set(net.params) == {"K1", "b1", "W2", "b2"}
    assert not net.params["b1"].any() and not net.params["b2"].any()
    X, y = rng.standard_normal((3, 1, 6, 6)), rng.integers(0, 3, 3)
    F.cross_entropy(twin(torch.tensor(X)), torch.tensor(y), reduction="sum").backward()
    expected = torch_gradients(twin, net)
    for method in METHODS:
        got = net.gradients(X, y, method=method)
        for name, g in expected.items():
            assert rel_err(got[name], g) < 1e-10, (method, name)


def test_softplus_above_threshold_within_the_documented_gap(rng):
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Softplus()).double()
    with torch.no_grad():
        model[0].weight.fill_(30.0)
    X = rng.random((2, 1, 4, 4)) + 0.5  # inputs to softplus in [15, 45]: both sides of 20
    gap = np.abs(vj.from_torch(model, (1, 4, 4)).forward(X)
                 - model(torch.tensor(X)).detach().numpy()).max()
    assert 0 < gap <= np.log1p(np.exp(-20.0))


def test_l2_pooling_of_a_zero_window_has_zero_gradient_in_both(rng):
    model = build(lambda: [nn.Conv2d(1, 1, 1), nn.LPPool2d(2, 2), nn.Flatten(), 2], (1, 6, 6))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    net = vj.from_torch(model, (1, 6, 6), loss="cross_entropy")
    X, y = rng.standard_normal((2, 1, 6, 6)), np.array([0, 1])
    F.cross_entropy(model(torch.tensor(X)), torch.tensor(y), reduction="sum").backward()
    expected = torch_gradients(model, net)
    assert not expected["K1"].any()
    for method in METHODS:
        got = net.gradients(X, y, method=method)
        for name, g in expected.items():
            np.testing.assert_allclose(got[name], g, rtol=1e-10, atol=1e-14)


class MyConv(nn.Conv2d):
    pass


class Residual(nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


# (modules, index of the refused module, error, the setting the message must name)
REFUSED = [
    (lambda: [nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)], 1, TypeError, "BatchNorm2d is not supp"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Dropout()], 1, TypeError, "Dropout is not supported"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.LogSoftmax(dim=1)], 1, TypeError, "LogSoftmax is not"),
    (lambda: [MyConv(1, 2, 3)], 0, TypeError, "MyConv is not supported"),
    (lambda: [nn.Conv2d(1, 2, 3, dilation=2)], 0, ValueError, r"dilation=\(2, 2\)"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3, groups=2)], 1, ValueError, "groups=2"),
    (lambda: [nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")], 0, ValueError,
     "padding_mode='reflect'"),
    (lambda: [nn.Conv2d(1, 2, 2, padding="same")], 0, ValueError, "padding='same'.*even"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True)], 1, ValueError,
     "ceil_mode=True"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, dilation=2)], 1, ValueError, "dilation=2"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True)], 1, ValueError,
     "return_indices=True"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, count_include_pad=False)], 1, ValueError,
     "count_include_pad=False"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, divisor_override=3)], 1, ValueError,
     "divisor_override=3"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, ceil_mode=True)], 1, ValueError,
     "ceil_mode=True"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.LPPool2d(1, 2)], 1, ValueError, "norm_type=1"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.LPPool2d(2, 2, ceil_mode=True)], 1, ValueError,
     "ceil_mode=True"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3), nn.Softmax(dim=0)], 3,
     ValueError, "dim=0"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3), nn.Softmax()], 3,
     ValueError, "dim=None"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Softplus(beta=2)], 1, ValueError, "beta=2"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Softplus(threshold=5)], 1, ValueError, "threshold=5"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten(start_dim=2)], 1, ValueError, "start_dim=2"),
    (lambda: [nn.Conv2d(2, 2, 3)], 0, ValueError, "in_channels=2 does not fit"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(70, 3)], 2, ValueError,
     "in_features=70 does not fit"),
    # structures vecjac refuses, its own message after the torch module's name
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten(), nn.MaxPool2d(2)], 2, ValueError,
     r"layer 3, Pool2d\('max'.*right after Flatten"),
    (lambda: [nn.ReLU(), nn.Conv2d(1, 2, 3)], 0, ValueError, "cannot be the first layer"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Softmax(dim=1)], 1, ValueError, "needs vector input"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Linear(6, 3)], 1, ValueError, "put Flatten"),
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten()], 1, ValueError, "ends in Flatten"),
]


@pytest.mark.parametrize("spec, k, error, setting", REFUSED,
                         ids=[f"{i}-{r[3][:20]}" for i, r in enumerate(REFUSED)])
def test_unsupported_modules_and_settings_are_refused_by_name(spec, k, error, setting):
    model = nn.Sequential(*spec())
    named = re.escape(f"model[{k}], {model[k]!r}: ")
    with pytest.raises(error, match=named + ".*" + setting):
        vj.from_torch(model, (1, 8, 8))


def test_nested_position_is_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Dropout2d()))
    with pytest.raises(TypeError, match=re.escape("model[1][1], Dropout2d(p=0.5")):
        vj.from_torch(model, (1, 8, 8))


@pytest.mark.parametrize("model, message", [
    (lambda: nn.Conv2d(1, 2, 3), "model is a Conv2d, not a torch.nn.Sequential"),
    (lambda: nn.ModuleList([nn.Conv2d(1, 2, 3)]), "model is a ModuleList, not a torch.nn"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), Residual(nn.Tanh())),
     r"model\[1\], a Residual, overrides Sequential.forward"),
])
def test_non_sequential_models_are_refused(model, message):
    with pytest.raises(TypeError, match=message):
        vj.from_torch(model(), (1, 8, 8))


def test_empty_model_is_refused():
    with pytest.raises(ValueError, match="no modules"):
        vj.from_torch(nn.Sequential(), (1, 8, 8))
