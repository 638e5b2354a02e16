"""The GAN recipes, ``spade`` and ``cgan``: two optimizer updates each, trained by the one trainer.

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

Each declares its updates (``G``, ``D``) and the order of one iteration
(:class:`~stylenorm.train.base.Phase`); :mod:`stylenorm.train.engine` does the
rest as for the style recipes. The checkpoint holds G, D and the moving average
of G (``--ema``); the model folder stores the generator only (its moving
average when set).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.data import Dataset

from stylenorm.data import DataError, ImageFolder
from stylenorm.data.layouts import LAYOUT_PRESETS, get_layout, label_file
from stylenorm.data.scenes import PALETTE, SCENE_CLASSES, SyntheticScenes
from stylenorm.data.segmentation import PairedTransform, SegmentationDataset, instance_edges
from stylenorm.inference.synthesize import colorize_labels, default_palette
from stylenorm.losses.gan import VGGLoss, feature_matching_loss, hinge_g_loss, kl_divergence
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.nets.discriminators import MultiscaleDiscriminator, ProjectionDiscriminator
from stylenorm.nets.spade import SPADEGenerator
from stylenorm.nets.vgg import encoder_provenance
from stylenorm.repository import ModelCard
from stylenorm.train.base import Phase, Recipe, Update
from stylenorm.train.config import CGANConfig, GANConfig, SpadeConfig
from stylenorm.train.style import build_encoder, encoder_depth

log = logging.getLogger(__name__)

PREVIEW = 4  # samples per sample-grid row
VGG_DEPTH, VGG_LAST = 19, "relu5_1"
_SEED_MASK = (1 << 63) - 1
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


class _GANRecipe(Recipe):
    """What spade and cgan share: G and D with their own Adam (TTUR lrs, the recipe's betas), the
    optional moving average of G (checkpointed as module ``ema``, saved instead of G), one data stream."""

    generator: nn.Module
    discriminator: nn.Module
    g_module: nn.Module  # what G's update trains (the generator, or its training forward)
    stream: str  # the name of the data stream (and of its provenance entry)

    def _setup(self, cfg: GANConfig, dataset: Dataset) -> None:
        self.datasets = {self.stream: dataset}
        self.g_net: nn.Module = self.g_module  # the trainer puts DDP wrappers here under torchrun
        self.d_net: nn.Module = self.discriminator
        lr_g, lr_d = cfg.lrs
        self.updates = [
            Update("G", self.g_module, self.g_loss, lr_g, cfg.betas, "g_loss", "g_net"),
            Update("D", self.discriminator, self.d_loss, lr_d, cfg.betas, "d_loss", "d_net"),
        ]
        self.modules = {"G": self.generator, "D": self.discriminator}
        self.ema = MovingAverage(self.generator, cfg.ema) if cfg.ema > 0 else None
        if self.ema is not None:
            self.modules["ema"] = self.ema.module

    def g_loss(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """G's weighted total and terms for a batch (cgan: None, classes and z are drawn)."""
        raise NotImplementedError

    def d_loss(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """D's weighted total and terms for a batch."""
        raise NotImplementedError

    def stream_seed(self, index: int) -> int:
        """The seed the GAN loop gave its one stream before the trainers were one (old checkpoints
        continue exactly)."""
        return int(self.config.seed) + 7919 * (index + 1)

    def stream_description(self, name: str) -> tuple[str, str]:
        return "the dataset", "samples"

    def load_states(self, states: dict[str, dict[str, Tensor]]) -> None:
        """G and D; the EMA of G too, or, from a checkpoint without one, the average starts at G."""
        if self.ema is not None and "ema" not in states:
            log.warning("the checkpoint has no EMA of G: the average starts from the current G")
            states = states | {"ema": states.get("G", {})}
        super().load_states(states)

    def after_iteration(self) -> None:
        if self.ema is not None:
            self.ema.update(self.generator)

    def model_to_save(self) -> nn.Module:
        """G, D and (re-converged for its spectral norms) the EMA of G, which the folder stores if set."""
        ema = self.ema.for_saving() if self.ema is not None else None
        return GANModules(self.generator, self.discriminator, ema)


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


class SpadeRecipe(_GANRecipe):
    """SPADE: G, then D, on each batch of label maps (see the module docstring)."""

    stream = "pairs"
    schedule = (Phase("G"), Phase("D", batch="same"))

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
        self.g_module = _SpadeForward(self.generator)
        self._setup(cfg, self.dataset)
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


class CGANRecipe(_GANRecipe):
    """SNGAN projection cGAN: ``n_dis`` D updates on fresh real batches, then one G update."""

    stream = "classes"

    def __init__(self, cfg: CGANConfig, device: torch.device) -> None:
        self.config, self.device = cfg, device
        self.dataset = ClassFolders(cfg.data, cfg.image_size, cfg.flip)
        self.classes = self.dataset.classes
        k = len(self.classes)
        self.generator = ClassConditionalGenerator(
            k, cfg.z_dim, cfg.ngf, cfg.image_size, cfg.norm, cfg.g_spectral
        )
        self.discriminator = ProjectionDiscriminator(k, cfg.ndf, cfg.image_size)
        self.g_module = self.generator
        self._setup(cfg, self.dataset)
        self.schedule = (Phase("D", repeat=cfg.n_dis), Phase("G", batch="none"))
        self._fakes: Tensor | None = None
        self._real: Tensor | None = None

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


__all__ = [
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
]
