"""What every figure script shares: where figures go and the ``--quick`` / ``--out`` options.

A run writes its figures to ``./vecjac-out/figures`` by default, a folder git ignores, so
running an experiment never changes the repository by accident (``scaling.png`` and
``chain_order.png`` carry timings and differ on every run).  The figures the README shows
live in ``experiments/figures``; refresh them on purpose with ``--out experiments/figures``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

FIGURES = Path(__file__).resolve().parent / "figures"  # the committed figures (README)
DEFAULT_OUT = Path("vecjac-out") / "figures"  # fresh runs, relative to the current folder

OUT_HELP = (f"folder for the figures (default ./{DEFAULT_OUT.as_posix()}, which git ignores); "
            "--out experiments/figures refreshes the figures the README shows")
EPILOG = ("Figures go to ./vecjac-out/figures unless --out says otherwise, so a run never "
          "dirties the repository; to refresh the committed figures of the README, run from "
          "the repository root with --out experiments/figures.")


def figure_args(
    doc: str,
    quick_help: str,
    argv: list[str] | None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse ``--quick`` and ``--out DIR`` (default ``./vecjac-out/figures``), plus whatever
    ``extra`` adds; create the output folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0], epilog=EPILOG)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=OUT_HELP)
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args
