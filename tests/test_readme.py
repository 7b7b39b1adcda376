"""Every code block of the README runs.

* ``python`` blocks are executed in a temporary folder, each in a fresh namespace; a block that
  imports torch is skipped (with the reason) when PyTorch is not installed.
* ``bash`` lines that call ``vecjac`` run through the CLI's ``main`` (in process).
* The quick-start block is the install itself (checked by ``.ci/run`` in a fresh virtual
  environment), and the experiments loop is run in ``--quick`` mode by
  ``test_experiments.py``; the plain output blocks (``vecjac explain``'s listing, the
  benchmark table) are checked where they come from.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import matplotlib
import pytest

from vecjac.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON = re.findall(r"^```python\n(.*?)^```", TEXT, re.S | re.M)
BASH = re.findall(r"^```bash\n(.*?)^```", TEXT, re.S | re.M)
VECJAC_LINES = [line.split("  #")[0].strip() for block in BASH for line in block.splitlines()
                if line.startswith("vecjac ")]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_the_readme_has_its_blocks():
    assert len(PYTHON) >= 4 and len(VECJAC_LINES) >= 7
    quick_start = BASH[0].strip().splitlines()
    assert quick_start == ['pip install . && vecjac demo', 'pip install ".[test]" && pytest']


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{k}" for k in range(len(PYTHON))])
def test_python_block_runs(code, tmp_path, monkeypatch, capsys):
    if "import torch" in code and not HAS_TORCH:
        pytest.skip("this README block needs PyTorch, which is not installed")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    code = code.replace("progress=True", "progress=False")
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("line", VECJAC_LINES)
def test_vecjac_line_runs(line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(line)[1:]) == 0, capsys.readouterr().err
