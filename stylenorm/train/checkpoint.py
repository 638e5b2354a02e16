"""Training checkpoints as safetensors: tensors by key, everything else as JSON metadata. No pickle.

Layout of one file (format 2):

* ``model.<module>.<key>``: the state dict of each module the recipe checkpoints
  (``net``; or ``G``, ``D`` and ``ema`` for the GANs);
* ``optim.<update>.state.<param_idx>.<name>``: each optimizer's per-parameter
  tensors (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``);
* any other tensors the caller adds under its own prefix (RNG states: ``rng.…``);
* metadata ``stylenorm.checkpoint``: one JSON object with ``format``, each
  optimizer's param groups and non-tensor state (``optimizers``), and the
  caller's scalars (step, GradScalers, config, Python RNG, data positions …).
  safetensors metadata is str → str.

Format 1 (written by the two trainers of stylenorm 0.2.0 and before) is read and
converted on load (:func:`upgrade_format_1`): its style checkpoints held one
unprefixed model and ``optim.state.…``, its GAN checkpoints ``G.``/``D.``
models, ``optim_d.state.…`` and ``ema.…`` tensors and per-network scalers.

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

FORMAT = 2
META_KEY = "stylenorm.checkpoint"
DIGEST_KEY = "stylenorm.sha256"
MODEL_PREFIX = "model."
OPTIM_PREFIX = "optim.state."  # format 1, and flatten_optimizer's default
_NAME = re.compile(r"^step-(\d+)\.safetensors$")

log = logging.getLogger(__name__)


class CheckpointError(StylenormError):
    """A checkpoint file is missing, unreadable or not a stylenorm training checkpoint."""


def optimizer_prefix(name: str) -> str:
    """Where optimizer name's tensors are in a format-2 checkpoint: ``optim.<name>.state.``."""
    return f"optim.{name}.state."


def flatten_optimizer(
    state_dict: dict[str, Any], prefix: str = OPTIM_PREFIX
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> ({<prefix><idx>.<name>: tensor}, JSON-able rest)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}{int(idx)}.{name}"] = value
            else:
                scalars.setdefault(str(int(idx)), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(
    tensors: dict[str, Tensor], rest: dict[str, Any], prefix: str = OPTIM_PREFIX
) -> dict[str, Any]:
    """The inverse of :func:`flatten_optimizer`: a dict ``optimizer.load_state_dict`` takes."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, name = key[len(prefix):].split(".", 1)
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
    """What a checkpoint holds: module states (``<module>.<key>``), optimizer states by update name,
    other tensors and JSON scalars."""

    model: dict[str, Tensor]
    optimizers: dict[str, dict[str, Any]]
    tensors: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write checkpoint to path atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {f"{MODEL_PREFIX}{k}": v for k, v in checkpoint.model.items()}
    optimizers = {}
    for name, state_dict in checkpoint.optimizers.items():
        optim_tensors, optimizers[name] = flatten_optimizer(state_dict, optimizer_prefix(name))
        tensors.update(optim_tensors)
    for key, value in checkpoint.tensors.items():
        if key.startswith((MODEL_PREFIX, "optim.")):
            raise CheckpointError(f"extra checkpoint tensor {key!r} uses a reserved prefix")
        tensors[key] = value
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "optimizers": optimizers, **checkpoint.meta}
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
    version = meta.pop("format", 1)
    if version > FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {version}; this stylenorm reads up to {FORMAT}")
    model = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    if version == 1:
        log.info("%s is a format-1 checkpoint (two-trainer layout): converting it", path.name)
        return upgrade_format_1(model, tensors, meta)
    optimizers = {
        name: unflatten_optimizer(tensors, rest, optimizer_prefix(name))
        for name, rest in meta.pop("optimizers").items()
    }
    other = {k: v for k, v in tensors.items() if not k.startswith((MODEL_PREFIX, "optim."))}
    return Checkpoint(model, optimizers, other, meta)


def upgrade_format_1(
    model: dict[str, Tensor], tensors: dict[str, Tensor], meta: dict[str, Any]
) -> Checkpoint:
    """A format-1 checkpoint's contents in format 2's terms (see the module docstring).

    Style recipes: the model becomes module ``net``, the optimizer ``net``, the scaler ``scalers.net``;
    the saved lr scheduler is dropped (the lr is a function of the step). GANs: ``G.``/``D.`` stay,
    the ``ema.…`` tensors become module ``ema``, the optimizers and scalers ``G`` and ``D``, and the one
    data stream per rank is named as the recipe names it now (``pairs``, ``classes``).
    """
    optim_rest = meta.pop("optimizer")
    other = {k: v for k, v in tensors.items() if not k.startswith((MODEL_PREFIX, "optim"))}
    if "optimizer_d" in meta:  # a GAN checkpoint
        d_prefix = "optim_d.state."
        model = model | {k: v for k, v in other.items() if k.startswith("ema.")}
        other = {k: v for k, v in other.items() if not k.startswith("ema.")}
        optimizers = {
            "G": unflatten_optimizer(tensors, optim_rest),
            "D": unflatten_optimizer(tensors, meta.pop("optimizer_d"), d_prefix),
        }
        meta["scalers"] = {"G": meta.pop("scaler_g", {}), "D": meta.pop("scaler_d", {})}
        stream = {"spade": "pairs", "cgan": "classes"}[meta["config"]["recipe"]]  # the recipes' names
        meta["data"] = [{stream: state} for state in meta["data"]]
    else:
        model = {f"net.{k}": v for k, v in model.items()}
        optimizers = {"net": unflatten_optimizer(tensors, optim_rest)}
        meta["scalers"] = {"net": meta.pop("scaler", {})}
        meta.pop("scheduler", None)
    return Checkpoint(model, optimizers, other, meta)


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
    "optimizer_prefix",
    "prune_checkpoints",
    "remove_partial_writes",
    "resume_checkpoint",
    "save_checkpoint",
    "unflatten_optimizer",
    "upgrade_format_1",
]
