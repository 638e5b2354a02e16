"""Label-map / image pairs in the layouts SPADE reads, checked so that no label can index out of bounds.

Layouts (the folder trees of NVlabs/SPADE's dataset modes; label_nc, don't-care and the file-value
shift of each come from :data:`stylenorm.data.layouts.LAYOUT_PRESETS`, which the importer uses too):

* ``ade20k``: ``ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_*.jpg`` and
  ``annotations/{training,validation}/ADE_*.png``, found by a recursive scan of the root for
  ``_train_`` / ``_val_`` names and paired by stem. File value 0 ("other") is don't-care and
  1..150 become classes 0..149 (the official shift), label_nc 150.
* ``cityscapes``: ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` with
  ``gtFine/{train,val}/<city>/*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``, paired
  on the first three ``_`` tokens of the name; label_nc 35, no don't-care, instances.
* ``coco``: ``{train,val}_img/``, ``{train,val}_label/``, ``{train,val}_inst/`` (plus the
  ``*_portrait`` folders at train when present), paired by stem; label_nc 182, 255 = don't-care.
* ``custom``: a label folder, an image folder and optionally an instance folder (flat), paired by
  file stem; label_nc must be given.

Label handling. A label value v is a class when 0 ≤ v < label_nc. The value 255 (when
label_nc ≤ 255) and the value label_nc (ADE20K: the file value 0) are "don't care": with
``contain_dontcare`` they go to the extra channel label_nc, otherwise they are an error. Any
other value raises a :class:`~stylenorm.data.images.DataError` naming the value(s), the valid
range and the file — never a CUDA "index out of bounds" later. RGB colour-coded maps, lossy (JPEG) maps and
label/image pairs of different sizes are rejected with a message that says what to do.

Items are dicts: ``label`` (H, W) int64 (don't-care = label_nc), ``image`` (3, H, W) float in
[0, 1], ``path`` (the image file) and, with instances, ``instance`` (H, W) int64 ids and
``edges`` (1, H, W) float (1 where a pixel's id differs from a 4-neighbour's).
:func:`semantic_input` turns a batch into the generator's input.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from stylenorm.data.images import IMAGE_EXTENSIONS, DataError
from stylenorm.data.layouts import DONTCARE_VALUE, LabelFile, dontcare_values, get_layout
from stylenorm.errors import ShapeError, SpecError

__all__ = [
    "LAYOUTS",
    "PREPROCESS_MODES",
    "PairPaths",
    "PairedTransform",
    "SegmentationDataset",
    "collate_semantic",
    "colors_to_labels",
    "instance_edges",
    "map_labels",
    "open_segmentation",
    "read_image",
    "read_instance_map",
    "read_label_map",
    "semantic_input",
    "to_one_hot",
]

_INDEX_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")


# ------------------------------------------------------------------------------------------ tensors


def _as_batch_map(t: Tensor, what: str) -> Tensor:
    """(N, H, W) or (N, 1, H, W) integer map -> (N, H, W)."""
    if not isinstance(t, Tensor) or t.is_floating_point() or t.dtype == torch.bool:
        got = t.dtype if isinstance(t, Tensor) else type(t).__name__
        raise ShapeError(f"{what} must be an integer tensor (N, H, W) or (N, 1, H, W); got {got}")
    if t.dim() == 4 and t.shape[1] == 1:
        return t[:, 0]
    if t.dim() != 3:
        raise ShapeError(f"{what} must be (N, H, W) or (N, 1, H, W); got shape {tuple(t.shape)}")
    return t


def to_one_hot(
    labels: Tensor, label_nc: int, dontcare: bool = False, dtype: torch.dtype = torch.float32
) -> Tensor:
    """labels (N, H, W) or (N, 1, H, W) int -> one-hot (N, label_nc (+1 if dontcare), H, W).

    Classes are 0 … label_nc − 1; with ``dontcare`` the values label_nc and
    255 (when label_nc < 255) go to the extra last channel. Any other value
    raises a ShapeError naming it and the valid range.
    """
    if label_nc < 1:
        raise SpecError(f"label_nc must be positive; got {label_nc}")
    lab = _as_batch_map(labels, "labels").long()
    if dontcare and label_nc < DONTCARE_VALUE:
        lab = torch.where(lab == DONTCARE_VALUE, torch.full_like(lab, label_nc), lab)
    top = label_nc if dontcare else label_nc - 1
    if lab.numel():
        bad = (lab < 0) | (lab > top)
        if bool(bad.any()):
            values = torch.unique(lab[bad])[:5].tolist()
            valid = f"0..{label_nc - 1}" + (f", don't-care {label_nc} or 255" if dontcare else "")
            raise ShapeError(
                f"label value(s) {values} out of range for label_nc={label_nc}: valid are {valid}"
                + ("" if dontcare else "; 255/label_nc are don't-care only with dontcare=True")
            )
    n, h, w = lab.shape
    out = torch.zeros(n, top + 1, h, w, dtype=dtype, device=lab.device)
    return out.scatter_(1, lab.unsqueeze(1), 1.0)


def instance_edges(instance: Tensor) -> Tensor:
    """instance ids (N, H, W) or (N, 1, H, W) -> (N, 1, H, W) float: 1 where a 4-neighbour has another id."""
    ids = _as_batch_map(instance, "instance map")
    edge = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    horizontal = ids[:, :, 1:] != ids[:, :, :-1]
    vertical = ids[:, 1:, :] != ids[:, :-1, :]
    # both sides of a boundary are marked, as the official edge map
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge.unsqueeze(1).float()


def semantic_input(
    labels: Tensor, label_nc: int, contain_dontcare: bool = False, edges: Tensor | None = None
) -> Tensor:
    """The generator's input: one-hot labels (N, label_nc (+1), H, W), then edges (N, 1, H, W) last."""
    one_hot = to_one_hot(labels, label_nc, contain_dontcare)
    if edges is None:
        return one_hot
    if edges.dim() == 3:
        edges = edges.unsqueeze(1)
    if edges.shape != (one_hot.shape[0], 1, *one_hot.shape[2:]):
        raise ShapeError(
            f"edges must be (N, 1, H, W) = {(one_hot.shape[0], 1, *one_hot.shape[2:])}; "
            f"got {tuple(edges.shape)}"
        )
    return torch.cat([one_hot, edges.to(one_hot.dtype)], dim=1)


# ------------------------------------------------------------------------------------------ files


def _open(path: Path, what: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}") from None
    return img


def read_label_map(path: str | Path) -> np.ndarray:
    """A single-channel class-index map from a lossless image file -> (H, W) int64 raw values.

    Accepts 8/16/32-bit grey and palette ('P') images, and RGB(A) whose
    channels are all equal; rejects colour-coded RGB maps and JPEG files.
    """
    path = Path(path)
    img = _open(path, "label map")
    if img.format == "JPEG":
        raise DataError(
            f"label map {path} is a JPEG: lossy compression changes class ids at region boundaries. "
            "Save label maps as PNG (single channel, one integer id per class)"
        )
    if img.mode in _INDEX_MODES:
        return np.asarray(img).astype(np.int64)
    if img.mode in ("RGB", "RGBA", "LA"):
        arr = np.asarray(img)
        colour = arr[..., :3] if img.mode != "LA" else arr[..., :1]
        alpha_ok = img.mode == "RGB" or bool((arr[..., -1] == 255).all())
        if alpha_ok and bool((colour == colour[..., :1]).all()):
            return colour[..., 0].astype(np.int64)  # a grey index map stored as RGB
        raise DataError(
            f"label map {path} is a colour-coded {img.mode} image; an index map is expected (a single "
            "channel, 'L' or 'P', whose pixel values are the class ids 0..label_nc−1). Convert colours to "
            "ids first, e.g. with stylenorm.data.segmentation.colors_to_labels(image, palette)"
        )
    raise DataError(
        f"label map {path} has image mode {img.mode!r}; expected a single-channel integer image "
        f"(one of {', '.join(_INDEX_MODES)})"
    )


def read_instance_map(path: str | Path) -> np.ndarray:
    """Instance ids from an image file -> (H, W) int64; RGB ids are packed as r·65536 + g·256 + b."""
    path = Path(path)
    img = _open(path, "instance map")
    if img.mode in _INDEX_MODES:
        return np.asarray(img).astype(np.int64)
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img)[..., :3].astype(np.int64)
        return (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    raise DataError(f"instance map {path} has image mode {img.mode!r}; expected an integer image")


def read_image(path: str | Path) -> Tensor:
    """An RGB image file -> (3, H, W) float in [0, 1]."""
    img = _open(Path(path), "image").convert("RGB")
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(255.0)


def map_labels(
    raw: np.ndarray, label_nc: int, contain_dontcare: bool, shift: int = 0, source: str = "label map"
) -> np.ndarray:
    """Raw file values (H, W) -> classes 0..label_nc−1, don't-care = label_nc; DataError on anything else.

    ``shift`` is added first (ADE20K: −1, so that 0 "other" becomes −1 =
    don't-care). Don't-care values (:func:`~stylenorm.data.layouts.dontcare_values`):
    raw 255 (when label_nc ≤ 255), and label_nc without a shift or −1 after a shift.
    """
    # a shifted layout (ADE20K) has its own don't-care value; the value label_nc is then just too large
    labels, bad = LabelFile(shift, dontcare_values(label_nc, shift)).decode(raw, label_nc)
    dont = labels == label_nc
    if bad.any():
        found, counts = np.unique(raw[bad], return_counts=True)
        listing = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(found[:6], counts[:6], strict=True))
        more = f" and {len(found) - 6} more" if len(found) > 6 else ""
        lo, hi = -shift, label_nc - 1 - shift
        raise DataError(
            f"{source}: label value(s) {listing}{more} outside the valid range {lo}..{hi} for "
            f"label_nc={label_nc}"
            + (f" (file values are shifted by {shift})" if shift else "")
            + ". Set label_nc to the number of classes (every class id must be < label_nc), or mark "
            "unlabeled pixels 255 and enable contain_dontcare"
        )
    if dont.any() and not contain_dontcare:
        found = sorted({int(v) for v in np.unique(raw[dont])})
        raise DataError(
            f"{source}: {int(dont.sum())} pixel(s) hold the don't-care value(s) {found} but "
            f"contain_dontcare is off (valid classes are 0..{label_nc - 1}); enable contain_dontcare "
            "(adds one label channel) or relabel those pixels"
        )
    return labels


def colors_to_labels(image: np.ndarray | Image.Image, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Turn a colour-coded label image (H, W, 3) uint8 into class ids (H, W) int64 by exact palette match.

    Colour k of ``palette`` becomes class k; a colour not in the palette
    raises a DataError listing it (anti-aliased brush edges are the usual cause).
    """
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise DataError(f"a colour-coded label image must be (H, W, 3); got shape {arr.shape}")
    packed = (arr[..., 0].astype(np.int64) << 16) | (arr[..., 1].astype(np.int64) << 8) | arr[..., 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): k for k, (r, g, b) in enumerate(palette)}
    if len(table) != len(palette):
        raise DataError("the palette repeats a colour; each class needs its own colour")
    keys = np.array(list(table), dtype=np.int64)
    ids = np.array(list(table.values()), dtype=np.int64)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], packed), 0, len(keys) - 1)
    found = keys[order][pos] == packed
    if not found.all():
        unknown, counts = np.unique(packed[~found], return_counts=True)
        listing = ", ".join(
            f"({u >> 16}, {(u >> 8) & 255}, {u & 255}) × {c}"
            for u, c in zip(unknown[:5], counts[:5], strict=True)
        )
        raise DataError(f"colours not in the palette: {listing}{' …' if len(unknown) > 5 else ''}")
    return ids[order][pos]


# ------------------------------------------------------------------------------------------ transforms

PREPROCESS_MODES = (
    "resize_and_crop",
    "crop",
    "scale_width_and_crop",
    "scale_shortside_and_crop",
    "fixed",
    "none",
)


def _nearest(t: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest resize of an integer map (H, W) by pixel centres (as PIL's NEAREST), exact for any dtype."""
    h, w = t.shape[-2:]
    rows = ((torch.arange(size[0]) + 0.5) * h / size[0]).long().clamp_(max=h - 1)
    cols = ((torch.arange(size[1]) + 0.5) * w / size[1]).long().clamp_(max=w - 1)
    return t[..., rows[:, None], cols[None, :]]


@dataclass(frozen=True)
class PairedTransform:
    """Resize / random crop / random flip applied identically to label, image and instance maps.

    Modes as SPADE's ``preprocess_mode``: ``resize_and_crop`` (to load_size²,
    then a random crop_size² crop), ``crop`` (random crop only),
    ``scale_width_and_crop`` / ``scale_shortside_and_crop`` (width / short side
    to load_size keeping the aspect, then the crop), ``fixed`` (resize to
    (crop_size / aspect_ratio, crop_size)), ``none``. Labels and instances are
    resized by nearest, images bicubic (antialiased, clamped to [0, 1]).
    """

    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    aspect_ratio: float = 1.0
    flip: bool = True

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise SpecError(
                f"preprocess must be one of {', '.join(PREPROCESS_MODES)}; got {self.preprocess!r}"
            )
        if self.crop_size < 1 or self.load_size < 1 or self.aspect_ratio <= 0:
            raise SpecError("load_size, crop_size and aspect_ratio must be positive")
        if self.preprocess == "resize_and_crop" and self.load_size < self.crop_size:
            raise SpecError(f"load_size {self.load_size} must be ≥ crop_size {self.crop_size} to crop")

    def _size(self, h: int, w: int) -> tuple[int, int]:
        p, load = self.preprocess, self.load_size
        if p == "resize_and_crop":
            return load, load
        if p == "scale_width_and_crop":
            return max(1, round(load * h / w)), load
        if p == "scale_shortside_and_crop":
            s = load / min(h, w)
            return max(1, round(h * s)), max(1, round(w * s))
        if p == "fixed":
            return max(1, round(self.crop_size / self.aspect_ratio)), self.crop_size
        return h, w

    def __call__(
        self,
        label: Tensor,
        image: Tensor,
        instance: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """label (H, W), image (3, H, W), instance (H, W) | None -> the same, transformed alike."""
        h, w = label.shape[-2:]
        nh, nw = self._size(h, w)
        if (nh, nw) != (h, w):
            label = _nearest(label, (nh, nw))
            instance = _nearest(instance, (nh, nw)) if instance is not None else None
            image = TF.resize(image, [nh, nw], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            image = image.clamp_(0.0, 1.0)
        if self.preprocess.endswith("crop"):
            c = self.crop_size
            if nh < c or nw < c:
                raise DataError(
                    f"a {nh}×{nw} map (after {self.preprocess}) is smaller than crop_size {c}; "
                    "raise load_size or lower crop_size"
                )
            top = int(torch.randint(nh - c + 1, (1,), generator=generator))
            left = int(torch.randint(nw - c + 1, (1,), generator=generator))
            label, image = (
                label[..., top : top + c, left : left + c],
                image[..., top : top + c, left : left + c],
            )
            if instance is not None:
                instance = instance[..., top : top + c, left : left + c]
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            label, image = label.flip(-1), image.flip(-1)
            instance = instance.flip(-1) if instance is not None else None
        return (
            label.contiguous(),
            image.contiguous(),
            (instance.contiguous() if instance is not None else None),
        )


# ------------------------------------------------------------------------------------------ pairing


@dataclass(frozen=True)
class PairPaths:
    """The files of one sample: its label map, image and (optional) instance map."""

    label: Path
    image: Path
    instance: Path | None = None


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _files(folder: Path, recursive: bool, suffixes: tuple[str, ...], what: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{what} folder {folder} does not exist or is not a folder")
    if recursive:
        found = [Path(d) / name for d, _dirs, names in os.walk(folder, followlinks=True) for name in names]
    else:
        found = [p for p in folder.iterdir() if p.is_file()]
    return sorted(
        (p for p in found if p.name.lower().endswith(suffixes) and not p.name.startswith(".")),
        key=lambda p: _natural_key(p.name),
    )


def _by_key(paths: Iterable[Path], key: Callable[[Path], str], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        k = key(p)
        if k in out:
            raise DataError(f"two {what} files share the name {k!r}: {out[k]} and {p}")
        out[k] = p
    return out


def _pair(
    labels: list[Path],
    images: list[Path],
    instances: list[Path] | None,
    key: Callable[[Path], str],
    where: str,
) -> list[PairPaths]:
    """Pair files by key; every label needs an image (and an instance map when given), and vice versa."""
    lab, img = _by_key(labels, key, "label"), _by_key(images, key, "image")
    if not lab and not img:
        raise DataError(f"no label maps or images found in {where}")
    problems = []
    for name, mine, other in (("label map", lab, img), ("image", img, lab)):
        orphans = sorted(set(mine) - set(other), key=_natural_key)
        if orphans:
            partner = "image" if name == "label map" else "label map"
            shown = ", ".join(mine[k].name for k in orphans[:3])
            problems.append(
                f"{len(orphans)} {name}(s) without a matching {partner} "
                f"({shown}{' …' if len(orphans) > 3 else ''})"
            )
    inst = None
    if instances is not None:
        inst = _by_key(instances, key, "instance")
        missing = sorted(set(lab) - set(inst), key=_natural_key)
        if missing:
            shown = ", ".join(lab[k].name for k in missing[:3])
            problems.append(f"{len(missing)} label map(s) without an instance map ({shown})")
    if problems:
        raise DataError(f"unpaired files in {where}: " + "; ".join(problems))
    return [
        PairPaths(lab[k], img[k], inst[k] if inst is not None else None)
        for k in sorted(lab, key=_natural_key)
    ]


def _stem(p: Path) -> str:
    return p.stem


def _city_key(p: Path) -> str:
    return "_".join(p.name.split("_")[:3])


def _phase(phase: str) -> str:
    if phase not in ("train", "val"):
        raise SpecError(f"phase must be 'train' or 'val' (the test phase reads val); got {phase!r}")
    return phase


# ------------------------------------------------------------------------------------------ dataset


class SegmentationDataset(Dataset):
    """Label-map/image pairs -> {"label", "image", "path"[, "instance", "edges"]} (see the module docstring).

    Every label map is validated when read (range, don't-care, mode, size
    against its image); ``transform`` (a :class:`PairedTransform`) then
    crops/flips label, image and instance map alike and the edge map is
    computed last. Build one with a layout constructor (:meth:`ade20k`,
    :meth:`cityscapes`, :meth:`coco_stuff`, :meth:`custom`) or from pairs.
    """

    def __init__(
        self,
        pairs: Sequence[PairPaths],
        label_nc: int,
        contain_dontcare: bool = False,
        label_shift: int = 0,
        transform: PairedTransform | None = None,
        name: str = "custom",
    ) -> None:
        if label_nc < 1:
            raise SpecError(f"label_nc must be positive; got {label_nc}")
        if not pairs:
            raise DataError(f"the {name} dataset has no samples")
        self.pairs = list(pairs)
        self.label_nc, self.contain_dontcare, self.label_shift = label_nc, contain_dontcare, label_shift
        self.use_instance = self.pairs[0].instance is not None
        if any((p.instance is not None) != self.use_instance for p in self.pairs):
            raise DataError(f"the {name} dataset has instance maps for some samples only")
        self.transform, self.name = transform, name

    @property
    def semantic_nc(self) -> int:
        """Channels of the generator input: label_nc (+1 don't-care) (+1 instance edges)."""
        return self.label_nc + int(self.contain_dontcare) + int(self.use_instance)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One validated, transformed sample (see the class docstring)."""
        p = self.pairs[index]
        raw = read_label_map(p.label)
        image = read_image(p.image)
        if raw.shape != tuple(image.shape[1:]):
            raise DataError(
                f"label map {p.label} is {raw.shape[0]}×{raw.shape[1]} (H×W) but its image {p.image} is "
                f"{image.shape[1]}×{image.shape[2]}; a pair must have the same size"
            )
        label = torch.from_numpy(
            map_labels(raw, self.label_nc, self.contain_dontcare, self.label_shift, str(p.label))
        )
        instance = None
        if p.instance is not None:
            ids = read_instance_map(p.instance)
            if ids.shape != raw.shape:
                raise DataError(
                    f"instance map {p.instance} is {ids.shape[0]}×{ids.shape[1]} but label map {p.label} is "
                    f"{raw.shape[0]}×{raw.shape[1]}"
                )
            instance = torch.from_numpy(ids)
        if self.transform is not None:
            label, image, instance = self.transform(label, image, instance)
        item: dict[str, Any] = {"label": label, "image": image, "path": str(p.image)}
        if instance is not None:
            item["instance"] = instance
            item["edges"] = instance_edges(instance[None])[0]
        return item

    # -------------------------------------------------------------- layouts

    @classmethod
    def ade20k(
        cls, root: str | Path, phase: str = "train", transform: PairedTransform | None = None
    ) -> SegmentationDataset:
        """ADE20K (label_nc 150 + don't-care for file value 0), found by a recursive scan of root."""
        token = f"_{_phase(phase)}_"
        root = Path(root)
        files = [p for p in _files(root, True, (".jpg", ".jpeg", ".png"), "ADE20K") if token in p.name]
        images = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
        labels = [p for p in files if p.suffix.lower() == ".png"]
        where = f"{root} (ADE20K: images/…/ADE_{phase}_*.jpg and annotations/…/ADE_{phase}_*.png)"
        pairs = _pair(labels, images, None, _stem, where)
        ade = get_layout("ade20k")
        return cls(
            pairs, ade.label_nc, contain_dontcare=ade.contain_dontcare, label_shift=ade.label_shift,
            transform=transform, name="ade20k",
        )

    @classmethod
    def cityscapes(
        cls,
        root: str | Path,
        phase: str = "train",
        use_instance: bool = True,
        transform: PairedTransform | None = None,
    ) -> SegmentationDataset:
        """Cityscapes fine annotations (label_nc 35, no don't-care, instance edges by default)."""
        root, phase = Path(root), _phase(phase)
        images = [
            p
            for p in _files(root / "leftImg8bit" / phase, True, (".png",), "Cityscapes leftImg8bit")
            if p.name.endswith("_leftImg8bit.png")
        ]
        gt = _files(root / "gtFine" / phase, True, (".png",), "Cityscapes gtFine")
        labels = [p for p in gt if p.name.endswith("_gtFine_labelIds.png")]
        instances = [p for p in gt if p.name.endswith("_gtFine_instanceIds.png")] if use_instance else None
        pairs = _pair(labels, images, instances, _city_key, f"{root} (Cityscapes, {phase})")
        city = get_layout("cityscapes")
        return cls(
            pairs, city.label_nc, contain_dontcare=city.contain_dontcare, label_shift=city.label_shift,
            transform=transform, name="cityscapes",
        )

    @classmethod
    def coco_stuff(
        cls,
        root: str | Path,
        phase: str = "train",
        use_instance: bool = True,
        portraits: bool = True,
        transform: PairedTransform | None = None,
    ) -> SegmentationDataset:
        """COCO-Stuff in SPADE's layout (label_nc 182, 255 = don't-care, instance edges by default)."""
        root, phase = Path(root), _phase(phase)
        suffixes = (".jpg", ".jpeg", ".png")
        labels = _files(root / f"{phase}_label", False, (".png",), "COCO-Stuff label")
        images = _files(root / f"{phase}_img", False, suffixes, "COCO-Stuff image")
        instances = (
            _files(root / f"{phase}_inst", False, (".png",), "COCO-Stuff instance") if use_instance else None
        )
        if portraits and phase == "train" and (root / f"{phase}_label_portrait").is_dir():
            labels += _files(root / f"{phase}_label_portrait", False, (".png",), "COCO-Stuff label")
            images += _files(root / f"{phase}_img_portrait", False, suffixes, "COCO-Stuff image")
            if instances is not None:
                instances += _files(root / f"{phase}_inst_portrait", False, (".png",), "COCO-Stuff instance")
        pairs = _pair(labels, images, instances, _stem, f"{root} (COCO-Stuff, {phase})")
        coco = get_layout("coco-stuff")
        return cls(
            pairs, coco.label_nc, contain_dontcare=coco.contain_dontcare, label_shift=coco.label_shift,
            transform=transform, name="coco",
        )

    @classmethod
    def custom(
        cls,
        label_dir: str | Path,
        image_dir: str | Path,
        label_nc: int,
        instance_dir: str | Path | None = None,
        contain_dontcare: bool = False,
        transform: PairedTransform | None = None,
    ) -> SegmentationDataset:
        """Flat label / image (/ instance) folders paired by file stem; label_nc is required."""
        labels = _files(Path(label_dir), False, IMAGE_EXTENSIONS, "label")
        images = _files(Path(image_dir), False, IMAGE_EXTENSIONS, "image")
        instances = _files(Path(instance_dir), False, IMAGE_EXTENSIONS, "instance") if instance_dir else None
        pairs = _pair(labels, images, instances, _stem, f"{label_dir} / {image_dir}")
        return cls(pairs, label_nc, contain_dontcare, transform=transform, name="custom")


LAYOUTS: dict[str, Callable[..., SegmentationDataset]] = {
    "ade20k": SegmentationDataset.ade20k,
    "cityscapes": SegmentationDataset.cityscapes,
    "coco": SegmentationDataset.coco_stuff,
    "custom": SegmentationDataset.custom,
}


def open_segmentation(layout: str, *args: Any, **kwargs: Any) -> SegmentationDataset:
    """A dataset by layout name (ade20k, cityscapes, coco, custom) with that constructor's arguments."""
    if layout not in LAYOUTS:
        raise SpecError(f"unknown dataset layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    return LAYOUTS[layout](*args, **kwargs)


def collate_semantic(
    batch: Sequence[dict[str, Any]], label_nc: int, contain_dontcare: bool
) -> dict[str, Any]:
    """Stack items and add "semantics": the one-hot (+ edges) generator input (N, semantic_nc, H, W)."""
    out: dict[str, Any] = torch.utils.data.default_collate(list(batch))
    out["semantics"] = semantic_input(out["label"], label_nc, contain_dontcare, out.get("edges"))
    return out
