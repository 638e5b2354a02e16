"""The trainer every recipe plugs into: data, Adam, AMP, DDP, logs, samples, checkpoints, resume.

A recipe (:class:`stylenorm.train.base.Recipe`) gives the networks, the
datasets, its optimizer updates with their losses and the order one iteration
takes them in (one update for the style nets; G and D for the GANs). The
trainer owns everything else, the same for all five recipes:

* devices (``cuda`` if available, else ``cpu``), ``torch.autocast`` (bf16 /
  fp16 with one GradScaler per update), channels-last;
* under ``torchrun`` (``RANK``/``WORLD_SIZE`` set): the process group (nccl
  on CUDA, gloo on CPU), ``to_sync_batch_norm`` then DistributedDataParallel
  around each update's module, one data shard per rank; only rank 0 writes;
* seeded, shuffled, resumable sampling (:class:`~stylenorm.data.ResumableSampler`);
* the learning rate of each update as a function of the step
  (``config.lr_factor``: warm-up and 1/(1 + decay·i) for the style nets,
  SPADE's linear decay for the GANs);
* a tqdm bar with the losses and images/s, a CSV loss log, TensorBoard events
  when tensorboard happens to be installed, sample grids;
* atomic safetensors checkpoints (format 2, :mod:`stylenorm.train.checkpoint`;
  format 1 still read) holding everything a resumed run needs to continue
  exactly: modules, optimizers, scalers, RNG states of every rank, data
  positions;
* the model folder at the end (``stylenorm.repository.save_model``).
"""

from __future__ import annotations

import csv
import datetime
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import save_image
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from stylenorm.errors import StylenormError
from stylenorm.models import weights_to_save
from stylenorm.norm import to_sync_batch_norm
from stylenorm.repository import ModelCard, save_model
from stylenorm.train.base import Phase, Recipe, Update
from stylenorm.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    resume_checkpoint,
    save_checkpoint,
)
from stylenorm.train.config import ConfigError, RunConfig
from stylenorm.train.process import (
    Distributed,
    gather,
    restore_rng,
    rng_state,
    rng_tensors,
    seed_everything,
    setup_distributed,
)
from stylenorm.train.streams import BatchStream

log = logging.getLogger(__name__)

_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingError(StylenormError):
    """Training cannot go on (e.g. the loss became NaN/inf)."""


@dataclass
class TrainResult:
    """What a run produced: the model folder, its card, and the logged rows (one per logged step)."""

    folder: Path
    card: ModelCard | None
    step: int
    history: list[dict[str, float]] = field(default_factory=list)


def train(cfg: RunConfig, build_recipe: Any = None, command: str | None = None) -> TrainResult:
    """Train cfg's recipe for ``cfg.steps`` iterations; writes the model folder on rank 0.

    ``build_recipe(cfg, device)`` builds the recipe; by default the registered one for ``cfg.recipe``
    (:data:`stylenorm.train.recipes.RECIPES`).
    """
    if build_recipe is None:
        from stylenorm.train.recipes import build_recipe
    ranks, device = setup_distributed(cfg.device)
    try:
        return Trainer(cfg, ranks, device, build_recipe, command).run()
    finally:
        if ranks.enabled:
            dist.destroy_process_group()


class _Optimizer:
    """One update's optimizer, its GradScaler and its base learning rate."""

    def __init__(self, update: Update, device: torch.device, fp16: bool) -> None:
        self.update = update
        params = [p for p in update.module.parameters() if p.requires_grad]
        self.adam = torch.optim.Adam(params, lr=update.lr, betas=update.betas)
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)

    def set_lr(self, factor: float) -> float:
        lr = self.update.lr * factor
        for group in self.adam.param_groups:
            group["lr"] = lr
        return lr


class Trainer:
    """One run of one recipe: built from a config (and a checkpoint to resume), then :meth:`run`."""

    def __init__(
        self, cfg: RunConfig, ranks: Distributed, device: torch.device, build_recipe: Any, command: str | None
    ) -> None:
        self.cfg, self.ranks, self.device, self.command = cfg, ranks, device, command
        self.runs = cfg.runs
        if cfg.resume is None and list_checkpoints(cfg.runs / "checkpoints"):
            raise ConfigError(
                f"{cfg.runs / 'checkpoints'} holds checkpoints of an earlier run: continue it with "
                "--resume latest, or give another --run-dir (or delete them)"
            )
        self.resumed_from, self.checkpoint = resume_checkpoint(cfg.resume, cfg.runs / "checkpoints")
        seed_everything(cfg.seed)  # same initialization on every rank
        self.recipe: Recipe = build_recipe(cfg, device)
        recipe = self.recipe
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        # the whole model (a frozen encoder too) runs in the run's memory format, as do G, D and its average
        for module in [*recipe.modules.values(), *([recipe.model] if recipe.model is not None else [])]:
            module.to(device=device, memory_format=self.memory_format)
        if self.checkpoint is not None:
            self._load_modules(self.checkpoint)
        self._distribute()
        self.optimizers = {u.name: _Optimizer(u, device, cfg.amp == "fp16") for u in recipe.updates}
        pin = device.type == "cuda"
        self.streams = {}
        for i, (name, dataset) in enumerate(recipe.datasets.items()):
            what, unit = recipe.stream_description(name)
            self.streams[name] = BatchStream(what, dataset, cfg, ranks, recipe.stream_seed(i), pin, unit)
        seed_everything(cfg.seed + ranks.rank)  # training randomness differs per rank
        self.step, self.images_seen, self.wall_time = 0, 0, 0.0
        self.last_row: dict[str, float] = {}
        if self.checkpoint is not None:
            self._restore(self.checkpoint)

    def _distribute(self) -> None:
        """Under torchrun: batch statistics over the global batch, and DDP around each update's module."""
        if not self.ranks.enabled:
            return
        for module in self.recipe.modules.values():
            to_sync_batch_norm(module)  # in place; a no-op for instance/group norms
        ids = [self.device.index] if self.device.type == "cuda" else None
        for update in self.recipe.updates:
            setattr(self.recipe, update.called_as, DistributedDataParallel(update.module, device_ids=ids))

    # -- checkpoints

    def _load_modules(self, ckpt: Checkpoint) -> None:
        states: dict[str, dict[str, Tensor]] = {}
        for key, value in ckpt.model.items():
            name, rest = key.split(".", 1)
            states.setdefault(name, {})[rest] = value
        try:
            self.recipe.load_states(states)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.resumed_from} does not fit this model: {exc}") from exc
        _warn_changed_settings(ckpt.meta.get("config", {}), self.cfg)

    def _restore(self, ckpt: Checkpoint) -> None:
        meta = ckpt.meta
        for name, opt in self.optimizers.items():
            opt.adam.load_state_dict(ckpt.optimizers[name])
            if meta["scalers"].get(name):
                opt.scaler.load_state_dict(meta["scalers"][name])
        self.step, self.images_seen, self.wall_time = meta["step"], meta["images_seen"], meta["wall_time_s"]
        self.last_row = meta.get("last_losses", {})
        rank = restore_rng(ckpt, self.ranks, self.device, self.cfg.seed, self.step)
        for name, stream in self.streams.items():
            stream.restore(meta["data"][rank][name])

    def _save_checkpoint(self) -> None:
        data = {name: s.state() for name, s in self.streams.items()}
        states = gather(self.ranks, {"rng": rng_state(self.device), "data": data})
        if not self.ranks.main:
            return
        tensors, python_rng = rng_tensors([state["rng"] for state in states])
        scalers = {
            n: o.scaler.state_dict() if o.scaler.is_enabled() else {} for n, o in self.optimizers.items()
        }
        meta = {
            "step": self.step,
            "images_seen": self.images_seen,
            "wall_time_s": self.wall_time + (time.perf_counter() - self._t0),
            "world": self.ranks.world,
            "scalers": scalers,
            "python_rng": python_rng,
            "data": [s["data"] for s in states],
            "config": self.cfg.model_dump(mode="json"),
            "last_losses": self.last_row,
        }
        # the modules that change: frozen encoders are rebuilt from their own weights on resume
        model = {f"{n}.{k}": v for n, m in self.recipe.modules.items() for k, v in m.state_dict().items()}
        optimizers = {name: opt.adam.state_dict() for name, opt in self.optimizers.items()}
        folder = self.runs / "checkpoints"
        save_checkpoint(checkpoint_path(folder, self.step), Checkpoint(model, optimizers, tensors, meta))
        prune_checkpoints(folder, self.cfg.keep_checkpoints)

    # -- one iteration

    def _batch(self) -> dict[str, Tensor]:
        batch: dict[str, Tensor] = {}
        for name, stream in self.streams.items():
            item = stream.next()
            batch.update(item if isinstance(item, dict) else {name: item})
        for key, t in batch.items():
            t = t.to(self.device, non_blocking=True)
            batch[key] = t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t
        return batch

    def _update(self, opt: _Optimizer, batch: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        with torch.autocast(self.device.type, dtype=_AMP.get(cfg.amp), enabled=cfg.amp != "none"):
            total, terms = opt.update.loss(batch)
        opt.adam.zero_grad(set_to_none=True)
        opt.scaler.scale(total).backward()
        opt.scaler.step(opt.adam)
        opt.scaler.update()
        return total, terms

    def _phase(self, phase: Phase, batch: dict[str, Tensor] | None) -> tuple[dict[str, Tensor], Any]:
        """Run one phase; returns its logged terms (averaged over repeats) and the last batch."""
        opt = self.optimizers[phase.update]
        sums: dict[str, Tensor] = {}
        for _ in range(phase.repeat):
            if phase.batch == "new":
                batch = self._batch()
                self.images_seen += next(iter(batch.values())).shape[0] * self.ranks.world
            total, terms = self._update(opt, batch if phase.batch != "none" else None)
            for key, value in {opt.update.total: total, **terms}.items():
                value = value.detach() / phase.repeat
                sums[key] = sums[key] + value if key in sums else value
        return sums, batch

    def _iteration(self) -> dict[str, Tensor]:
        """One iteration of the recipe's schedule; its terms in the order of the recipe's updates."""
        for update in self.recipe.updates:  # what learns; frozen encoders and G's average stay in eval
            update.module.train()
        by_update: dict[str, dict[str, Tensor]] = {}
        batch = None
        for phase in self.recipe.schedule:
            by_update[phase.update], batch = self._phase(phase, batch)
        self.recipe.after_iteration()
        return {k: v for u in self.recipe.updates for k, v in by_update[u.name].items()}

    def _reduce(self, terms: dict[str, Tensor]) -> dict[str, float]:
        """Losses averaged over ranks, as floats (one device sync)."""
        values = torch.stack([t.float().reshape(()) for t in terms.values()])
        if self.ranks.enabled:
            dist.all_reduce(values)
            values /= self.ranks.world
        return dict(zip(terms, values.tolist(), strict=True))

    def _sample_grid(self) -> None:
        rows = self.recipe.preview()
        if not rows:
            return
        path = self.runs / "samples" / f"step-{self.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = torch.cat([r.detach().float().clamp(0, 1).cpu() for r in rows])
        save_image(grid, str(path), nrow=rows[0].shape[0], padding=2, pad_value=1.0)

    def _lr_columns(self, lrs: dict[str, float]) -> dict[str, float]:
        """``lr`` for a single update, ``lr_g``/``lr_d`` for G and D."""
        if len(lrs) == 1:
            return {"lr": next(iter(lrs.values()))}
        return {f"lr_{name.lower()}": lr for name, lr in lrs.items()}

    # -- the loop

    def run(self) -> TrainResult:
        cfg, ranks, recipe = self.cfg, self.ranks, self.recipe
        if ranks.main:
            self.runs.mkdir(parents=True, exist_ok=True)
        loss_log = LossLog(self.runs, self.step if self.checkpoint else None) if ranks.main else None
        history: list[dict[str, float]] = []
        bar = progress_bar(cfg, self.step, ranks.main)
        totals = [u.total for u in recipe.updates]
        self._t0 = t_last = time.perf_counter()
        seen_last = self.images_seen
        try:
            while self.step < cfg.steps:
                factor = cfg.lr_factor(self.step)
                lrs = {name: opt.set_lr(factor) for name, opt in self.optimizers.items()}
                terms = self._iteration()
                self.step += 1
                bar.update(1)
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:
                    losses = self._reduce(terms)
                    if not all(map(_finite, losses.values())):
                        raise TrainingError(
                            f"step {self.step}: a loss is not finite ({losses}); lower --lr or the loss "
                            "weights, or use --amp bf16 instead of fp16"
                        )
                    now = time.perf_counter()
                    speed = (self.images_seen - seen_last) / max(now - t_last, 1e-9)
                    t_last, seen_last = now, self.images_seen
                    row = {"step": self.step, **losses, **self._lr_columns(lrs), "images_per_s": speed,
                           "wall_time_s": self.wall_time + now - self._t0}
                    self.last_row = row
                    history.append(row)
                    if loss_log is not None:
                        loss_log.write(row)
                        shown = {k: f"{v:.4g}" for k, v in losses.items() if k in totals}
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
            "batch_size": cfg.batch_size,
            "global_batch_size": cfg.batch_size * self.ranks.world,
            "processes": self.ranks.world,
            **cfg.run_record(),
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
        card = recipe.card().model_copy(update={"provenance": _toml_safe(provenance)})
        return save_model(cfg.out, card, weights_to_save(card, recipe.model_to_save()))


# ---------------------------------------------------------------------------------- records


class LossLog:
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


def progress_bar(cfg: RunConfig, initial: int, main: bool) -> tqdm:
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


# settings a resumed run may change without changing what it trains
_RESUMABLE = {
    "steps", "resume", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "workers",
    "device", "description", "run_dir", "out", "name",
}


def _warn_changed_settings(saved: dict[str, Any], cfg: RunConfig) -> None:
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
    "LossLog",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "hardware_summary",
    "progress_bar",
    "train",
]
