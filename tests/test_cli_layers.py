"""`vecjac spy` with any number of conv layers: per-layer options, library choices, errors
that name the layer, and every example of `vecjac spy --help` run as written."""

from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
import sys

import pytest

from vecjac import direct, network
from vecjac.cli import _parser, main

FAST = ["--batch", "1", "--size", "1.5", "--dpi", "30"]  # small figures: the tests are fast


def spy(argv: list[str], tmp_path, capsys, fast: bool = True) -> tuple[int, str, str]:
    """``main(["spy", *argv])`` with ``--out`` into ``tmp_path``: exit code, stdout, stderr;
    a usage error (argparse's ``SystemExit``) counts as its exit code."""
    argv = ["spy", *argv, *(FAST if fast else []), "--out", str(tmp_path / "spy.png")]
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *messages: str) -> None:
    assert code == 2
    assert err.startswith("vecjac spy: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for message in messages:
        assert message in err, err


def spy_help() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as stop:
        main(["spy", "--help"])
    assert stop.value.code == 0
    return buffer.getvalue()


def spy_examples() -> list[str]:
    """The example lines of ``vecjac spy --help``, comments dropped."""
    help_text = spy_help()
    lines = help_text[help_text.index("examples:"):].splitlines()[1:]
    return [line.split("#")[0].strip() for line in lines if line.strip().startswith("vecjac")]


def spy_action(dest: str):
    spy_parser = next(a for a in _parser()._subparsers._group_actions).choices["spy"]
    return next(a for a in spy_parser._actions if a.dest == dest)


# --- three conv layers --------------------------------------------------------------------
THREE = ["--channels", "2", "3", "4"]  # 8x8 input: 8 -> 4 -> 2 -> 1 after each pooling


@pytest.mark.parametrize("name, shape", [
    ("dZ3/dA2", "32 x 24"),    # conv layer 3: (4, 2, 2) from A2 (3, 2, 2), batch of 2
    ("dA4/dX", "20 x 128"),    # the FC layer is block 4: A4 = softmax(Z4), 10 outputs
    ("dZ4/dB3", "20 x 8"),     # B3 = vec(A3), 4 features per sample
    ("dZ4/dW4", "20 x 40"),    # W4 (4 x 10)
    ("dA4/dK3", "20 x 108"),   # K3 (4, 3, 3, 3), an end-to-end product
    ("dA3/dI3", "8 x 32"),     # the third pooling
    ("dJ/dK1", "1 x 18"),      # the loss, from the labels
])
def test_three_conv_layers(name, shape, tmp_path, capsys):
    code, out, err = spy([name, *THREE, "--batch", "2"], tmp_path, capsys, fast=False)
    assert code == 0, err
    assert f"Jacobian {name}: {shape}" in out
    for line in ("Z3 = Conv2d(4,", "A3 = Pool2d('avg'", "B3 = Flatten()", "Z4 = Dense(10)",
                 "A4 = Activation('softmax')"):
        assert line in out
    assert (tmp_path / "spy.png").stat().st_size > 0


def test_three_conv_layers_names_in_the_error(tmp_path, capsys):
    """A name of the two-layer network that is not on the three-layer chain lists the names."""
    code, _, err = spy(["dA4/dW3", *THREE], tmp_path, capsys)
    assert_one_line_error(code, err, "'K3'", "'W4'", "'b4'")


@pytest.mark.parametrize("argv, lines", [
    (["--input", "16", "--stride", "1", "2", "1", "--padding", "1", "1", "0", "--kernel", "3",
      "3", "1"],
     ["Z1 = Conv2d(2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
      "Z2 = Conv2d(3, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))",
      "Z3 = Conv2d(4, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0))"]),
    (["--activation", "relu", "tanh", "softplus"],
     ["I1 = Activation('relu')", "I2 = Activation('tanh')", "I3 = Activation('softplus')"]),
])
def test_per_layer_conv_settings(argv, lines, tmp_path, capsys):
    code, out, err = spy(["dA4/dX", *THREE, *argv], tmp_path, capsys)
    assert code == 0, err
    for line in lines:
        assert line in out


# --- pooling per layer --------------------------------------------------------------------
@pytest.mark.parametrize("argv, lines", [
    (["--pool", "max", "avg", "l2", "--pool-size", "3", "2", "2", "--pool-stride", "1", "size",
      "2", "--pool-padding", "1", "0", "0"],
     ["A1 = Pool2d('max', size=(3, 3), stride=(1, 1), padding=(1, 1))  -> (2, 8, 8)",
      "A2 = Pool2d('avg', size=(2, 2), stride=(2, 2), padding=(0, 0))  -> (3, 4, 4)",
      "A3 = Pool2d('l2', size=(2, 2), stride=(2, 2), padding=(0, 0))  -> (4, 2, 2)"]),
    (["--pool", "none", "max", "avg", "--pool-stride", "2", "--pool-padding", "0", "1", "0"],
     ["A1 = Activation('identity')  -> (2, 8, 8)",
      "A2 = Pool2d('max', size=(2, 2), stride=(2, 2), padding=(1, 1))  -> (3, 5, 5)",
      "A3 = Pool2d('avg', size=(2, 2), stride=(2, 2), padding=(0, 0))  -> (4, 2, 2)"]),
    (["--pool", "avg", "--pool-size", "2", "3", "1", "--pool-stride", "2", "1", "size"],
     ["A1 = Pool2d('avg', size=(2, 2), stride=(2, 2)", "A2 = Pool2d('avg', size=(3, 3), "
      "stride=(1, 1)", "A3 = Pool2d('avg', size=(1, 1), stride=(1, 1)"]),
    (["--pool", "l2", "--pool-size", "2x1", "--pool-stride", "1x1", "--pool-padding", "0x1"],
     ["A1 = Pool2d('l2', size=(2, 1), stride=(1, 1), padding=(0, 1))  -> (2, 7, 10)"]),
])
def test_per_layer_pool_settings(argv, lines, tmp_path, capsys):
    code, out, err = spy(["dA4/dX", *THREE, *argv], tmp_path, capsys)
    assert code == 0, err
    for line in lines:
        assert line in out


def test_pool_stride_defaults_to_the_pool_size(tmp_path, capsys):
    code, out, err = spy(["dA1/dI1", "--channels", "2", "--pool-size", "4"], tmp_path, capsys)
    assert code == 0, err
    assert "A1 = Pool2d('avg', size=(4, 4), stride=(4, 4), padding=(0, 0))" in out


# --- choices from the library -------------------------------------------------------------
ELEMENTWISE = [a for a in direct.ACTIVATIONS if a != "softmax"]


def test_choices_are_the_librarys():
    assert list(spy_action("activation").choices) == ELEMENTWISE
    assert list(spy_action("output").choices) == list(network._OUTPUTS)
    assert list(spy_action("pool").choices) == [*direct.POOL_KINDS, "none"]
    assert list(spy_action("loss").choices) == list(direct.LOSSES)
    help_text = spy_help()
    for kind in (*ELEMENTWISE, *direct.POOL_KINDS, *network._OUTPUTS, *direct.LOSSES):
        assert kind in help_text


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_each_conv_activation(activation, tmp_path, capsys):
    code, out, err = spy(["dA2/dX", "--channels", "2", "--activation", activation], tmp_path,
                         capsys)
    assert code == 0, err
    assert f"I1 = Activation({activation!r}" in out


@pytest.mark.parametrize("output", network._OUTPUTS)
@pytest.mark.parametrize("loss", direct.LOSSES)
def test_each_output_and_loss(output, loss, tmp_path, capsys):
    code, out, err = spy(["dJ/dZ3", "--n-out", "3", "--output", output, "--loss", loss],
                         tmp_path, capsys)
    assert code == 0, err
    assert f"A3 = Activation({output!r})" in out and f"loss={loss!r}" in out
    assert "Jacobian dJ/dZ3: 1 x 3" in out


@pytest.mark.parametrize("pool", [*direct.POOL_KINDS, "none"])
def test_each_pool_kind(pool, tmp_path, capsys):
    code, out, err = spy(["dA1/dI1", "--pool", pool], tmp_path, capsys)
    assert code == 0, err
    assert ("A1 = Activation('identity')" if pool == "none" else f"Pool2d({pool!r}") in out


@pytest.mark.parametrize("option, value, message", [
    ("--activation", "softmax", "invalid choice: 'softmax'"),
    ("--activation", "gelu", "invalid choice: 'gelu'"),
    ("--pool", "min", "invalid choice: 'min'"),
    ("--output", "relu", "invalid choice: 'relu'"),
    ("--loss", "hinge", "invalid choice: 'hinge'"),
])
def test_unknown_kinds_refused(option, value, message, tmp_path, capsys):
    code, _, err = spy([option, value], tmp_path, capsys)
    assert_one_line_error(code, err, f"argument {option}", message)
    assert not (tmp_path / "spy.png").exists()


# --- counts -------------------------------------------------------------------------------
PER_LAYER = {"--kernel": "3", "--stride": "1", "--padding": "1", "--activation": "relu",
             "--pool": "avg", "--pool-size": "2", "--pool-stride": "2", "--pool-padding": "0"}


@pytest.mark.parametrize("option", PER_LAYER)
@pytest.mark.parametrize("channels, count", [(["2", "3", "4"], 2), (["2", "3", "4"], 4),
                                             (["2", "3"], 3), (["2"], 2)])
def test_wrong_counts_refused(option, channels, count, tmp_path, capsys):
    n = len(channels)
    code, _, err = spy(["--channels", *channels, option, *[PER_LAYER[option]] * count],
                       tmp_path, capsys)
    layers = f"{n} conv layer{'s' if n > 1 else ''}"
    assert_one_line_error(code, err, f"{option} takes one value for every conv layer",
                          f"({layers}, --channels {' '.join(channels)}), got {count}")


@pytest.mark.parametrize("option", PER_LAYER)
def test_one_value_or_one_per_layer_accepted(option, tmp_path, capsys):
    for count in (1, 3):
        argv = ["dA4/dX", *THREE, option, *[PER_LAYER[option]] * count]
        code, _, err = spy(argv, tmp_path, capsys)
        assert code == 0, err


# --- non-square values: HxW ---------------------------------------------------------------
@pytest.mark.parametrize("argv, lines", [
    (["--kernel", "3x5", "--padding", "1x2", "--stride", "1x2", "--pool-size", "2x1"],
     ["Z1 = Conv2d(4, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2))  -> (4, 8, 4)",
      "A1 = Pool2d('avg', size=(2, 1), stride=(2, 1), padding=(0, 0))  -> (4, 4, 4)",
      "Z2 = Conv2d(8, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2))  -> (8, 4, 2)"]),
    (["--kernel", "3x1", "3", "--stride", "2X1", "1"],  # one pair per layer, any case of x
     ["Z1 = Conv2d(4, kernel_size=(3, 1), stride=(2, 1), padding=(1, 1))  -> (4, 4, 10)",
      "Z2 = Conv2d(8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))  -> (8, 2, 5)"]),
    (["--input", "16", "--channels", "2", "3", "4", "--padding", "1x0", "1", "0x1"],
     ["Z1 = Conv2d(2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 0))  -> (2, 16, 14)",
      "Z3 = Conv2d(4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 1))  -> (4, 2, 3)"]),
])
def test_non_square_values(argv, lines, tmp_path, capsys):
    code, out, err = spy(["dZ1/dX", *argv], tmp_path, capsys)
    assert code == 0, err
    for line in lines:
        assert line in out


def test_a_pair_with_two_conv_layers_applies_to_both(tmp_path, capsys):
    """``--stride 1x2`` is never read as one value per layer (CNN's two-int tuple rule)."""
    code, out, err = spy(["dZ2/dA1", "--input", "16", "--stride", "1x2"], tmp_path, capsys)
    assert code == 0, err
    assert out.count("stride=(1, 2), padding=(1, 1))") == 2


@pytest.mark.parametrize("option, value", [
    ("--stride", "1x"), ("--kernel", "3x5x7"), ("--padding", "a"), ("--pool-size", "2.5"),
    ("--pool-stride", "x2"), ("--pool-padding", "1,1"),
])
def test_malformed_sizes_refused(option, value, tmp_path, capsys):
    code, _, err = spy([option, value], tmp_path, capsys)
    assert_one_line_error(code, err, f"argument {option}", "HxW", repr(value))


# --- errors that name the layer -----------------------------------------------------------
README_EXAMPLE = ["dA3/dX", "--input", "16", "--stride", "2", "--padding", "0"]


def test_readme_example_configuration_names_the_layer(tmp_path, capsys):
    """16 -> conv 7 -> pool 3 -> conv 1: the second pooling has nothing to pool."""
    code, _, err = spy(README_EXAMPLE, tmp_path, capsys)
    assert_one_line_error(code, err, "layer 6, Pool2d('avg', size=(2, 2)", "giving A2",
                          "input of shape (8, 1, 1)", "pool size (2, 2) is larger than the "
                          "padded input (1, 1)")


def test_readme_example_configuration_as_a_user_runs_it(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vecjac", "spy", *README_EXAMPLE, "--out",
                             str(tmp_path / "x.png")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("vecjac spy: error: layer 6, Pool2d(")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, messages", [
    (["--pool", "max", "--pool-padding", "2"],  # refused by Pool2d whatever its input
     ["layer 3, Pool2d('max', size=2, stride=None, padding=2) (giving A1)", "half"]),
    (["--channels", "2", "3", "--stride", "1", "0"],
     ["layer 4, Conv2d(3, kernel_size=3, stride=0, padding=1) (giving Z2)", "stride"]),
    ([*THREE, "--pool-stride", "1", "1", "0"],
     ["layer 9, Pool2d('avg', size=2, stride=0, padding=0) (giving A3)", "pool stride"]),
    ([*THREE, "--kernel", "3", "3", "0x3"],
     ["layer 7, Conv2d(4, kernel_size=(0, 3)", "(giving Z3)", "kernel_size"]),
    ([*THREE, "--input", "4"],  # 4 -> 2 -> 1: the third pooling does not fit
     ["layer 9, Pool2d('avg'", "giving A3, input of shape (4, 1, 1)"]),
    (["--input", "5", "--kernel", "7", "--padding", "0"],
     ["layer 1, Conv2d(4, kernel_size=(7, 7)", "giving Z1", "kernel size"]),
])
def test_settings_that_do_not_fit_name_the_layer(argv, messages, tmp_path, capsys):
    code, _, err = spy(["dZ1/dX", *argv], tmp_path, capsys)
    assert_one_line_error(code, err, *messages)


# --- help -----------------------------------------------------------------------------------
def test_help_states_the_rules():
    help_text = " ".join(spy_help().split())
    assert "Settings given twice apply to (layer 1, layer 2)" not in help_text
    for phrase in ("one value per conv layer", "HxW", "Z{l}", "I{l}", "A{l}", "B{L}", "K{l}",
                   "b{l}", "W{L+1}", "block 4, with B3, Z4, A4, W4, b4", "--pool-stride",
                   "--pool-padding"):
        assert phrase in help_text, phrase


EXAMPLES = spy_examples()


def test_help_has_examples():
    assert len(EXAMPLES) >= 6
    assert any("--channels 2 3 4" in line for line in EXAMPLES)
    assert any("x" in word for line in EXAMPLES for word in line.split()[3:]
               if word[0].isdigit())


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_help_example_runs(example, tmp_path, capsys):
    argv = shlex.split(example)
    assert argv[:2] == ["vecjac", "spy"]
    code = main([*argv[1:], "--out", str(tmp_path / "example.png")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "example.png").stat().st_size > 0
