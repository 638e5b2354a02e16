"""Training tests run real conv nets: one intra-op thread each, so two pytest-xdist workers on two
cores do not oversubscribe them (OpenMP threads that spin-wait for a busy core slow both ~20×)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")  # before the modules' own fixtures train anything
def _one_thread(one_thread: None) -> None:
    """Every training module runs single-threaded (tests/conftest.py's one_thread)."""
