"""Where a training process stands and what it must restore: ranks, devices, seeds, RNG states.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) :func:`setup_distributed`
starts the process group (nccl on CUDA, gloo on CPU); without it every rank is
0 of 1 and nothing is initialised. The RNG helpers put every rank's torch,
CUDA and Python generators into a checkpoint and back, so a resumed run draws
the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from stylenorm.train.checkpoint import Checkpoint
from stylenorm.train.config import ConfigError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: rank, world size, local rank (all 0/1/0 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether a process group is in use."""
        return dist.is_available() and dist.is_initialized()

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) set the environment of a process group."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """The training device: requested, else cuda (the local rank's GPU) if available, else cpu."""
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {requested} asks for CUDA, but torch sees no GPU")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def setup_distributed(requested_device: str | None) -> tuple[Distributed, torch.device]:
    """Init the process group when launched by torchrun; returns (ranks, device)."""
    if not launched_by_torchrun():
        return Distributed(), pick_device(requested_device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = pick_device(requested_device, local)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    return Distributed(rank, world, local), device


# ------------------------------------------------------------------------------------------ RNG


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every GPU) and Python's random."""
    torch.manual_seed(seed)
    random.seed(seed)


# ---------------------------------------------------------------------------------- collectives


def gather(ranks: Distributed, value: Any) -> list[Any]:
    """value of every rank, in rank order (a collective: every rank must call it)."""
    if not ranks.enabled:
        return [value]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, value)
    return out


def rng_tensors(rng_states: list[dict[str, Any]]) -> tuple[dict[str, Tensor], list[Any]]:
    """Every rank's RNG state as checkpoint tensors (``rng.<rank>.torch/cuda``) and the Python states."""
    tensors: dict[str, Tensor] = {}
    for rank, state in enumerate(rng_states):
        tensors[f"rng.{rank}.torch"] = state["torch"]
        if "cuda" in state:
            tensors[f"rng.{rank}.cuda"] = state["cuda"]
    return tensors, [state["python"] for state in rng_states]


def restore_rng(
    ckpt: Checkpoint, ranks: Distributed, device: torch.device, seed: int, step: int
) -> int:
    """Put this rank's RNG back as the checkpoint saved it; returns the rank whose data state to restore.

    With another number of processes the shards cannot continue identically:
    warn, reseed from (seed, rank, step) and restore rank 0's data position.
    """
    meta = ckpt.meta
    if meta["world"] != ranks.world:
        log.warning(
            "checkpoint was written by %d process(es), this run has %d: data shards and RNG states "
            "start afresh, so the continuation is not identical", meta["world"], ranks.world,
        )
        seed_everything(seed + ranks.rank + 104729 * step)
        return 0
    rank = ranks.rank
    state = {"torch": ckpt.tensors[f"rng.{rank}.torch"], "python": meta["python_rng"][rank]}
    if f"rng.{rank}.cuda" in ckpt.tensors:
        state["cuda"] = ckpt.tensors[f"rng.{rank}.cuda"]
    set_rng_state(state, device)
    return rank



__all__ = [
    "Distributed",
    "gather",
    "launched_by_torchrun",
    "pick_device",
    "restore_rng",
    "rng_state",
    "rng_tensors",
    "seed_everything",
    "set_rng_state",
    "setup_distributed",
]
