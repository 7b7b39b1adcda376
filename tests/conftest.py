"""Shared test configuration: a seeded generator and the hypothesis profiles.

Every test is deterministic.  Tests take the ``rng`` fixture (a fresh
``np.random.default_rng(0)`` per test); hypothesis tests draw their own seed instead, since a
function-scoped fixture is not reset between hypothesis examples.

Profiles: ``default`` (40 examples, no deadline) for local runs, ``ci`` (25 examples,
derandomized) when the ``CI`` environment variable is set.

This directory is on ``sys.path`` (pytest's rootdir-conftest insertion), so test modules
import the naive oracle as ``from oracles import ...``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=40)
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator for each test."""
    return np.random.default_rng(0)
