"""The command line without tracebacks, training progress, and figures fit for a slide.

* every bad argument of ``vecjac``: one line on stderr, exit code 2, nothing written;
* ``vecjac`` alone prints the help (exit 0), ``--version`` works;
* ``vecjac explain`` takes its example's sizes and writes Z out as the note's rep.2;
* ``vecjac demo --epochs 1`` is not a failure; progress has no carriage returns off a terminal;
* integer-like numpy scalars are ints, ``bool`` is not;
* the figures: math-text titles, a colour bar only for values, zero-centred diverging colours
  for signed values, grid lines that switch off when blocks get small.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

import vecjac as vj
from vecjac import plot
from vecjac.cli import main


def vecjac(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vecjac", *argv], capture_output=True,
                          text=True, cwd=cwd)


def one_line_error(result_or_err: str, prefix: str) -> None:
    assert result_or_err.startswith(prefix), result_or_err
    assert result_or_err.count("\n") == 1, result_or_err
    assert "Traceback" not in result_or_err


# --- bad arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, prefix, message", [
    (["demo", "--epochs", "0"], "vecjac demo: error:", "--epochs: expected a positive int"),
    (["demo", "--epochs", "-3"], "vecjac demo: error:", "--epochs: expected a positive int"),
    (["demo", "--epochs", "two"], "vecjac demo: error:", "expected a positive int"),
    (["demo", "--seed", "-1"], "vecjac demo: error:", "--seed: expected an int >= 0"),
    (["demo", "--out", "/missing/dir/figures"], "vecjac demo: error:", "does not exist"),
    (["explain", "--png", "/missing/dir/a.png"], "vecjac explain: error:", "does not exist"),
    (["explain", "--png", "a.txt"], "vecjac explain: error:", ".png, .svg or .pdf"),
    (["explain", "--input", "3", "4", "5"], "vecjac explain: error:", "one or two ints"),
    (["explain", "--input", "20", "20"], "vecjac explain: error:", "at most 64"),
    (["explain", "--kernel", "9"], "vecjac explain: error:", "larger than the padded input"),
    (["explain", "--stride", "0"], "vecjac explain: error:", "expected a positive int"),
    (["explain", "--padding", "-1"], "vecjac explain: error:", "expected an int >= 0"),
    (["spy", "--size", "-1"], "vecjac spy: error:", "--size: expected inches"),
    (["spy", "--size", "nan"], "vecjac spy: error:", "--size: expected inches"),
    (["spy", "--dpi", "0"], "vecjac spy: error:", "--dpi: expected a positive int"),
    (["spy", "--size", "100", "--dpi", "300"], "vecjac spy: error:", "pixels a side"),
    (["spy", "--out", "foo.txt"], "vecjac spy: error:", ".png, .svg or .pdf"),
    (["spy", "--out", "/missing/dir/x.png"], "vecjac spy: error:", "does not exist"),
    (["spy", "--grid", "maybe"], "vecjac spy: error:", "invalid choice"),
    (["spy", "--seed", "-2"], "vecjac spy: error:", "expected an int >= 0"),
    (["frobnicate"], "vecjac: error:", "invalid choice"),
    (["--bogus"], "vecjac: error:", "unrecognized arguments"),
])
def test_bad_argument_is_one_line_and_exit_2(argv, prefix, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's own errors exit, the others return
        raise SystemExit(main(argv))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    one_line_error(err, prefix)
    assert message in err
    assert not list(tmp_path.iterdir())


def test_bad_arguments_as_a_user_runs_them(tmp_path):
    """The same through ``python -m vecjac``: no traceback, nothing created."""
    for argv in (["demo", "--epochs", "0"], ["explain", "--png", str(tmp_path / "no/a.png")],
                 ["spy", "--out", str(tmp_path / "no" / "x.png")], ["spy", "--dpi", "0"]):
        result = vecjac(*argv, cwd=tmp_path)
        assert result.returncode == 2, (argv, result.stderr)
        one_line_error(result.stderr, "vecjac ")
    assert not list(tmp_path.iterdir())


def test_output_folder_rules(tmp_path, capsys):
    """spy and explain write into an existing folder; a folder given as the file is refused."""
    assert main(["spy", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".svg", ".pdf"])
def test_spy_writes_vector_formats(suffix, tmp_path):
    out = tmp_path / f"j{suffix}"
    assert main(["spy", "dZ1/dX", "--out", str(out), "--grid", "off"]) == 0
    assert out.stat().st_size > 1000


def test_plain_vecjac_prints_the_help_and_version():
    result = vecjac()
    assert result.returncode == 0 and result.stdout.startswith("usage: vecjac")
    assert "demo" in result.stdout and "explain" in result.stdout and not result.stderr
    version = vecjac("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"vecjac {vj.__version__}"


# --- explain ------------------------------------------------------------------------------------
def test_explain_writes_z_entry_by_entry(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "The note's appendix (section 4): A 3x4, beta 2x2, padding (1, 1), stride (1, 2)" in out
    lines = out.splitlines()
    assert "z_32 = a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22" in lines
    assert "z_11 = a_11 beta_22" in lines and "z_43 = a_34 beta_11" in lines


def test_explain_takes_sizes_stride_and_padding(capsys, tmp_path):
    png = tmp_path / "conv.png"
    argv = ["explain", "--input", "3", "3", "--kernel", "2", "--stride", "1", "--padding", "0",
            "--png", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "A 3x3, beta 2x2, padding (0, 0), stride (1, 1)" in out
    assert "Z = A * beta is 2x2" in out
    assert "z_11 = a_11 beta_11 + a_12 beta_12 + a_21 beta_21 + a_22 beta_22" in out.splitlines()
    assert "dvecZ/dvecbeta (4 x 4)" in out and "dvecZ/dvecA (4 x 9)" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


# --- demo and training progress -----------------------------------------------------------------
def test_short_demo_is_not_a_failure(tmp_path, capsys):
    out = tmp_path / "new"  # demo --out creates its own folder
    assert main(["demo", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "all checks passed" in printed.out and "SOME CHECKS FAILED" not in printed.out
    assert "not checked" in printed.out and "training 1 epoch " in printed.out
    assert "epoch 1/1: loss" in printed.err  # --no-progress hides the bar, not the lines
    assert (out / "chain.png").exists()


def test_progress_off_a_terminal_has_no_carriage_returns(capsys):
    data = vj.data.load_digits()
    net = vj.CNN(channels=(2,), seed=0)
    vj.train(net, data.X_train[:64], data.y_train[:64], epochs=2, batch_size=16)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert err.splitlines()[0].startswith("epoch 1/2: loss")


def test_integer_like_numpy_scalars_are_ints_and_bool_is_not():
    data = vj.data.load_digits()
    net = vj.CNN(channels=(2,), seed=np.int64(0))
    history = vj.train(net, data.X_train[:40], data.y_train[:40], epochs=np.int64(1),
                       batch_size=np.int32(20), seed=np.int64(3), progress=False,
                       max_steps=np.int64(1))
    assert len(history["loss"]) == 1
    for bad in (dict(epochs=True), dict(batch_size=True), dict(seed=False), dict(epochs=1.0)):
        with pytest.raises(TypeError, match="must be an int"):
            vj.train(net, data.X_train[:8], data.y_train[:8], progress=False, **bad)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        vj.train(net, data.X_train[:8], data.y_train[:8], epochs=np.int64(0), progress=False)


# --- figures ------------------------------------------------------------------------------------
def conv_jacobian():
    rng = np.random.default_rng(0)
    K = rng.standard_normal((3, 2, 3, 3))
    return vj.jacobians.conv_wrt_input(K, (2, 6, 6), stride=2, padding=1)


def test_math_symbols():
    assert plot.math_symbol("dZ2/dA1") == (
        r"$\partial\,\mathrm{vec}\,Z_{2} \,/\, \partial\,\mathrm{vec}\,A_{1}$")
    assert plot.math_symbol("dJ/dA3", scalar=True).startswith(r"$\partial J")
    assert plot.math_name("I1_2") == "I_{1,2}" and plot.math_name("beta_12") == r"\beta_{12}"
    assert plot.math_name("x$y") == r"\mathrm{x\$y}"


def test_pattern_has_no_colour_bar_and_values_have_one(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plot, "_save", lambda fig, path, dpi: figures.append(fig) or path)
    J = conv_jacobian()
    plot.save_spy(J, tmp_path / "p.png")
    plot.save_spy(J, tmp_path / "v.png", values=True)
    pattern, values = figures
    assert len(pattern.axes) == 1 and len(values.axes) == 2  # the second is the colour bar
    assert pattern.axes[0].get_title() == plot.math_symbol("dZ/dA")


def test_signed_values_are_centred_at_zero():
    J = conv_jacobian()
    ax = Figure().add_subplot()
    drawn = plot.spy(J, ax, values=True)
    low, high = drawn.get_clim()
    assert drawn.get_cmap().name == "RdBu_r" and low == -high and high > 0
    positive = vj.Jacobian(abs(J.matrix), J.of, J.wrt, J.of_shape, J.wrt_shape)
    drawn = plot.spy(positive, Figure().add_subplot(), values=True)
    assert drawn.get_cmap().name == "viridis" and drawn.get_clim()[0] >= 0


def test_grid_switches_off_when_blocks_get_small():
    net = vj.CNN(input_shape=(1, 16, 16), channels=(8, 16))
    X = np.random.default_rng(0).random((8, 1, 16, 16))
    J = net.jacobian(X, of="Z2", wrt="A1")  # 8 samples x 16 channels of 8x8 rows
    ax = Figure(figsize=(4, 4)).add_subplot()
    plot.spy(J, ax)
    assert ax.vecjac_grid == ["thick"]  # samples kept, 127 channel lines dropped
    for grid, kinds in ((True, ["thick", "thin"]), (False, [])):
        ax = Figure(figsize=(4, 4)).add_subplot()
        plot.spy(J, ax, grid=grid)
        assert ax.vecjac_grid == kinds
    with pytest.raises(ValueError, match="grid must be"):
        plot.spy(J, Figure().add_subplot(), grid="sometimes")


def test_ticks_sit_on_block_boundaries():
    ax = Figure().add_subplot()
    plot.spy(conv_jacobian(), ax)  # 27 x 72: rows in blocks of 9, columns in blocks of 36
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "9", "18", "27"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "36", "72"]


def test_no_text_under_9_points(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plot, "_save", lambda fig, path, dpi: figures.append(fig) or path)
    data = vj.data.load_digits()
    net = vj.CNN()
    jacobians = net.jacobians(data.X_train[:2], data.y_train[:2])
    plot.chain_figure(jacobians, tmp_path / "c.png", title="chain")
    plot.save_spy(jacobians["dZ2/dA1"], tmp_path / "s.png", values=True)
    plot.appendix_figure(vj.symbolic.appendix_example(), tmp_path / "a.png")
    plot.loss_curve({"a": {"loss": [1, 0.5], "test_accuracy": [0.5, 0.7]}}, tmp_path / "l.png")
    plot.bar_chart([plot.math_symbol("dA3/dX")], {"flops": {"reverse": [2e6], "forward": [3e5]}},
                   tmp_path / "b.png", title="orders")
    for fig in figures:
        FigureCanvasAgg(fig).draw()  # lays out every tick label
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
        assert len(sizes) > 10 and min(sizes) >= 9, min(sizes)
