"""``vecjac.from_torch`` without torch: vecjac imports, and the call says how to install it.

Runs whether or not torch is installed (``sys.modules["torch"] = None`` makes the import fail
as a missing package does); the conversion itself is ``test_from_torch.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import vecjac as vj


def test_missing_torch_is_a_one_line_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"needs PyTorch.*pip install torch") as caught:
        vj.from_torch(object(), (1, 8, 8))
    assert "\n" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_importing_vecjac_does_not_import_torch():
    code = "import sys, vecjac; assert vecjac.from_torch; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
