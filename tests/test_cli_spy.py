"""`vecjac spy` and `vecjac explain --png`, run as a user runs them (`python -m vecjac`)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from matplotlib.image import imread

from vecjac.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def vecjac(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vecjac", *argv], capture_output=True,
                          text=True)


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    grey = imread(path)[..., :3].mean(axis=2)
    assert grey.var() > 1e-3 and (grey < 0.5).mean() > 0.001


def test_spy_draws_a_named_jacobian(tmp_path):
    out = tmp_path / "dz2_da1.png"
    result = vecjac("spy", "--of", "Z2", "--wrt", "A1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Jacobian dZ2/dA1: 256 x 128" in result.stdout  # default net, batch of 2
    assert_png(out)


def test_spy_end_to_end_product_and_layer_alias(tmp_path):
    out = tmp_path / "e2e.png"
    result = vecjac("spy", "--layer", "A3", "--wrt", "K1", "--batch", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Jacobian dA3/dK1: 30 x 36" in result.stdout
    assert_png(out)


def test_spy_bad_name_exits_2_with_the_valid_names(tmp_path):
    result = vecjac("spy", "--of", "Z2", "--wrt", "Q7", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "vecjac spy: error:" in result.stderr and "'A1'" in result.stderr
    assert "'K1'" in result.stderr and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["spy", "dZ9/dA1"], "of must be one of"),
    (["spy", "Z2-A1"], "NAME must look like dZ2/dA1"),
    (["spy", "dZ1/dX", "--input", "5", "--kernel", "7", "--padding", "0"], "kernel size"),
    (["spy", "--stride", "1", "2", "3"], "--stride takes one value"),
    (["spy", "--batch", "0"], "--batch must be a positive int"),
])
def test_spy_bad_input_exits_2(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("vecjac spy: error: ") and err.count("\n") == 1  # one line


def test_spy_usage_error_is_one_line(tmp_path):
    """argparse's errors (an unknown choice) too: one line, exit 2, no usage dump."""
    result = vecjac("spy", "--pool", "median", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("vecjac spy: error: argument --pool: invalid choice")
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()


def test_spy_configured_network_in_process(tmp_path, capsys):
    """Per-layer settings, no pooling in layer 1, max pooling on digits, colour by value."""
    out = tmp_path / "cfg.png"
    argv = ["spy", "dA2/dI2", "--channels", "2", "3", "--kernel", "3", "5", "--padding", "1",
            "2", "--pool", "none", "max", "--stride", "1", "--digits", "--values",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Z2 = Conv2d(3, kernel_size=(5, 5)" in printed and "Jacobian dA2/dI2" in printed
    assert_png(out)


def test_explain_png(tmp_path):
    out = tmp_path / "appendix.png"
    result = vecjac("explain", "--png", str(out))
    assert result.returncode == 0, result.stderr
    assert "dvecZ/dvecbeta (12 x 4)" in result.stdout and str(out) in result.stdout
    assert_png(out)


def test_help_has_examples_for_every_command():
    top = vecjac("--help")
    assert top.returncode == 0 and "vecjac spy" in top.stdout and "explain --png" in top.stdout
    for command in ("spy", "explain"):
        result = vecjac(command, "--help")
        assert result.returncode == 0
        assert "examples:" in result.stdout and f"vecjac {command}" in result.stdout
