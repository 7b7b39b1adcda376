"""What every figure script shares: where figures go and the ``--quick`` / ``--out`` options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

FIGURES = Path(__file__).resolve().parent / "figures"


def figure_args(
    doc: str,
    quick_help: str,
    argv: list[str] | None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse ``--quick`` and ``--out DIR`` (default ``experiments/figures``), plus whatever
    ``extra`` adds; create the output folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=FIGURES, help=f"folder (default {FIGURES})")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args
