"""Every experiment script runs in --quick mode and writes real figures; chain orders agree.

The scripts in ``experiments/`` are what the README's figures come from; here each runs as a
user would (``main(["--quick", "--out", DIR])``) into a temporary folder, and every PNG it
promises must exist, carry the PNG signature, and not be blank.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import vecjac as vj

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# script -> the figures its --quick run must write
FIGURES = {
    "sparsity_patterns": ["sparsity_chain.png", "sparsity_end_to_end.png",
                          "sparsity/dZ2_dA1.png", "sparsity/dZ1_dK1.png"],
    "appendix_figure": ["appendix.png", "appendix_dZ_dbeta.png", "appendix_dZ_dA.png"],
    "conv_structure": ["conv_stride_padding_dZ_dA.png", "conv_stride_padding_dZ_dK.png",
                       "conv_kernel_sizes.png"],
    "scaling": ["scaling.png"],
    "chain_order": ["chain_order.png"],
    "train_digits": ["train_digits.png"],
    "conv_spectrum": ["conv_spectrum.png"],
    "beyond_gradients": ["beyond_per_sample.png", "beyond_ggn.png", "beyond_ntk.png",
                         "beyond_spectrum.png", "beyond_chain.png"],
}


def load(name: str):
    """Import ``experiments/<name>.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_real_png(path: Path) -> None:
    """A PNG file that decodes to an image with visible content (not one flat colour)."""
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= 100, f"{path}: shape {image.shape}"
    grey = image[..., :3].mean(axis=2)
    assert grey.var() > 1e-3, f"{path} looks blank (pixel variance {grey.var():.1e})"
    assert (grey < 0.5).mean() > 0.005, f"{path} has almost no dark pixels"


@pytest.mark.parametrize("name", list(FIGURES))
def test_quick_run_writes_its_figures(name, tmp_path, capsys):
    assert load(name).main(["--quick", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip(), f"{name} printed nothing"
    for figure in FIGURES[name]:
        assert_real_png(tmp_path / figure)


def test_chain_orders_give_equal_jacobians():
    chain_order = load("chain_order")
    data = vj.data.load_digits()
    X, y = data.X_train[:3], data.y_train[:3]
    net = vj.CNN()
    for of, wrt in chain_order.TARGETS:
        r = chain_order.compare_orders(net, X, y, of, wrt, repeat=1)
        reverse, forward = r["reverse"]["J"], r["forward"]["J"]
        assert reverse.name == forward.name == f"d{of}/d{wrt}"
        np.testing.assert_allclose(forward.toarray(), reverse.toarray(), rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(r["reverse"]["library"].toarray(), reverse.toarray(),
                                   rtol=1e-12, atol=1e-14)
        assert r["difference"] <= chain_order.TOLERANCE
        assert r["reverse"]["flops"] > 0 and r["forward"]["flops"] > 0


def test_flop_count_is_the_multiply_add_count():
    """flops(A B) = 2 sum_t nnz(A[:, t]) nnz(B[t, :]), checked against a dense count."""
    chain_order = load("chain_order")
    rng = np.random.default_rng(0)
    a = rng.random((5, 4)) * (rng.random((5, 4)) < 0.5)
    b = rng.random((4, 6)) * (rng.random((4, 6)) < 0.5)
    A = vj.Jacobian(a, "Y", "X", (5,), (4,))
    B = vj.Jacobian(b, "X", "W", (4,), (6,))
    pairs = sum(int((a[:, t] != 0).sum() * (b[t, :] != 0).sum()) for t in range(4))
    assert chain_order.product_flops(A, B) == 2 * pairs


def test_factor_names_follow_the_chain():
    chain_order = load("chain_order")
    net = vj.CNN()
    assert chain_order.factor_names(net, "Z2", "X") == ["dZ2/dA1", "dA1/dI1", "dI1/dZ1",
                                                         "dZ1/dX"]
    assert chain_order.factor_names(net, "A3", "K1")[-2:] == ["dI1/dZ1", "dZ1/dK1"]


def test_conv_structure_toeplitz_check():
    """Stride 1 gives a doubly block Toeplitz dZ/dA; stride 2 only a stride-2 shift invariance."""
    conv_structure = load("conv_structure")
    A = conv_structure.numbered((1, 6, 6))
    K = conv_structure.numbered((1, 1, 3, 3))
    for stride, toeplitz in ((1, True), (2, False)):
        J = vj.jacobians.conv_wrt_input(K, A.shape, stride, 1)
        out = J.of_shape[-2:]
        D = J.toarray()
        assert conv_structure.shift_invariant(D, out, (6, 6), (1, 1)) is toeplitz
        assert conv_structure.shift_invariant(D, out, (6, 6), (stride, stride))


def test_beyond_gradients_benchmark_rows_check_and_time(monkeypatch):
    """The benchmark's per-sample, NTK and GGN rows run (their results are checked equal to
    PyTorch's and BackPACK's inside, when those are installed) and report positive times."""
    bench = load("bench_beyond")  # puts experiments/ on sys.path: bench_common is imported
    monkeypatch.setattr(sys.modules["bench_common"], "SETTLE", 0.0)
    rows = bench.beyond_rows(1)
    assert [row["quantity"].split(",")[0] for row in rows] == [
        "per-sample gradients", "NTK of 64 digits", "exact GGN"]
    for row in rows:
        assert row["vecjac_ms"] > 0
        assert "torch_ms" in row or row["torch"] == "torch not installed"


def test_gap_mixes_give_the_gradient_and_use_the_forms_they_name():
    """``bench_gap``: every mix of the Jacobian form and back-propagation gives the direct
    gradients; a layer in the Jacobian form builds its Jacobians (``net.build_ms``), a
    back-propagated one builds none; the table has a row per layer and the totals."""
    bench = load("bench_gap")
    net = vj.CNN(input_shape=(1, 8, 8), channels=(2, 3), kernel_size=3, padding=1,
                 activation="sigmoid", pool="avg", pool_size=2, n_out=4, output="softmax",
                 loss="cross_entropy", seed=1)
    rng = np.random.default_rng(2)
    X, y = rng.random((3, 1, 8, 8)), rng.integers(0, 4, 3)
    expected = net.gradients(X, y, method="direct")
    top = len(net.layers) - 1
    for mix in [set(), set(range(top + 1))] + [{i} for i in range(top + 1)]:
        loss, got = bench.mixed_gradients(net, X, y, mix)
        assert loss == pytest.approx(net.loss(X, y), rel=1e-12)
        for theta, value in expected.items():
            np.testing.assert_allclose(got[theta], value, rtol=1e-10, atol=1e-14)
        owners = {net.names.index(key.split("/")[0][1:]) for key in net.build_ms}
        assert owners == mix, (mix, sorted(net.build_ms))

    rows = bench.gap_rows("N", repeat=1, batch=2)
    layers = [row["layer"] for row in rows]
    assert layers[:9] == ["Activation A3", "Dense Z3", "Flatten B2", "Pool2d A2",
                          "Activation I2", "Conv2d Z2", "Pool2d A1", "Activation I1",
                          "Conv2d Z1"]
    assert layers[9:] == ["sum of the layers above", "every layer at once",
                          "library: jacobian - direct"]
    assert rows[9]["extra_ms"] == pytest.approx(sum(row["extra_ms"] for row in rows[:9]))
    assert all(np.isfinite(row["extra/step"]) for row in rows)
