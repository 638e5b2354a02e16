"""Training checkpoints as safetensors: tensors by key, everything else as JSON metadata. No pickle.

Layout of one file:

* ``model.<key>``: the model's state dict;
* ``optim.state.<param_idx>.<name>``: the optimizer's per-parameter tensors
  (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``);
* any other tensors the caller adds under its own prefix (RNG states: ``rng.…``);
* metadata ``stylenorm.checkpoint``: one JSON object with the optimizer's
  param groups and non-tensor state, and the caller's scalars (step, scheduler,
  config, Python RNG, data position …). safetensors metadata is str → str.

Files are written atomically (temporary file, fsync, ``os.replace``), so a
crash while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import Tensor

from stylenorm.errors import StylenormError
from stylenorm.repository import atomic_write

FORMAT = 1
META_KEY = "stylenorm.checkpoint"
MODEL_PREFIX = "model."
OPTIM_PREFIX = "optim.state."
_NAME = re.compile(r"^step-(\d+)\.safetensors$")

log = logging.getLogger(__name__)


class CheckpointError(StylenormError):
    """A checkpoint file is missing, unreadable or not a stylenorm training checkpoint."""


def flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> ({optim.state.<idx>.<name>: tensor}, JSON-able rest)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if isinstance(value, Tensor):
                tensors[f"{OPTIM_PREFIX}{int(idx)}.{name}"] = value
            else:
                scalars.setdefault(str(int(idx)), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten_optimizer`: a dict ``optimizer.load_state_dict`` takes."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            idx, name = key[len(OPTIM_PREFIX):].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):  # JSON has no tuples; Adam's are (β1, β2)
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": dict(sorted(state.items())), "param_groups": groups}


@dataclass
class Checkpoint:
    """What a checkpoint holds: model state, optimizer state, other tensors and JSON scalars."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    tensors: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write checkpoint to path atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    optim_tensors, optim_rest = flatten_optimizer(checkpoint.optimizer)
    tensors: dict[str, Tensor] = {f"{MODEL_PREFIX}{k}": v for k, v in checkpoint.model.items()}
    tensors.update(optim_tensors)
    for key, value in checkpoint.tensors.items():
        if key.startswith((MODEL_PREFIX, OPTIM_PREFIX)):
            raise CheckpointError(f"extra checkpoint tensor {key!r} uses a reserved prefix")
        tensors[key] = value
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "optimizer": optim_rest, **checkpoint.meta}
    data = save(tensors, metadata={META_KEY: json.dumps(meta)})

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)
    log.info("checkpoint %s", path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a stylenorm training checkpoint")
    meta = json.loads(raw)
    if meta.get("format", 0) > FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {meta['format']}; this stylenorm reads {FORMAT}")
    optim_rest = meta.pop("optimizer")
    meta.pop("format", None)
    model = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    other = {k: v for k, v in tensors.items() if not k.startswith((MODEL_PREFIX, OPTIM_PREFIX))}
    return Checkpoint(model, unflatten_optimizer(tensors, optim_rest), other, meta)


def checkpoint_path(folder: str | Path, step: int) -> Path:
    """``folder/step-00001234.safetensors``."""
    return Path(folder) / f"step-{step:08d}.safetensors"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """The checkpoints in folder as (step, path), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path:
    """The newest checkpoint in folder; CheckpointError when there is none."""
    found = list_checkpoints(folder)
    if not found:
        raise CheckpointError(f"no checkpoint (step-*.safetensors) in {folder} to resume from")
    return found[-1][1]


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints in folder."""
    for _step, path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "checkpoint_path",
    "flatten_optimizer",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
    "unflatten_optimizer",
]
