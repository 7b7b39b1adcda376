"""LaTeX export of the symbolic Jacobians, against the note's appendix written out by hand."""

from __future__ import annotations

from vecjac.symbolic import appendix_example, symbolic_conv, to_latex


def test_appendix_latex_has_the_notes_entries():
    tex = appendix_example().to_latex()
    # rep.2 of the note: z_32 = a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22
    assert r"a_{22}\beta_{11} + a_{23}\beta_{12} + a_{32}\beta_{21} + a_{33}\beta_{22}" in tex
    assert tex.startswith("Z = \\begin{bmatrix}\n")
    assert tex.count("\\begin{bmatrix}") == tex.count("\\end{bmatrix}") == 3
    assert tex.count("{") == tex.count("}")
    blocks = tex.split("\\begin{bmatrix}\n")[1:]
    rows = [block.split("\n\\end{bmatrix}")[0].split(" \\\\\n") for block in blocks]
    assert [len(r) for r in rows] == [4, 12, 12]  # Z is 4x3; both Jacobians have 12 rows
    assert [r[0].count("&") + 1 for r in rows] == [3, 4, 12]


def test_any_small_symbolic_jacobian():
    s = symbolic_conv((2, 3), 2, stride=1, padding=0, a="x", k="k")
    assert to_latex(s.dZ_dA).splitlines()[1] == "k_{11} & k_{21} & k_{12} & k_{22} & 0 & 0 \\\\"


def test_explain_latex_on_the_command_line(capsys):
    from vecjac.cli import main

    assert main(["explain", "--latex"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Z = \\begin{bmatrix}") and out.count("\\end{bmatrix}") == 3
    assert main(["explain", "--latex", "--input", "2", "3", "--kernel", "2", "--stride", "1",
                 "--padding", "0"]) == 0
    assert "k_" not in capsys.readouterr().out  # the CLI names the kernel beta
