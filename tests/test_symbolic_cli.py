"""`vecjac explain` against the note's appendix as printed, and `vecjac demo`'s exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vecjac.cli import main
from vecjac.symbolic import appendix_example, symbolic_conv

# rep.2 of the note, typed from the text (terms in the order the note writes them).
REP2 = [
    ["a_11 beta_22", "a_12 beta_21 + a_13 beta_22", "a_14 beta_21"],
    ["a_11 beta_12 + a_21 beta_22",
     "a_12 beta_11 + a_13 beta_12 + a_22 beta_21 + a_23 beta_22",
     "a_14 beta_11 + a_24 beta_21"],
    ["a_21 beta_12 + a_31 beta_22",
     "a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22",
     "a_24 beta_11 + a_34 beta_21"],
    ["a_31 beta_12", "a_32 beta_11 + a_33 beta_12", "a_34 beta_11"],
]


def test_appendix_rep2_entry_by_entry():
    assert appendix_example().Z == REP2


def test_appendix_dZ_dbeta_column_beta21_is_A_star_unit():
    """eq.a1-3: the beta_21 column of dvecZ/dvecbeta is vec(A * dbeta/dbeta_21)."""
    s = appendix_example()
    col = s.beta_labels.index("beta_21")
    column = [row[col] for row in s.dZ_dbeta]
    # from rep.2: z_pq's coefficient of beta_21, rows in vec(Z) order z_11, z_21, ..., z_43
    expected = ["0", "0", "0", "0", "a_12", "a_22", "a_32", "0", "a_14", "a_24", "a_34", "0"]
    assert column == expected
    assert s.dZ_dbeta[s.row_labels.index("z_32")][col] == "a_32"


def test_appendix_dZ_dA_entry_z32_A23():
    s = appendix_example()
    assert s.dZ_dA[s.row_labels.index("z_32")][s.a_labels.index("a_23")] == "beta_12"


def test_labels_are_in_vec_order():
    s = appendix_example()
    assert s.beta_labels == ["beta_11", "beta_21", "beta_12", "beta_22"]
    assert s.row_labels[:5] == ["z_11", "z_21", "z_31", "z_41", "z_12"]


def test_every_window_in_padding_gives_zero():
    s = symbolic_conv((1, 1), (1, 1), stride=1, padding=1)  # 3x3 output, one real input
    assert s.Z == [["0", "0", "0"], ["0", "a_11 beta_11", "0"], ["0", "0", "0"]]
    assert [row[0] for row in s.dZ_dbeta] == ["0"] * 4 + ["a_11"] + ["0"] * 4


def test_explain_prints_the_appendix(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22" in out
    assert "dvecZ/dvecbeta (12 x 4)" in out and "dvecZ/dvecA (12 x 12)" in out


def test_demo_passes_its_checks(capsys, tmp_path):
    """The main job, end to end, as a user runs it (writes its figures into tmp_path)."""
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "dvecZ2/dvecA1" in out
    assert (tmp_path / "chain.png").stat().st_size > 10_000
    assert (tmp_path / "loss.png").exists() and (tmp_path / "dZ2_dA1.png").exists()


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["explain", "--help"]])
def test_help_is_complete(argv):
    result = subprocess.run(
        [sys.executable, "-m", "vecjac", *argv], capture_output=True, text=True, check=True
    )
    assert "usage: vecjac" in result.stdout
