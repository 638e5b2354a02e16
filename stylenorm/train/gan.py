"""The GAN recipes, ``spade`` and ``cgan``, and the loop that trains them.

* ``spade`` (Park et al. 2019, NVlabs/SPADE's defaults): :class:`SPADEGenerator`
  (any SPADE-block norm: ``spade:instance:3x3``, ``spade:sync_batch:3x3``,
  ``clade:instance`` …) against a two-scale PatchGAN
  (:class:`MultiscaleDiscriminator`) on concat(label map, image). G: hinge +
  10·feature matching + 10·VGG-19 perceptual (+ 0.05·KL with the image
  encoder); D: hinge. Adam with TTUR: G at lr/2, D at 2·lr, β = (0, 0.9).
  Each iteration updates G, then D on the same batch. D's update reuses the
  fake of G's step, detached (as pix2pixHD; the official SPADE redraws it with
  the updated G, one more generator forward).
* ``cgan`` (SNGAN with projection discriminator, Miyato & Koyama 2018):
  :class:`ClassConditionalGenerator` (class-conditional BN) against
  :class:`ProjectionDiscriminator`; hinge loss; Adam (0, 0.9) at lr 2e-4;
  ``n_dis`` D updates, each on a fresh real batch, then one G update with
  uniformly drawn classes.

The loop gives the GANs what :mod:`stylenorm.train.engine` gives the style
recipes, with two optimizers: seeded resumable data, AMP (one GradScaler per
optimizer), torchrun DDP (batch statistics made cross-process first), a
progress bar, the CSV loss log, sample grids, atomic safetensors checkpoints
with everything an exact resume needs (both networks, both optimizers, the
EMA of G, scalers, RNG states, data positions) and, on rank 0, the model
folder: the generator only (its moving average when ``--ema`` is set).
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parametrize
from torch.utils.data import Dataset
from torchvision.utils import save_image

from stylenorm.data import DataError, ImageFolder
from stylenorm.data.layouts import LAYOUT_PRESETS, get_layout, label_file
from stylenorm.data.scenes import PALETTE, SCENE_CLASSES, SyntheticScenes
from stylenorm.data.segmentation import PairedTransform, SegmentationDataset, instance_edges
from stylenorm.gan_losses import VGGLoss, feature_matching_loss, hinge_g_loss, kl_divergence
from stylenorm.models import weights_to_save
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.nets.discriminators import MultiscaleDiscriminator, ProjectionDiscriminator
from stylenorm.nets.spade import SPADEGenerator
from stylenorm.nets.vgg import encoder_provenance
from stylenorm.norm import to_sync_batch_norm
from stylenorm.repository import ModelCard, save_model
from stylenorm.synthesize import colorize_labels, default_palette
from stylenorm.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    flatten_optimizer,
    list_checkpoints,
    prune_checkpoints,
    resume_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)
from stylenorm.train.config import CGANConfig, ConfigError, GANConfig, SpadeConfig
from stylenorm.train.engine import (
    BatchStream,
    Distributed,
    TrainingError,
    TrainResult,
    _finite,
    _LossLog,
    _rng_state,
    _toml_safe,
    _warn_changed_settings,
    gather,
    hardware_summary,
    progress_bar,
    restore_rng,
    rng_tensors,
    seed_everything,
    setup_distributed,
)
from stylenorm.train.style import build_encoder, encoder_depth

log = logging.getLogger(__name__)

PREVIEW = 4  # samples per sample-grid row
VGG_DEPTH, VGG_LAST = 19, "relu5_1"
_SEED_MASK = (1 << 63) - 1
_OPTIM_D = "optim_d.state."  # D's optimizer tensors in a checkpoint (G's use the checkpoint's own slot)
_OUTPUT = "RGB float in [0, 1], (N, 3, H, W)"


# ------------------------------------------------------------------------------------------ data


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & _SEED_MASK)


class SeededPairs(Dataset):
    """Label/image pairs with per-draw randomness: item ``(index, seed)`` -> {"label", "image"[, "edges"]}.

    ``base`` is a :class:`SegmentationDataset` (built without a transform) or
    :class:`SyntheticScenes`; the resize/crop/flip of ``transform`` is drawn
    from the item's seed (as :class:`~stylenorm.data.ResumableSampler` hands it
    over), so a resumed run sees exactly the crops an uninterrupted one would,
    whatever the worker processes. Labels (H, W) int64 (don't-care = label_nc),
    images (3, H, W) in [0, 1], instance edges (1, H, W) computed after the crop.
    """

    def __init__(self, base: Dataset, transform: PairedTransform | None, use_instance: bool) -> None:
        self.base, self.transform, self.use_instance = base, transform, use_instance

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Tensor]:
        """One transformed sample."""
        index, seed = item if isinstance(item, tuple) else (item, item)
        sample = self.base[index]
        label, image, instance = sample["label"], sample["image"], sample.get("instance")
        if self.transform is not None:
            label, image, instance = self.transform(label, image, instance, generator=_generator(seed))
        out = {"label": label.long(), "image": image.float()}
        if self.use_instance:
            if instance is None:
                raise DataError(f"sample {sample.get('path', index)} has no instance map")
            out["edges"] = instance_edges(instance[None])[0]
        return out


class ClassFolders(Dataset):
    """One subfolder per class: item ``(index, seed)`` -> {"image" (3, S, S) in [0, 1], "label", "replaced"}.

    Classes are the subfolder names, sorted; each is an
    :class:`~stylenorm.data.ImageFolder` (recursive, corrupt files skipped and
    counted, centre crop to S). The seed draws the horizontal flip.
    """

    def __init__(self, root: str | Path, size: int, flip: bool = True) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"class folder root {root} does not exist or is not a folder")
        subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not subfolders:
            raise DataError(
                f"{root} has no subfolders: a class-conditional GAN needs one subfolder of images per class"
            )
        self.root, self.flip = root, flip
        self.classes = [p.name for p in subfolders]
        self.folders = [ImageFolder(p, size, "center", what=f"class folder {p}") for p in subfolders]
        self.index = [(c, i) for c, folder in enumerate(self.folders) for i in range(len(folder))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Tensor]:
        """One image of its class."""
        index, seed = item if isinstance(item, tuple) else (item, item)
        c, i = self.index[index]
        image, replaced = self.folders[c][(i, seed)]
        if self.flip and bool(torch.rand((), generator=_generator(seed ^ 0x5DEECE66D)) < 0.5):
            image = image.flip(-1)
        return {"image": image, "label": torch.tensor(c), "replaced": torch.tensor(replaced)}

    def summary(self) -> dict[str, Any]:
        """Path, classes and counts, for the card's provenance."""
        return {
            "path": str(self.root),
            "classes": {name: len(f) for name, f in zip(self.classes, self.folders, strict=True)},
            "images": len(self),
            "skipped": sum(len(f.skipped) for f in self.folders),
        }


def read_classes(path: Path, label_nc: int | None) -> tuple[list[str], list[list[int]] | None]:
    """Class names (and palette, if given) from a JSON file: a list of names or {"classes", "palette"}."""
    if not path.is_file():
        raise DataError(f"class file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"class file {path} is not valid JSON: {exc}") from exc
    palette = None
    if isinstance(data, dict):
        palette, data = data.get("palette"), data.get("classes")
    if not isinstance(data, list) or not data or not all(isinstance(c, str) and c for c in data):
        raise DataError(
            f'class file {path} must hold a list of class names or {{"classes": [...], "palette": '
            "[[r, g, b], ...]}"
        )
    if len(set(data)) != len(data):
        raise DataError(f"class file {path} names a class twice")
    if label_nc is not None and len(data) != label_nc:
        raise DataError(f"class file {path} names {len(data)} classes but label_nc is {label_nc}")
    if palette is not None:
        ok = (
            isinstance(palette, list)
            and len(palette) == len(data)
            and all(
                isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
                for c in palette
            )
        )
        if not ok or len({tuple(c) for c in palette}) != len(palette):
            raise DataError(f"class file {path}: the palette needs one distinct [r, g, b] (0..255) per class")
    return list(data), palette


def spade_dataset(cfg: SpadeConfig) -> tuple[SeededPairs, dict[str, Any], list[str], list[list[int]]]:
    """The training pairs of cfg's layout, a summary for the card, class names and palette."""
    root = cfg.data
    classes_file = cfg.classes
    if cfg.layout == "scenes" and root is None:
        h, w = cfg.out_size
        base: Dataset = SyntheticScenes(cfg.scenes, (h, w), seed=cfg.seed)
        summary = {"kind": "synthetic scenes, generated on the fly", "scenes": cfg.scenes, "seed": cfg.seed}
        transform = PairedTransform("none", flip=cfg.flip)
        pairs = SeededPairs(base, transform, use_instance=False)
        return pairs, summary, list(SCENE_CLASSES), [list(c) for c in PALETTE]
    assert root is not None or cfg.layout == "custom"
    if cfg.layout == "ade20k":
        seg = SegmentationDataset.ade20k(root)  # type: ignore[arg-type]
    elif cfg.layout == "cityscapes":
        seg = SegmentationDataset.cityscapes(root, use_instance=bool(cfg.use_instance))  # type: ignore[arg-type]
    elif cfg.layout == "coco_stuff":
        seg = SegmentationDataset.coco_stuff(root, use_instance=bool(cfg.use_instance))  # type: ignore[arg-type]
    else:  # custom, or scenes written to a folder by write_scenes
        label_dir = cfg.label_dir or (root / "labels")  # type: ignore[operator]
        image_dir = cfg.image_dir or (root / "images")  # type: ignore[operator]
        instance_dir = cfg.instance_dir
        if instance_dir is None and root is not None and (root / "instances").is_dir():
            instance_dir = root / "instances"
        if cfg.use_instance is False:
            instance_dir = None
        elif cfg.use_instance and instance_dir is None:
            raise DataError("--use-instance needs instance maps: give --instance-dir (or DATA/instances)")
        if classes_file is None and root is not None and (root / "classes.json").is_file():
            classes_file = root / "classes.json"
        label_nc = cfg.label_nc
        names = palette = None
        if classes_file is not None:
            names, palette = read_classes(classes_file, label_nc)
            label_nc = label_nc or len(names)
        if label_nc is None:
            raise DataError(
                "--layout custom needs --label-nc (the number of classes) or a class file (--classes, or "
                "classes.json in --data)"
            )
        seg = SegmentationDataset.custom(
            label_dir, image_dir, label_nc, instance_dir, bool(cfg.contain_dontcare)
        )
        if names is None and cfg.layout == "scenes":  # a write_scenes folder that lost its classes.json
            names, palette = list(SCENE_CLASSES), [list(c) for c in PALETTE]
        return _pairs(cfg, seg, names, palette)
    names = palette = None
    if classes_file is not None:
        names, palette = read_classes(classes_file, seg.label_nc)
    return _pairs(cfg, seg, names, palette)


def _pairs(
    cfg: SpadeConfig, seg: SegmentationDataset, names: list[str] | None, palette: list[list[int]] | None
) -> tuple[SeededPairs, dict[str, Any], list[str], list[list[int]]]:
    transform = PairedTransform(
        cfg.preprocess or "resize_and_crop",
        cfg.load_size or cfg.crop_size,
        cfg.crop_size,
        cfg.aspect_ratio or 1.0,
        cfg.flip,
    )
    pairs = SeededPairs(seg, transform, seg.use_instance)
    summary = {
        "layout": cfg.layout,
        "path": str(cfg.data or cfg.label_dir),
        "pairs": len(seg),
        "label_nc": seg.label_nc,
        "contain_dontcare": seg.contain_dontcare,
        "use_instance": seg.use_instance,
        "preprocess": transform.preprocess,
        "load_size": transform.load_size,
        "flip": transform.flip,
    }
    names = names or [f"class_{i}" for i in range(seg.label_nc)]
    return pairs, summary, names, palette or default_palette(seg.label_nc)


# ------------------------------------------------------------------------------------------ helpers


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Turn off gradients of module's parameters (D during G's update), restoring them after."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def hinge_parts(real: Any, fake: Any) -> tuple[Tensor, Tensor]:
    """D's hinge terms (mean relu(1 − D(real)), mean relu(1 + D(fake))), averaged over scales."""

    def logits(pred: Any) -> list[Tensor]:
        if isinstance(pred, Tensor):
            return [pred]
        return [scale[-1] if isinstance(scale, list | tuple) else scale for scale in pred]

    r, f = logits(real), logits(fake)
    loss_real = sum(torch.relu(1 - t.float()).mean() for t in r) / len(r)
    loss_fake = sum(torch.relu(1 + t.float()).mean() for t in f) / len(f)
    return loss_real, loss_fake  # type: ignore[return-value]


def discriminate(net: nn.Module, segmap: Tensor, fake: Tensor, real: Tensor) -> tuple[list, list]:
    """(pred_fake, pred_real) of a multiscale D called through ``net`` (a DDP wrapper works), one batch."""
    both = torch.cat([torch.cat([segmap, fake], 1), torch.cat([segmap, real], 1)], 0)
    n = fake.shape[0]
    pred = net(both)
    return [[t[:n] for t in scale] for scale in pred], [[t[n:] for t in scale] for scale in pred]


class MovingAverage:
    """An exponential moving average of a generator: params (and running statistics) averaged.

    Spectral-norm power-iteration vectors (``_u``, ``_v``) and counters are
    copied, not averaged (an average of unit vectors is no unit vector);
    :meth:`for_saving` re-converges u, v for the averaged weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema ← decay·ema + (1 − decay)·model."""
        ours, theirs = self.module.state_dict(), model.state_dict()
        for key, value in ours.items():
            source = theirs[key]
            if value.is_floating_point() and not key.endswith(("._u", "._v")):
                value.lerp_(source.to(value.dtype), 1.0 - self.decay)
            else:
                value.copy_(source)

    def for_saving(self, iterations: int = 10) -> nn.Module:
        """A copy whose spectral-norm vectors fit the averaged weights (power iteration, no grad)."""
        out = copy.deepcopy(self.module)
        with torch.no_grad():
            for m in out.modules():
                if parametrize.is_parametrized(m, "weight"):
                    m.train()
                    for _ in range(iterations):  # every access in train mode runs one power iteration
                        _ = m.weight
                    m.eval()
        return out.eval()


class GANModules(nn.Module):
    """What :func:`stylenorm.models.weights_to_save` stores of a GAN: ema if given, else the generator."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, ema: nn.Module | None) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        if ema is not None:
            self.ema = ema


# ------------------------------------------------------------------------------------------ recipes


class _SpadeForward(nn.Module):
    """G's training forward as one module (DDP then sees the encoder too): (segmap, real) -> (fake, μ, σ²)."""

    def __init__(self, generator: SPADEGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, segmap: Tensor, real: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """segmap (N, S, H, W), real (N, 3, H, W) in [−1, 1] -> fake (N, 3, H, W) and the z posterior."""
        g = self.generator
        if g.use_vae:
            z, mu, logvar = g.encode(real)
            return g(segmap, z=z), mu, logvar
        return g(segmap), None, None


class SpadeRecipe:
    """SPADE: G, then D, on each batch of label maps (see the module docstring)."""

    g_first = True

    def __init__(self, cfg: SpadeConfig, device: torch.device) -> None:
        self.config = cfg
        # the loss network first: missing VGG weights are reported before any data is read
        self.vgg = None
        if cfg.vgg_weight > 0:
            depth = encoder_depth(cfg.encoder, VGG_DEPTH)  # hed: VGG-16 (relu5_1 exists there too)
            self.vgg = VGGLoss(build_encoder(cfg, depth, VGG_LAST, device))  # type: ignore[arg-type]
        self.dataset, self.data_summary, self.classes, self.palette = spade_dataset(cfg)
        base = self.dataset.base
        self.label_nc = getattr(base, "label_nc", len(self.classes))
        self.contain_dontcare = bool(getattr(base, "contain_dontcare", False))
        self.use_instance = self.dataset.use_instance
        self.generator = SPADEGenerator(
            self.label_nc,
            cfg.ngf,
            cfg.z_dim,
            cfg.num_upsampling_layers or "normal",
            cfg.crop_size,
            cfg.aspect_ratio or 1.0,
            cfg.norm,
            cfg.use_vae,
            cfg.spade_hidden,
            self.contain_dontcare,
            self.use_instance,
            cfg.spectral,
        )
        self.semantic_nc = self.generator.semantic_nc
        self.discriminator = MultiscaleDiscriminator(self.semantic_nc + 3, cfg.num_d, cfg.ndf, cfg.n_layers_d)
        self.g_module: nn.Module = _SpadeForward(self.generator)
        self.g_net: nn.Module = self.g_module  # the trainer swaps in DDP wrappers under torchrun
        self.d_net: nn.Module = self.discriminator
        self._fake: Tensor | None = None
        self._last: tuple[Tensor, Tensor, Tensor] | None = None

    # -- batches

    def inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(one-hot label map (N, semantic_nc, H, W), real image in [−1, 1]) of a batch on the device."""
        labels = batch["label"]
        n, h, w = labels.shape
        channels = self.label_nc + int(self.contain_dontcare)
        # the dataset validated every label already; scatter without a range check (no device sync)
        segmap = torch.zeros(n, channels, h, w, device=labels.device, dtype=batch["image"].dtype)
        segmap.scatter_(1, labels.unsqueeze(1), 1.0)
        if self.use_instance:
            segmap = torch.cat([segmap, batch["edges"].to(segmap.dtype)], 1)
        return segmap, batch["image"] * 2 - 1

    def batch_images(self, batch: dict[str, Tensor]) -> int:
        """Real images a step reads."""
        return batch["label"].shape[0]

    # -- losses

    def g_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Hinge + feature matching [+ VGG] [+ KL], each weighted; keeps the fake for D's step."""
        cfg = self.config
        segmap, real = self.inputs(batch)
        fake, mu, logvar = self.g_net(segmap, real)
        with frozen(self.discriminator):  # D's weights get no gradient from G's loss
            pred_fake, pred_real = discriminate(self.discriminator, segmap, fake, real)
        terms = {"g_gan": hinge_g_loss(pred_fake)}
        if cfg.feat_weight > 0:
            terms["g_feat"] = cfg.feat_weight * feature_matching_loss(pred_fake, pred_real)
        if self.vgg is not None:
            terms["g_vgg"] = cfg.vgg_weight * self.vgg(fake, real)
        if mu is not None and logvar is not None and cfg.kld_weight > 0:
            terms["g_kld"] = cfg.kld_weight * kl_divergence(mu, logvar)
        self._fake = fake.detach()
        k = min(PREVIEW, fake.shape[0])
        # kept on the device: copying to the CPU here would sync a GPU every step; preview() does it
        self._last = (batch["label"][:k], batch["image"][:k].detach(), self._fake[:k])
        return sum(terms.values()), terms  # type: ignore[return-value]

    def d_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Hinge on D(real) and D(fake) (the fake of the G step just taken, detached)."""
        segmap, real = self.inputs(batch)
        fake = self._fake
        if fake is None:
            with torch.no_grad():
                fake = self.g_module(segmap, real)[0]
        self._fake = None
        pred_fake, pred_real = discriminate(self.d_net, segmap, fake.to(real.dtype), real)
        loss_real, loss_fake = hinge_parts(pred_real, pred_fake)
        return loss_real + loss_fake, {"d_real": loss_real, "d_fake": loss_fake}

    def preview(self) -> list[Tensor] | None:
        """Rows of the sample grid: label maps (palette colours), real images, fakes."""
        if self._last is None:
            return None
        labels, real, fake = self._last
        return [colorize_labels(labels, self.palette), real.float().cpu(), ((fake.float() + 1) / 2).cpu()]

    # -- the model folder

    def card(self) -> ModelCard:
        """Architecture "spade", SPADEGenerator's arguments, contract (classes, palette, size)."""
        cfg, g = self.config, self.generator
        arguments = {
            "label_nc": g.label_nc,
            "ngf": g.ngf,
            "z_dim": g.z_dim,
            "num_upsampling_layers": g.num_upsampling_layers,
            "crop_size": g.crop_size,
            "aspect_ratio": g.aspect_ratio,
            "norm": g.norm_spec,
            "use_vae": g.use_vae,
            "hidden": cfg.spade_hidden,
            "contain_dontcare": g.contain_dontcare,
            "use_instance": g.use_instance,
            "spectral": cfg.spectral,
        }
        contract: dict[str, Any] = {
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "size": list(g.out_size),
            "input": "label map (1, H, W) of class indices 0..label_nc-1, or an index / palette-coloured PNG",
            "output": _OUTPUT,
        }
        if g.use_vae:
            contract["style"] = "optional style image, RGB float in [0, 1], (1, 3, h, w)"
        if cfg.layout in LAYOUT_PRESETS or cfg.layout == "coco_stuff":
            # the dataset's own label PNGs read at synthesis as in training (ADE20K: value v is class v-1)
            preset = get_layout(cfg.layout)
            contract["layout"] = preset.name
            contract["label_file"] = label_file(g.label_nc, g.contain_dontcare, preset.label_shift).card()
        h, w = g.out_size
        description = cfg.description or (
            f"Semantic image synthesis ({g.norm_spec} generator, ngf {g.ngf}) at {w}×{h}, "
            f"{g.label_nc} classes, trained on {cfg.layout}."
        )
        return ModelCard(
            name=cfg.model_name,
            architecture="spade",
            arguments=arguments,
            contract=contract,
            description=description,
        )

    def provenance(self) -> dict[str, Any]:
        """Losses, discriminator, encoder and data."""
        cfg = self.config
        out: dict[str, Any] = {
            "weights": {
                "gan": 1.0,
                "feat": cfg.feat_weight,
                "vgg": cfg.vgg_weight,
                "kld": cfg.kld_weight if cfg.use_vae else 0.0,
            },
            "discriminator": {
                "kind": "multiscale PatchGAN",
                "num_d": cfg.num_d,
                "ndf": cfg.ndf,
                "n_layers": cfg.n_layers_d,
            },
            "data": {"pairs": self.data_summary},
        }
        if self.vgg is not None:
            depth = self.vgg.encoder.depth
            out["encoder"] = {
                "kind": cfg.encoder,
                "depth": depth,
                "layers": list(self.vgg.layers),
                **encoder_provenance(cfg.encoder, depth, cfg.encoder_weights, cfg.encoder_seed),
            }
        return out


class CGANRecipe:
    """SNGAN projection cGAN: ``n_dis`` D updates on fresh real batches, then one G update."""

    g_first = False

    def __init__(self, cfg: CGANConfig, device: torch.device) -> None:
        self.config, self.device = cfg, device
        self.dataset = ClassFolders(cfg.data, cfg.image_size, cfg.flip)
        self.classes = self.dataset.classes
        k = len(self.classes)
        self.generator = ClassConditionalGenerator(
            k, cfg.z_dim, cfg.ngf, cfg.image_size, cfg.norm, cfg.g_spectral
        )
        self.discriminator = ProjectionDiscriminator(k, cfg.ndf, cfg.image_size)
        self.g_module: nn.Module = self.generator
        self.g_net: nn.Module = self.generator
        self.d_net: nn.Module = self.discriminator
        self._fakes: Tensor | None = None
        self._real: Tensor | None = None

    def batch_images(self, batch: dict[str, Tensor]) -> int:
        """Real images a D step reads."""
        return batch["image"].shape[0]

    def _noise(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        z = torch.randn(n, self.config.z_dim, device=device)
        y = torch.randint(len(self.classes), (n,), device=device)
        return z, y

    def d_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Hinge on D(real, y_real) and D(G(z, y), y) for fresh z and uniform y."""
        real, y_real = batch["image"] * 2 - 1, batch["label"].long()
        z, y = self._noise(real.shape[0], real.device)
        with torch.no_grad():
            fake = self.g_module(z, y)
        pred_real = self.d_net(real, y_real)
        pred_fake = self.d_net(fake.to(real.dtype), y)
        loss_real, loss_fake = hinge_parts(pred_real, pred_fake)
        self._real = batch["image"][:PREVIEW].detach()
        return loss_real + loss_fake, {"d_real": loss_real, "d_fake": loss_fake}

    def g_loss(self, batch: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor]]:
        """−mean D(G(z, y), y) for fresh z and uniform y."""
        z, y = self._noise(self.config.batch_size, self.device)
        fake = self.g_net(z, y)
        with frozen(self.discriminator):
            pred = self.discriminator(fake, y)
        self._fakes = fake[:PREVIEW].detach()  # on the device until preview()
        loss = hinge_g_loss(pred)
        return loss, {"g_gan": loss.detach()}

    def preview(self) -> list[Tensor] | None:
        """Rows of the sample grid: real images, fakes."""
        if self._fakes is None:
            return None
        fakes = ((self._fakes.float() + 1) / 2).cpu()
        real = self._real.float().cpu() if self._real is not None else torch.zeros_like(fakes)
        k = min(fakes.shape[0], real.shape[0])
        return [real[:k], fakes[:k]]

    def card(self) -> ModelCard:
        """Architecture "cgan", ClassConditionalGenerator's arguments, contract (classes, size)."""
        cfg, g = self.config, self.generator
        arguments = {
            "num_classes": g.num_classes,
            "z_dim": g.z_dim,
            "ngf": cfg.ngf,
            "image_size": g.image_size,
            "norm": g.norm_spec,
            "spectral": cfg.g_spectral,
        }
        contract = {
            "classes": list(self.classes),
            "size": [g.image_size, g.image_size],
            "output": _OUTPUT,
            "input": "class name and count (z drawn from N(0, I) by seed)",
        }
        description = cfg.description or (
            f"Class-conditional GAN ({g.norm_spec} generator, projection discriminator) at "
            f"{g.image_size}², {len(self.classes)} classes."
        )
        return ModelCard(
            name=cfg.model_name,
            architecture="cgan",
            arguments=arguments,
            contract=contract,
            description=description,
        )

    def provenance(self) -> dict[str, Any]:
        """Discriminator and data."""
        cfg = self.config
        return {
            "discriminator": {"kind": "SNGAN projection", "ndf": cfg.ndf},
            "n_dis": cfg.n_dis,
            "data": {"classes": self.dataset.summary()},
        }


RECIPES = {"spade": SpadeRecipe, "cgan": CGANRecipe}


# ------------------------------------------------------------------------------------------ the loop


def train_gan(cfg: GANConfig, command: str | None = None) -> TrainResult:
    """Train cfg's GAN recipe for cfg.steps iterations; writes the model folder on rank 0."""
    ranks, device = setup_distributed(cfg.device)
    try:
        return _GANTrainer(cfg, ranks, device, command).run()
    finally:
        if ranks.enabled:
            dist.destroy_process_group()


def _lr_factor(cfg: GANConfig, step: int) -> float:
    """The lr multiplier of (0-based) iteration ``step``: 1, then linear towards 0 over lr_decay_steps."""
    if cfg.lr_decay_steps <= 0:
        return 1.0
    return min(1.0, (cfg.steps - step) / cfg.lr_decay_steps)


class _GANTrainer:
    def __init__(self, cfg: GANConfig, ranks: Distributed, device: torch.device, command: str | None) -> None:
        self.cfg, self.ranks, self.device, self.command = cfg, ranks, device, command
        if cfg.resume is None and list_checkpoints(cfg.runs / "checkpoints"):
            raise ConfigError(
                f"{cfg.runs / 'checkpoints'} holds checkpoints of an earlier run: continue it with "
                "--resume latest, or give another --run-dir (or delete them)"
            )
        resume, ckpt = resume_checkpoint(cfg.resume, cfg.runs / "checkpoints")
        self.resumed_from = resume
        seed_everything(cfg.seed)  # same initialization on every rank
        recipe = RECIPES[cfg.recipe](cfg, device)  # type: ignore[arg-type]
        self.recipe = recipe
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for m in (recipe.generator, recipe.discriminator):
            m.to(device=device, memory_format=self.memory_format)
        if ckpt is not None:
            self._load_nets(ckpt, resume)
        self.ema = MovingAverage(recipe.generator, cfg.ema) if cfg.ema > 0 else None
        if ckpt is not None and self.ema is not None:
            ema_state = {k[4:]: v for k, v in ckpt.tensors.items() if k.startswith("ema.")}
            if ema_state:
                self.ema.module.load_state_dict(ema_state)
            else:
                log.warning("the checkpoint has no EMA of G: the average starts from the current G")
        if ranks.enabled:
            # batch statistics over the global batch; a no-op for instance/group/CLADE-instance norms
            to_sync_batch_norm(recipe.generator)
            to_sync_batch_norm(recipe.discriminator)
            ids = [device.index] if device.type == "cuda" else None
            recipe.g_net = DistributedDataParallel(recipe.g_module, device_ids=ids)
            recipe.d_net = DistributedDataParallel(recipe.discriminator, device_ids=ids)
        lr_g, lr_d = cfg.lrs
        betas = cfg.betas
        self.base_lrs = (lr_g, lr_d)
        g_params = [p for p in recipe.generator.parameters() if p.requires_grad]
        d_params = [p for p in recipe.discriminator.parameters() if p.requires_grad]
        self.opt_g = torch.optim.Adam(g_params, lr=lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(d_params, lr=lr_d, betas=betas)
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        pin = device.type == "cuda"
        self.stream = BatchStream("the dataset", recipe.dataset, cfg, ranks, cfg.seed + 7919, pin)
        seed_everything(cfg.seed + ranks.rank)  # training randomness differs per rank
        self.step, self.images_seen, self.wall_time = 0, 0, 0.0
        self.last_row: dict[str, float] = {}
        if ckpt is not None:
            self._restore(ckpt)

    # -- checkpoints

    def _load_nets(self, ckpt: Checkpoint, path: Path | None) -> None:
        for prefix, module in (("G.", self.recipe.generator), ("D.", self.recipe.discriminator)):
            state = {k[len(prefix) :]: v for k, v in ckpt.model.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:
                raise CheckpointError(f"{path} does not fit this model: {exc}") from exc
        _warn_changed_settings(ckpt.meta.get("config", {}), self.cfg)  # type: ignore[arg-type]

    def _restore(self, ckpt: Checkpoint) -> None:
        meta = ckpt.meta
        self.opt_g.load_state_dict(ckpt.optimizer)
        d_tensors = {
            "optim.state." + k[len(_OPTIM_D) :]: v for k, v in ckpt.tensors.items() if k.startswith(_OPTIM_D)
        }
        self.opt_d.load_state_dict(unflatten_optimizer(d_tensors, meta["optimizer_d"]))
        if meta.get("scaler_g"):
            self.scaler_g.load_state_dict(meta["scaler_g"])
        if meta.get("scaler_d"):
            self.scaler_d.load_state_dict(meta["scaler_d"])
        self.step, self.images_seen, self.wall_time = meta["step"], meta["images_seen"], meta["wall_time_s"]
        self.last_row = meta.get("last_losses", {})
        rank = restore_rng(ckpt, self.ranks, self.device, self.cfg.seed, self.step)
        self.stream.restore(meta["data"][rank])

    def _save_checkpoint(self) -> None:
        states = gather(self.ranks, {"rng": _rng_state(self.device), "data": self.stream.state()})
        if not self.ranks.main:
            return
        recipe = self.recipe
        tensors, python_rng = rng_tensors([state["rng"] for state in states])
        d_tensors, d_rest = flatten_optimizer(self.opt_d.state_dict())
        tensors.update({_OPTIM_D + k[len("optim.state.") :]: v for k, v in d_tensors.items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
        model = {f"G.{k}": v for k, v in recipe.generator.state_dict().items()}
        model.update({f"D.{k}": v for k, v in recipe.discriminator.state_dict().items()})
        meta = {
            "step": self.step,
            "images_seen": self.images_seen,
            "wall_time_s": self.wall_time + (time.perf_counter() - self._t0),
            "world": self.ranks.world,
            "optimizer_d": d_rest,
            "scaler_g": self.scaler_g.state_dict() if self.scaler_g.is_enabled() else {},
            "scaler_d": self.scaler_d.state_dict() if self.scaler_d.is_enabled() else {},
            "python_rng": python_rng,
            "data": [s["data"] for s in states],
            "config": self.cfg.model_dump(mode="json"),
            "last_losses": self.last_row,
        }
        folder = self.cfg.runs / "checkpoints"
        ckpt = Checkpoint(model, self.opt_g.state_dict(), tensors, meta)
        save_checkpoint(checkpoint_path(folder, self.step), ckpt)
        prune_checkpoints(folder, self.cfg.keep_checkpoints)

    # -- one iteration

    def _batch(self) -> dict[str, Tensor]:
        out = {}
        for name, t in self.stream.next().items():
            t = t.to(self.device, non_blocking=True)
            out[name] = t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t
        return out

    def _update(
        self, loss_fn: Any, batch: Any, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler
    ) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        with torch.autocast(self.device.type, dtype=amp, enabled=cfg.amp != "none"):
            total, terms = loss_fn(batch)
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        return total, terms

    def _iteration(self) -> dict[str, Tensor]:
        recipe, cfg = self.recipe, self.cfg
        factor = _lr_factor(cfg, self.step)
        for opt, base in ((self.opt_g, self.base_lrs[0]), (self.opt_d, self.base_lrs[1])):
            for group in opt.param_groups:
                group["lr"] = base * factor
        recipe.generator.train()
        recipe.discriminator.train()
        images = 0
        if recipe.g_first:
            batch = self._batch()
            images = recipe.batch_images(batch)
            g_total, g_terms = self._update(recipe.g_loss, batch, self.opt_g, self.scaler_g)
            d_total, d_terms = self._update(recipe.d_loss, batch, self.opt_d, self.scaler_d)
        else:
            d_sum: dict[str, Tensor] = {}
            for _ in range(getattr(cfg, "n_dis", 1)):
                batch = self._batch()
                images += recipe.batch_images(batch)
                d_total, d_terms = self._update(recipe.d_loss, batch, self.opt_d, self.scaler_d)
                for k, v in d_terms.items():
                    d_sum[k] = d_sum.get(k, 0) + v.detach() / cfg.n_dis  # type: ignore[attr-defined]
            d_terms, d_total = d_sum, sum(d_sum.values())  # type: ignore[assignment]
            g_total, g_terms = self._update(recipe.g_loss, None, self.opt_g, self.scaler_g)
        if self.ema is not None:
            self.ema.update(recipe.generator)
        self.images_seen += images * self.ranks.world
        return {"g_loss": g_total.detach(), **g_terms, "d_loss": d_total.detach(), **d_terms}

    def _reduce(self, terms: dict[str, Tensor]) -> dict[str, float]:
        values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
        if self.ranks.enabled:
            dist.all_reduce(values)
            values /= self.ranks.world
        return dict(zip(terms, values.tolist(), strict=True))

    def _sample_grid(self) -> None:
        rows = self.recipe.preview()
        if not rows:
            return
        path = self.cfg.runs / "samples" / f"step-{self.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = torch.cat([r.float().clamp(0, 1).cpu() for r in rows])
        save_image(grid, str(path), nrow=rows[0].shape[0], padding=2, pad_value=1.0)

    def run(self) -> TrainResult:
        cfg, ranks = self.cfg, self.ranks
        if ranks.main:
            cfg.runs.mkdir(parents=True, exist_ok=True)
        loss_log = _LossLog(cfg.runs, self.step if self.resumed_from else None) if ranks.main else None
        history: list[dict[str, float]] = []
        bar = progress_bar(cfg, self.step, ranks.main)
        self._t0 = t_last = time.perf_counter()
        seen_last = self.images_seen
        try:
            while self.step < cfg.steps:
                factor = _lr_factor(cfg, self.step)
                terms = self._iteration()
                self.step += 1
                bar.update(1)
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:
                    losses = self._reduce(terms)
                    if not all(map(_finite, losses.values())):
                        raise TrainingError(
                            f"step {self.step}: a loss is not finite ({losses}); lower --lr, or use "
                            "--amp bf16 instead of fp16"
                        )
                    now = time.perf_counter()
                    speed = (self.images_seen - seen_last) / max(now - t_last, 1e-9)
                    t_last, seen_last = now, self.images_seen
                    row = {
                        "step": self.step,
                        **losses,
                        "lr_g": self.base_lrs[0] * factor,
                        "lr_d": self.base_lrs[1] * factor,
                        "images_per_s": speed,
                        "wall_time_s": self.wall_time + now - self._t0,
                    }
                    self.last_row = row
                    history.append(row)
                    if loss_log is not None:
                        loss_log.write(row)
                        shown = {k: f"{v:.4g}" for k, v in losses.items() if k in ("g_loss", "d_loss")}
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
        replaced = sum(gather(self.ranks, self.stream.replaced))
        card = self._write_model(replaced) if ranks.main else None
        if ranks.enabled:
            dist.barrier()
        return TrainResult(cfg.out, card, self.step, history)

    def _write_model(self, replaced: int) -> ModelCard:
        cfg, recipe = self.cfg, self.recipe
        lr_g, lr_d = self.base_lrs
        provenance = {
            "command": self.command or "",
            "recipe": cfg.recipe,
            "steps": self.step,
            "images_seen": self.images_seen,
            "batch_size": cfg.batch_size,
            "global_batch_size": cfg.batch_size * self.ranks.world,
            "processes": self.ranks.world,
            "lr_g": lr_g,
            "lr_d": lr_d,
            "betas": list(cfg.betas),
            "ttur": bool(getattr(cfg, "ttur", False)),
            "lr_decay_steps": cfg.lr_decay_steps,
            "ema": cfg.ema,
            "amp": cfg.amp,
            "seed": cfg.seed,
            "wall_time_s": round(self.wall_time, 3),
            "hardware": hardware_summary(self.device),
            "torch": torch.__version__,
            "final_losses": {k: v for k, v in self.last_row.items() if k not in ("step", "wall_time_s")},
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "decode_failures": replaced,
            **recipe.provenance(),
            "run_dir": str(cfg.runs),
        }
        if self.resumed_from is not None:
            provenance["resumed_from"] = str(self.resumed_from)
        card = recipe.card().model_copy(update={"provenance": _toml_safe(provenance)})
        ema = self.ema.for_saving() if self.ema is not None else None
        pair = GANModules(recipe.generator, recipe.discriminator, ema)
        return save_model(cfg.out, card, weights_to_save(card, pair))


__all__ = [
    "RECIPES",
    "CGANRecipe",
    "ClassFolders",
    "GANModules",
    "MovingAverage",
    "SeededPairs",
    "SpadeRecipe",
    "discriminate",
    "frozen",
    "hinge_parts",
    "read_classes",
    "spade_dataset",
    "train_gan",
]
