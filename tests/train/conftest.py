"""Training tests run real conv nets: one intra-op thread each, so two pytest-xdist workers on two
cores do not oversubscribe them (OpenMP threads that spin-wait for a busy core slow both ~20×)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")  # before the modules' own fixtures train anything
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
