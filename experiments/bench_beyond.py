"""Benchmark rows for what explicit Jacobians make cheap: per-sample gradients, the empirical
NTK and the exact GGN, against vecjac's own batch gradient and PyTorch's ``torch.func``.

* **per-sample gradients**, network N (1x28x28, conv 8 and 16, batch 64):
  ``net.per_sample_gradients`` against ``net.gradients(method="jacobian")`` (target: at most
  1.5x) and ``torch.func.vmap(torch.func.grad(loss))`` (BackPACK's ``BatchGrad`` when
  BackPACK is installed; the row says when it is not);
* **NTK of 64 digits** (the shipped digits resized to 28x28) on network N: ``net.ntk(X)``
  against the torch.func NTK tutorial's ``vmap(jacrev)`` and ``einsum`` contraction;
* **exact GGN** of the demo's small net (666 parameters, 32 digits): ``net.ggn`` against
  ``J^T H J`` assembled from ``torch.func.jacrev`` (of the logits, per sample) and the
  Hessian of the loss with respect to the logits (``jacrev(jacrev(loss))``).

PyTorch runs in float64 on the same parameters (vecjac's layout: the flatten swaps H and W
first), and every pair of results is checked equal before its time is reported.  Run
``python experiments/bench_beyond.py`` for a Markdown table; ``experiments/benchmark.py``
includes these rows.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

import vecjac as vj


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def network_n() -> vj.CNN:
    return vj.CNN(input_shape=(1, 28, 28), channels=[8, 16], kernel_size=3, padding=1,
                  activation="sigmoid", pool="avg", pool_size=2, n_out=10, output="softmax",
                  loss="cross_entropy", seed=0)


def small_net() -> vj.CNN:
    return vj.CNN(input_shape=(1, 8, 8), channels=(4, 8), activation="tanh", n_out=10, seed=0)


def torch_logits(torch, net, p, x):
    """``Z_L`` of a ``vj.CNN`` with avg pooling and element-wise activations, in PyTorch on
    vecjac's parameters ``p`` (torch tensors)."""
    F = torch.nn.functional
    h = x
    for layer, names in zip(net.layers, net.param_names, strict=True):
        if isinstance(layer, vj.layers.Conv2d):
            h = F.conv2d(h, p[names["K"]], p[names["b"]], layer.stride, layer.padding)
        elif isinstance(layer, vj.layers.Pool2d):
            h = F.avg_pool2d(h, layer.size, layer.stride, layer.padding)
        elif isinstance(layer, vj.layers.Flatten):
            h = h.transpose(-1, -2).reshape(h.shape[0], -1)
        elif isinstance(layer, vj.layers.Dense):
            h = h @ p[names["W"]] + p[names["b"]]
            if names["W"] == f"W{net.L}":
                return h
        else:
            h = getattr(torch, layer.kind)(h)
    raise ValueError("the network has no last Dense layer")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def per_sample_row(repeat: int) -> dict:
    net, rng = network_n(), np.random.default_rng(0)
    X, y = rng.random((64, 1, 28, 28)), rng.integers(0, 10, 64)
    per_ms = median_ms(lambda: net.per_sample_gradients(X, y), repeat)
    batch_ms = median_ms(lambda: net.gradients(X, y), repeat)
    row = {"quantity": "per-sample gradients, N, batch 64", "vecjac_ms": per_ms,
           "yardstick": "vecjac batch gradient", "yardstick_ms": batch_ms,
           "ratio": per_ms / batch_ms, "target": "<= 1.5"}
    torch = _torch()
    if torch is None:
        return row | {"torch": "torch not installed"}
    p = {k: torch.tensor(v) for k, v in net.params.items()}

    def loss(q, x, t):
        return torch.nn.functional.cross_entropy(torch_logits(torch, net, q, x[None]), t[None],
                                                 reduction="sum")

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    Xt, yt = torch.tensor(X), torch.tensor(y)
    ours = net.per_sample_gradients(X, y)
    theirs = per_sample(p, Xt, yt)
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k].numpy(), rtol=1e-9, atol=1e-12)
    torch_ms = median_ms(lambda: per_sample(p, Xt, yt), repeat)
    return row | {"torch": "vmap(grad)", "torch_ms": torch_ms, "vecjac/torch": per_ms / torch_ms,
                  **_backpack(torch, net, X, y, ours, per_ms, repeat)}


def _backpack(torch, net, X, y, ours, per_ms, repeat) -> dict:
    """BackPACK's ``BatchGrad`` on network N as a ``torch.nn.Sequential`` (weights copied
    from vecjac's, the Linear's columns permuted to PyTorch's flatten order), if installed."""
    try:
        import backpack
    except ImportError:
        return {"backpack": "BackPACK not installed"}
    nn, (c1, c2) = torch.nn, (net.params["K1"].shape[0], net.params["K2"].shape[0])
    model = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.Sigmoid(), nn.AvgPool2d(2),
                          nn.Conv2d(c1, c2, 3, padding=1), nn.Sigmoid(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(c2 * 7 * 7, 10)).double()
    W = net.params["W3"].T.reshape(10, c2, 7, 7).transpose(0, 1, 3, 2)  # vec: (c, w, h)
    with torch.no_grad():
        for layer, (K, b) in zip((model[0], model[3]), (("K1", "b1"), ("K2", "b2")),
                                 strict=True):
            layer.weight.copy_(torch.tensor(net.params[K]))
            layer.bias.copy_(torch.tensor(net.params[b]))
        model[7].weight.copy_(torch.tensor(W.reshape(10, -1)))
        model[7].bias.copy_(torch.tensor(net.params["b3"]))
    model = backpack.extend(model)
    lossfunc = backpack.extend(nn.CrossEntropyLoss(reduction="sum"))
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def batch_grad():
        model.zero_grad()
        loss = lossfunc(model(Xt), yt)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Full backward hook", UserWarning)  # X: no grad
            with backpack.backpack(backpack.extensions.BatchGrad()):
                loss.backward()
        return model[0].weight.grad_batch

    np.testing.assert_allclose(batch_grad().numpy(), ours["K1"], rtol=1e-9, atol=1e-12)
    backpack_ms = median_ms(batch_grad, repeat)
    return {"backpack": "BatchGrad", "backpack_ms": backpack_ms,
            "vecjac/backpack": per_ms / backpack_ms}


def ntk_row(repeat: int) -> dict:
    net = network_n()
    X = vj.data.load_digits(size=28).X_test[:64]
    ntk_ms = median_ms(lambda: net.ntk(X), repeat)
    row = {"quantity": "NTK of 64 digits, N (64x64x10x10)", "vecjac_ms": ntk_ms}
    torch = _torch()
    if torch is None:
        return row | {"torch": "torch not installed"}
    p = {k: torch.tensor(v) for k, v in net.params.items()}
    Xt = torch.tensor(X)

    def f(q, x):
        return torch_logits(torch, net, q, x[None])[0]

    def tutorial():
        jac = torch.func.vmap(torch.func.jacrev(f), (None, 0))(p, Xt)
        return sum(torch.einsum("Naf,Mbf->NMab", jac[k].flatten(2), jac[k].flatten(2))
                   for k in p)

    expected = tutorial().numpy()
    np.testing.assert_allclose(net.ntk(X), expected, rtol=1e-9, atol=1e-12 * abs(expected).max())
    torch_ms = median_ms(tutorial, repeat)
    return row | {"torch": "vmap(jacrev) + einsum", "torch_ms": torch_ms,
                  "vecjac/torch": ntk_ms / torch_ms, "target": "< 1"}


def ggn_row(repeat: int) -> dict:
    net, data = small_net(), vj.data.load_digits()
    X, y = data.X_test[:32], data.y_test[:32]
    ggn_ms = median_ms(lambda: net.ggn(X, y), repeat)
    P = sum(v.size for v in net.params.values())
    row = {"quantity": f"exact GGN, small net ({P} params, 32 digits)", "vecjac_ms": ggn_ms}
    torch = _torch()
    if torch is None:
        return row | {"torch": "torch not installed"}
    p = {k: torch.tensor(v) for k, v in net.params.items()}
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def loss(z):
        return torch.nn.functional.cross_entropy(z, yt, reduction="sum")

    def assembled():
        jac = torch.func.jacrev(lambda q: torch_logits(torch, net, q, Xt))(p)
        J = torch.cat([(jac[k].transpose(-1, -2) if jac[k].ndim >= 4 else jac[k])
                       .reshape(len(y) * 10, -1) for k in p], dim=1)
        z = torch_logits(torch, net, p, Xt)
        H = torch.func.jacrev(torch.func.jacrev(loss))(z).reshape(len(y) * 10, len(y) * 10)
        return J.T @ H @ J

    expected = assembled().numpy()
    np.testing.assert_allclose(net.ggn(X, y), expected, rtol=1e-8,
                               atol=1e-11 * abs(expected).max())
    torch_ms = median_ms(assembled, repeat)
    return row | {"torch": "jacrev J, jacrev(jacrev) H", "torch_ms": torch_ms,
                  "vecjac/torch": ggn_ms / torch_ms, "target": "< 1"}


def beyond_rows(repeat: int) -> list[dict]:
    return [per_sample_row(repeat), ntk_row(repeat), ggn_row(max(3, repeat // 3))]


def main(argv=None) -> int:
    repeat = int(argv[0]) if argv else 10
    rows = beyond_rows(repeat)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{row[k]:.3g}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
                 for k in keys]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
