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
crash while saving leaves the previous checkpoint intact; a temporary file a
killed process left behind is deleted at the next start or prune. The metadata
also holds the SHA-256 of the tensor data (``stylenorm.sha256``), checked on
load, so a damaged file (a full disk, a bad copy) is refused by name, and
``--resume latest`` falls back to the newest intact checkpoint, saying so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save
from torch import Tensor

from stylenorm.errors import StylenormError
from stylenorm.repository import atomic_write

FORMAT = 1
META_KEY = "stylenorm.checkpoint"
DIGEST_KEY = "stylenorm.sha256"
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
    # the tensor data does not depend on the metadata: hash it once, then write it with its digest
    digest = hashlib.sha256(_data_section(save(tensors))).hexdigest()
    data = save(tensors, metadata={META_KEY: json.dumps(meta), DIGEST_KEY: digest})

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)
    log.info("checkpoint %s", path)
    return path


def _data_section(data: bytes) -> bytes:
    """The tensor bytes of a safetensors file: after the 8-byte header length and the JSON header."""
    if len(data) < 8:
        raise CheckpointError("shorter than a safetensors header")
    header = int.from_bytes(data[:8], "little")
    return data[8 + header :]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, checking its tensor data's SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        raw = metadata.get(META_KEY)
        digest = metadata.get(DIGEST_KEY)
        data = path.read_bytes()  # read once: hashed, then parsed
        if digest is not None and hashlib.sha256(_data_section(data)).hexdigest() != digest:
            raise CheckpointError(f"{path} is damaged: its tensor data does not match its saved checksum")
        tensors = load(data)
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


def load_latest_intact(folder: str | Path) -> tuple[Path, Checkpoint]:
    """The newest checkpoint in folder that loads and matches its checksum; a damaged newer one is
    skipped with a warning naming it (a run killed mid-write, a full disk). CheckpointError if none."""
    found = list_checkpoints(folder)
    if not found:
        raise CheckpointError(f"no checkpoint (step-*.safetensors) in {folder} to resume from")
    problems = []
    for _step, path in reversed(found):
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping checkpoint %s: %s", path.name, exc)
            problems.append(f"{path.name}: {exc}")
            continue
        if problems:
            log.warning("resuming from %s, the newest intact checkpoint (%d newer damaged)", path.name,
                        len(problems))
        return path, checkpoint
    raise CheckpointError(f"no intact checkpoint in {folder}: " + "; ".join(problems[:3]))


def resume_checkpoint(resume: str | None, folder: str | Path) -> tuple[Path | None, Checkpoint | None]:
    """What ``--resume`` names: nothing (None), ``latest`` (the newest intact in folder), or a file."""
    remove_partial_writes(folder)
    if resume is None:
        return None, None
    if resume == "latest":
        return load_latest_intact(folder)
    return Path(resume), load_checkpoint(resume)


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that never finished (a killed process's)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".step-*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted checkpoint write", path.name)
    return stale


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints in folder (and unfinished temporary writes)."""
    for _step, path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)
    remove_partial_writes(folder)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "checkpoint_path",
    "flatten_optimizer",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_intact",
    "prune_checkpoints",
    "remove_partial_writes",
    "resume_checkpoint",
    "save_checkpoint",
    "unflatten_optimizer",
]
