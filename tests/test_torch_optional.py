"""PyTorch as an outside oracle, when it is installed (it is not a dependency: skipped if absent).

The note's flatten is column-major within each channel, so PyTorch's side swaps H and W
before flattening; convolution is cross-correlation in both.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_network_gradients_equal_pytorch_autograd(rng):
    net = vj.CNN(input_shape=(1, 12, 12), channels=(3, 4), kernel_size=3, padding=1,
                 activation="sigmoid", pool="avg", n_out=5, seed=0)
    X, y = rng.random((6, 1, 12, 12)), rng.integers(0, 5, 6)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    h = F.avg_pool2d(torch.sigmoid(F.conv2d(torch.tensor(X), p["K1"], p["b1"], padding=1)), 2)
    h = F.avg_pool2d(torch.sigmoid(F.conv2d(h, p["K2"], p["b2"], padding=1)), 2)
    logits = h.transpose(2, 3).reshape(len(X), -1) @ p["W3"] + p["b3"]
    F.cross_entropy(logits, torch.tensor(y), reduction="sum").backward()
    for method in ("jacobian", "paper", "direct"):
        grads = net.gradients(X, y, method=method)
        for name, g in grads.items():
            np.testing.assert_allclose(g, p[name].grad.numpy(), rtol=1e-10, atol=1e-13)


def test_convert_order_matches_torch_jacrev(rng):
    A, K = rng.standard_normal((2, 5, 6)), rng.standard_normal((3, 2, 3, 2))
    J = vj.jacobians.conv_wrt_input(K, A.shape, stride=(2, 1), padding=1)
    f = lambda a: F.conv2d(a[None], torch.tensor(K), stride=(2, 1), padding=1)[0]  # noqa: E731
    jac = torch.func.jacrev(f)(torch.tensor(A))
    dense = jac.reshape(int(np.prod(J.of_shape)), A.size).numpy()
    np.testing.assert_allclose(vj.convert_order(J).toarray(), dense, rtol=1e-12, atol=1e-14)
