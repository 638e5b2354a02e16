"""The training engine every recipe plugs into: data, Adam, AMP, DDP, logs, samples, checkpoints, resume.

A recipe (see :class:`Recipe`) provides the model, the part of it that learns,
its datasets and ``loss(batch, step) -> (total, {name: value})``. The engine
owns everything else:

* devices (``cuda`` if available, else ``cpu``), ``torch.autocast`` (bf16 /
  fp16 with a GradScaler), channels-last;
* under ``torchrun`` (``RANK``/``WORLD_SIZE`` set): the process group (nccl
  on CUDA, gloo on CPU), ``to_sync_batch_norm`` then DistributedDataParallel,
  one data shard per rank; only rank 0 writes files;
* seeded, shuffled, resumable sampling (:class:`~stylenorm.data.ResumableSampler`);
* a tqdm bar with the losses and images/s, a CSV loss log, TensorBoard events
  when tensorboard happens to be installed, sample grids (content / style /
  output rows);
* atomic safetensors checkpoints holding everything a resumed run needs to
  continue exactly where the checkpoint was taken (model, optimizer, lr
  schedule, GradScaler, RNG states of every rank, data positions);
* the model folder at the end (``stylenorm.repository.save_model``).
"""

from __future__ import annotations

import csv
import datetime
import logging
import os
import platform
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torchvision.utils import save_image
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from stylenorm.data import DataError, ImageFolder, ResumableSampler
from stylenorm.errors import StylenormError
from stylenorm.models import weights_to_save
from stylenorm.norm import to_sync_batch_norm
from stylenorm.repository import ModelCard, save_model
from stylenorm.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    resume_checkpoint,
    save_checkpoint,
)
from stylenorm.train.config import ConfigError, RunConfig, TrainConfig

log = logging.getLogger(__name__)

_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingError(StylenormError):
    """Training cannot go on (e.g. the loss became NaN/inf)."""


class Recipe(Protocol):
    """What a training recipe gives the engine."""

    config: TrainConfig
    model: nn.Module  # the whole model the folder stores
    trainable: nn.Module  # the part that learns; wrapped in DDP under torchrun
    net: nn.Module  # set by the engine: trainable or its DDP wrapper; loss() must call this one
    datasets: dict[str, ImageFolder]  # each becomes one batch entry of the same name

    def loss(self, batch: dict[str, Tensor], step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted total loss and its named terms (weighted) for one batch."""
        ...

    def preview(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """Content, style and output rows (k, 3, S, S) of the last batch, for the sample grid."""
        ...

    def card(self) -> ModelCard:
        """The model card without provenance (the engine adds it)."""
        ...

    def provenance(self) -> dict[str, Any]:
        """What the recipe knows about how the model was made (encoder, datasets, styles)."""
        ...


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


# ------------------------------------------------------------------------------------------- data


class BatchStream:
    """An endless, resumable stream of batches from one dataset: (epoch, position) is its state.

    Items are ``(images, replaced)`` pairs (image folders) or dicts with an
    optional ``"replaced"`` entry (label/image pairs, class folders);
    ``replaced`` flags samples that stood in for a file that failed to decode,
    counted in :attr:`replaced` and dropped from the batch.
    """

    def __init__(
        self, what: str, dataset: Dataset, cfg: RunConfig, ranks: Distributed, seed: int, pin: bool,
        unit: str = "samples",
    ) -> None:
        size = len(dataset)  # type: ignore[arg-type]
        if -(-size // ranks.world) < cfg.batch_size:
            raise DataError(
                f"{what} has {size} {unit}: too few for batches of {cfg.batch_size} on "
                f"{ranks.world} process(es); add more or lower --batch-size"
            )
        self.sampler = ResumableSampler(dataset, ranks.world, ranks.rank, seed)
        self.loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.workers,
            drop_last=True,
            pin_memory=pin,
            persistent_workers=cfg.workers > 0,
            generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched by iter()
        )
        self.epoch = self.position = self.replaced = 0
        self._it: Iterator | None = None

    def next(self) -> Any:
        """The next batch: images (N, …) or a dict of tensors, without the ``replaced`` flags."""
        while True:
            if self._it is None:
                self.sampler.set_epoch(self.epoch)
                self.sampler.start = self.position
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                self._it, self.epoch, self.position = None, self.epoch + 1, 0
                continue
            if isinstance(batch, dict):
                replaced = batch.pop("replaced", None)
                n = next(iter(batch.values())).shape[0]
            else:
                batch, replaced = batch
                n = batch.shape[0]
            self.position += n
            if replaced is not None:
                self.replaced += int(replaced.sum())
            return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "replaced": self.replaced}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.replaced = state["epoch"], state["position"], state["replaced"]
        self._it = None


# ------------------------------------------------------------------------------------------ RNG


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every GPU) and Python's random."""
    torch.manual_seed(seed)
    random.seed(seed)


# -------------------------------------------------------------------------------------- logging


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
    _set_rng_state(state, device)
    return rank


class _LossLog:
    """CSV rows (step, losses, lr, images/s, wall time) and, if tensorboard is installed, events."""

    def __init__(self, folder: Path, resume_step: int | None) -> None:
        self.path = folder / "losses.csv"
        self.columns: list[str] | None = None
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = list(csv.reader(f))
            if rows:  # drop rows a crashed run logged after its last checkpoint
                self.columns = rows[0]
                kept = [r for r in rows[1:] if r and int(r[0]) <= resume_step]
                with self.path.open("w", newline="") as f:
                    csv.writer(f).writerows([self.columns, *kept])
        elif self.path.exists():
            self.path.unlink()
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file)
        log.info("run folder %s: losses.csv, samples/, checkpoints/", folder)
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional: not a dependency
            pass
        else:
            self.tensorboard = SummaryWriter(str(folder / "tensorboard"), purge_step=(resume_step or 0) + 1)

    def write(self, row: dict[str, float]) -> None:
        if self.columns is None:
            self.columns = list(row)
            self._csv.writerow(self.columns)
        self._csv.writerow([_fmt(row.get(c, float("nan"))) for c in self.columns])
        self._file.flush()
        shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step")
        log.info("step %d: %s", int(row["step"]), shown)
        if self.tensorboard is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step":
                    tag = key if key in ("lr", "images_per_s", "wall_time_s") else f"loss/{key}"
                    self.tensorboard.add_scalar(tag, value, step)

    def close(self) -> None:
        self._file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class _Progress(tqdm):
    """The run's progress bar; while it is open, log lines are written through it (never glued to the bar)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redirect: Any = logging_redirect_tqdm()
        self._redirect.__enter__()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._redirect is not None:
                self._redirect.__exit__(None, None, None)
                self._redirect = None


def progress_bar(cfg: TrainConfig, initial: int, main: bool) -> tqdm:
    """A progress bar over cfg.steps from initial (shown on the main process only)."""
    return _Progress(
        # no bar off a terminal (None): the step log lines are the progress in a log collector
        total=cfg.steps, initial=initial, disable=None if main else True, desc=f"train {cfg.recipe}",
        dynamic_ncols=True, mininterval=1.0,
    )


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def hardware_summary(device: torch.device) -> dict[str, str]:
    """The CPU model and the device (and the GPU's name) a run used, for its card."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    out = {"cpu": cpu, "device": str(device)}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


# --------------------------------------------------------------------------------------- engine


@dataclass
class TrainResult:
    """What a run produced: the model folder, its card, and the logged rows (one per logged step)."""

    folder: Path
    card: ModelCard | None
    step: int
    history: list[dict[str, float]] = field(default_factory=list)


def train(cfg: TrainConfig, build_recipe: Any, command: str | None = None) -> TrainResult:
    """Train ``build_recipe(cfg, device)`` for ``cfg.steps`` steps; writes the model folder on rank 0."""
    ranks, device = setup_distributed(cfg.device)
    try:
        return _Trainer(cfg, ranks, device, build_recipe, command).run()
    finally:
        if ranks.enabled:
            dist.destroy_process_group()


class _Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        ranks: Distributed,
        device: torch.device,
        build_recipe: Any,
        command: str | None,
    ) -> None:
        self.cfg, self.ranks, self.device, self.command = cfg, ranks, device, command
        if cfg.resume is None and list_checkpoints(cfg.runs / "checkpoints"):
            raise ConfigError(
                f"{cfg.runs / 'checkpoints'} holds checkpoints of an earlier run: continue it with "
                "--resume latest, or give another --run-dir (or delete them)"
            )
        resume, self.checkpoint = resume_checkpoint(cfg.resume, cfg.runs / "checkpoints")
        self.resumed_from = resume
        seed_everything(cfg.seed)  # same initialization on every rank
        self.recipe: Recipe = build_recipe(cfg, device)
        recipe = self.recipe
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        recipe.model.to(device=device, memory_format=self.memory_format)
        if self.checkpoint is not None:
            try:
                recipe.trainable.load_state_dict(self.checkpoint.model)
            except RuntimeError as exc:
                raise CheckpointError(f"{resume} does not fit this model: {exc}") from exc
            _warn_changed_settings(self.checkpoint.meta.get("config", {}), cfg)
        trainable = recipe.trainable
        if ranks.enabled:
            trainable = to_sync_batch_norm(trainable)
            recipe.trainable = trainable
            ids = [device.index] if device.type == "cuda" else None
            recipe.net = DistributedDataParallel(trainable, device_ids=ids)
        else:
            recipe.net = trainable
        params = [p for p in trainable.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        decay, warmup = cfg.lr_decay, cfg.lr_warmup
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: min(1.0, (i + 1) / warmup if warmup else 1.0) / (1.0 + decay * i)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        pin = device.type == "cuda"
        self.streams = {
            name: BatchStream(
                f"the {name} folder", ds, cfg, ranks, cfg.seed + 7919 * i, pin, unit="readable images"
            )
            for i, (name, ds) in enumerate(recipe.datasets.items())
        }
        seed_everything(cfg.seed + ranks.rank)  # training randomness differs per rank
        self.step, self.images_seen, self.wall_time = 0, 0, 0.0
        self.last_row: dict[str, float] = {}
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self.runs = cfg.runs

    # -- checkpoints

    def _restore(self, ckpt: Checkpoint) -> None:
        meta = ckpt.meta
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.scheduler.load_state_dict(meta["scheduler"])
        if meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.step, self.images_seen, self.wall_time = meta["step"], meta["images_seen"], meta["wall_time_s"]
        self.last_row = meta.get("last_losses", {})
        rank = restore_rng(ckpt, self.ranks, self.device, self.cfg.seed, self.step)
        for name, stream in self.streams.items():
            stream.restore(meta["data"][rank][name])

    def _save_checkpoint(self) -> None:
        data = {name: s.state() for name, s in self.streams.items()}
        states = gather(self.ranks, {"rng": _rng_state(self.device), "data": data})
        if not self.ranks.main:
            return
        tensors, python_rng = rng_tensors([state["rng"] for state in states])
        meta = {
            "step": self.step,
            "images_seen": self.images_seen,
            "wall_time_s": self.wall_time + (time.perf_counter() - self._t0),
            "world": self.ranks.world,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "python_rng": python_rng,
            "data": [s["data"] for s in states],
            "config": self.cfg.model_dump(mode="json"),
            "last_losses": self.last_row,
        }
        folder = self.runs / "checkpoints"
        # the part that learns: frozen encoders are rebuilt from their own weights on resume
        ckpt = Checkpoint(self.recipe.trainable.state_dict(), self.optimizer.state_dict(), tensors, meta)
        save_checkpoint(checkpoint_path(folder, self.step), ckpt)
        prune_checkpoints(folder, self.cfg.keep_checkpoints)

    # -- one step

    def _batch(self) -> dict[str, Tensor]:
        return {
            name: s.next().to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            for name, s in self.streams.items()
        }

    def _train_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        with torch.autocast(self.device.type, dtype=_AMP.get(cfg.amp), enabled=cfg.amp != "none"):
            total, terms = self.recipe.loss(batch, self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return total, terms

    def _reduce(self, total: Tensor, terms: dict[str, Tensor]) -> dict[str, float]:
        """Losses averaged over ranks, as floats (one device sync)."""
        names = ["loss", *terms]
        values = torch.stack([total.detach().float(), *(t.detach().float() for t in terms.values())])
        if self.ranks.enabled:
            dist.all_reduce(values)
            values /= self.ranks.world
        return dict(zip(names, values.tolist(), strict=True))

    def _sample_grid(self) -> None:
        rows = self.recipe.preview()
        if rows is None:
            return
        content, style, output = rows
        path = self.runs / "samples" / f"step-{self.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = torch.cat([content, style, output]).detach().float().clamp(0, 1).cpu()
        save_image(grid, str(path), nrow=content.shape[0], padding=2, pad_value=1.0)

    # -- the loop

    def run(self) -> TrainResult:
        cfg, ranks, recipe = self.cfg, self.ranks, self.recipe
        if ranks.main:
            self.runs.mkdir(parents=True, exist_ok=True)
        loss_log = _LossLog(self.runs, self.step if self.checkpoint else None) if ranks.main else None
        history: list[dict[str, float]] = []
        bar = progress_bar(cfg, self.step, ranks.main)
        recipe.trainable.train()
        self._t0 = t_last = time.perf_counter()
        step_last = self.step
        per_step = cfg.batch_size * ranks.world
        try:
            while self.step < cfg.steps:
                lr = self.optimizer.param_groups[0]["lr"]
                total, terms = self._train_step(self._batch())
                self.step += 1
                self.images_seen += per_step
                bar.update(1)
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:
                    losses = self._reduce(total, terms)
                    if not all(map(_finite, losses.values())):
                        raise TrainingError(
                            f"step {self.step}: the loss is not finite ({losses}); lower --lr or the loss "
                            "weights, or use --amp bf16 instead of fp16"
                        )
                    now = time.perf_counter()
                    speed = (self.step - step_last) * per_step / max(now - t_last, 1e-9)
                    t_last, step_last = now, self.step
                    row = {"step": self.step, **losses, "lr": lr, "images_per_s": speed,
                           "wall_time_s": self.wall_time + now - self._t0}
                    self.last_row = row
                    history.append(row)
                    if loss_log is not None:
                        loss_log.write(row)
                        shown = {k: f"{v:.4g}" for k, v in losses.items()}
                        bar.set_postfix(shown | {"img/s": f"{speed:.1f}"})
                if ranks.main and (self.step % cfg.sample_every == 0 or last):
                    self._sample_grid()
                if self.step % cfg.checkpoint_every == 0 or last:
                    self._save_checkpoint()
        finally:
            bar.close()
            if loss_log is not None:
                loss_log.close()
        self.wall_time += time.perf_counter() - self._t0
        replaced = gather(self.ranks, {name: s.replaced for name, s in self.streams.items()})
        card = self._write_model(replaced) if ranks.main else None
        if ranks.enabled:
            dist.barrier()
        return TrainResult(cfg.out, card, self.step, history)

    def _write_model(self, replaced: list[dict[str, int]]) -> ModelCard:
        cfg, recipe = self.cfg, self.recipe
        provenance = {
            "command": self.command or "",
            "recipe": cfg.recipe,
            "steps": self.step,
            "images_seen": self.images_seen,
            "resolution": cfg.image_size,
            "batch_size": cfg.batch_size,
            "global_batch_size": cfg.batch_size * self.ranks.world,
            "processes": self.ranks.world,
            "lr": cfg.lr,
            "lr_decay": cfg.lr_decay,
            "lr_warmup": cfg.lr_warmup,
            "weights": cfg.loss_weights(),
            "amp": cfg.amp,
            "seed": cfg.seed,
            "wall_time_s": round(self.wall_time, 3),
            "hardware": hardware_summary(self.device),
            "torch": torch.__version__,
            "final_losses": {k: v for k, v in self.last_row.items() if k not in ("step", "wall_time_s")},
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **recipe.provenance(),
        }
        for name in self.streams:  # draws that hit a file which passed the scan but failed to decode
            count = sum(r[name] for r in replaced)
            provenance.setdefault("data", {}).setdefault(name, {})["decode_failures"] = count
        provenance["run_dir"] = str(self.runs)
        if self.resumed_from is not None:
            provenance["resumed_from"] = str(self.resumed_from)
        card = recipe.card()
        card = card.model_copy(update={"provenance": _toml_safe(provenance)})
        return save_model(cfg.out, card, weights_to_save(card, recipe.model))


# settings a resumed run may change without changing what it trains
_RESUMABLE = {
    "steps", "resume", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "workers",
    "device", "description", "run_dir", "out", "name",
}


def _warn_changed_settings(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = cfg.model_dump(mode="json")
    changed = sorted(k for k in now if k not in _RESUMABLE and k in saved and saved[k] != now[k])
    if changed:
        log.warning(
            "resuming with changed settings (%s): the continuation differs from the checkpointed run",
            ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed),
        )


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _toml_safe(value: Any) -> Any:
    """TOML has no null: drop None values, stringify paths."""
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_toml_safe(v) for v in value if v is not None]
    if isinstance(value, Path):
        return str(value)
    return value


__all__ = [
    "Distributed",
    "Recipe",
    "TrainResult",
    "TrainingError",
    "launched_by_torchrun",
    "pick_device",
    "seed_everything",
    "train",
]
