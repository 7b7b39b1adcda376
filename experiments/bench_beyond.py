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
import warnings

import numpy as np

import vecjac as vj

sys.path.insert(0, os.path.dirname(__file__))  # bench_common
from bench_common import cnn, interleaved_ms, optional_torch, torch_logits  # noqa: E402


def small_net() -> vj.CNN:
    return vj.CNN(input_shape=(1, 8, 8), channels=(4, 8), activation="tanh", n_out=10, seed=0)


def per_sample_row(repeat: int) -> dict:
    net, rng = cnn(), np.random.default_rng(0)
    X, y = rng.random((64, 1, 28, 28)), rng.integers(0, 10, 64)
    fns = {"vecjac": lambda: net.per_sample_gradients(X, y), "batch": lambda: net.gradients(X, y)}
    row = {"quantity": "per-sample gradients, N, batch 64", "yardstick": "vecjac batch gradient"}
    torch = optional_torch()
    if torch is None:
        row["torch"] = "torch not installed"
    else:
        p = {k: torch.tensor(v) for k, v in net.params.items()}

        def loss(q, x, t):
            return torch.nn.functional.cross_entropy(torch_logits(torch, net, q, x[None]),
                                                     t[None], reduction="sum")

        per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
        Xt, yt = torch.tensor(X), torch.tensor(y)
        ours, theirs = net.per_sample_gradients(X, y), per_sample(p, Xt, yt)
        for k in ours:
            np.testing.assert_allclose(ours[k], theirs[k].numpy(), rtol=1e-9, atol=1e-12)
        fns["torch"], row["torch"] = (lambda: per_sample(p, Xt, yt)), "vmap(grad)"
        batch_grad = _backpack(torch, net, X, y, ours["K1"])
        if batch_grad is None:
            row["backpack"] = "BackPACK not installed"
        else:
            fns["backpack"], row["backpack"] = batch_grad, "BatchGrad"
    t = interleaved_ms(fns, repeat)
    row |= {"vecjac_ms": t["vecjac"], "yardstick_ms": t["batch"],
            "ratio": t["vecjac"] / t["batch"], "target": "<= 1.5"}
    if "torch" in t:
        row |= {"torch_ms": t["torch"], "vecjac/torch": t["vecjac"] / t["torch"]}
    if "backpack" in t:
        row |= {"backpack_ms": t["backpack"], "vecjac/backpack": t["vecjac"] / t["backpack"],
                "backpack target": "< 1"}
    return row


def _backpack(torch, net, X, y, K1_per_sample):
    """BackPACK's ``BatchGrad`` step on network N as a ``torch.nn.Sequential`` (weights
    copied from vecjac's, the Linear's columns permuted to PyTorch's flatten order), checked
    against vecjac's per-sample ``K1`` gradients; ``None`` if BackPACK is not installed."""
    try:
        import backpack
    except ImportError:
        return None
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

    np.testing.assert_allclose(batch_grad().numpy(), K1_per_sample, rtol=1e-9, atol=1e-12)
    return batch_grad


def ntk_row(repeat: int) -> dict:
    net = cnn()
    X = vj.data.load_digits(size=28).X_test[:64]
    fns = {"vecjac": lambda: net.ntk(X)}
    row = {"quantity": "NTK of 64 digits, N (64x64x10x10)"}
    torch = optional_torch()
    if torch is None:
        row["torch"] = "torch not installed"
    else:
        p = {k: torch.tensor(v) for k, v in net.params.items()}
        Xt = torch.tensor(X)

        def f(q, x):
            return torch_logits(torch, net, q, x[None])[0]

        def tutorial():
            jac = torch.func.vmap(torch.func.jacrev(f), (None, 0))(p, Xt)
            return sum(torch.einsum("Naf,Mbf->NMab", jac[k].flatten(2), jac[k].flatten(2))
                       for k in p)

        expected = tutorial().numpy()
        np.testing.assert_allclose(net.ntk(X), expected, rtol=1e-9,
                                   atol=1e-12 * abs(expected).max())
        fns["torch"], row["torch"] = tutorial, "vmap(jacrev) + einsum"
    return _against_torch(row, fns, repeat)


def ggn_row(repeat: int) -> dict:
    net, data = small_net(), vj.data.load_digits()
    X, y = data.X_test[:32], data.y_test[:32]
    P = sum(v.size for v in net.params.values())
    fns = {"vecjac": lambda: net.ggn(X, y)}
    row = {"quantity": f"exact GGN, small net ({P} params, 32 digits)"}
    torch = optional_torch()
    if torch is None:
        row["torch"] = "torch not installed"
    else:
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
        fns["torch"], row["torch"] = assembled, "jacrev J, jacrev(jacrev) H"
    return _against_torch(row, fns, repeat)


def _against_torch(row: dict, fns: dict, repeat: int) -> dict:
    """``row`` with the times of ``fns`` (``"vecjac"``, and ``"torch"`` when installed) and
    their ratio, whose target is below 1."""
    t = interleaved_ms(fns, repeat)
    row["vecjac_ms"] = t["vecjac"]
    if "torch" in t:
        row |= {"torch_ms": t["torch"], "vecjac/torch": t["vecjac"] / t["torch"], "target": "< 1"}
    return row


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
