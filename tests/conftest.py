"""Shared test helpers: float64 reference formulas, deterministic seeding, one-thread modules."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test that runs the CLI in-process configures logging (its entry point does): undo it afterwards,
    so later tests do not log into a stale capture stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("stylenorm", "uvicorn", "uvicorn.error", "uvicorn.access")
    ours = {name: logging.getLogger(name) for name in names}
    saved = {name: (lg.handlers[:], lg.level, lg.propagate) for name, lg in ours.items()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (h, lvl, prop) in saved.items():
        ours[name].handlers[:] = h
        ours[name].setLevel(lvl)
        ours[name].propagate = prop


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Modules of many small kernels or of training: on a shared 2-core machine a
    multithreaded kernel waits for a descheduled worker, and pytest-xdist
    workers would oversubscribe the cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_norm(x: Tensor, dims: tuple[int, ...], eps: float = 1e-5, correction: int = 0) -> Tensor:
    """(x − mean)/sqrt(var + eps) over dims, written out from the definition."""
    mean = x.mean(dim=dims, keepdim=True)
    m = 1
    for d in dims:
        m *= x.shape[d]
    var = ((x - mean) ** 2).sum(dim=dims, keepdim=True) / (m - correction)
    return (x - mean) / torch.sqrt(var + eps)


def per_channel(t: Tensor) -> Tensor:
    """A (C,) vector viewed as (1, C, 1, 1)."""
    return t.view(1, -1, 1, 1)


def randomize_(module: torch.nn.Module) -> torch.nn.Module:
    """Fill every parameter with random values, so equalities are not trivially true."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand_like(p) + 0.5)
    return module
