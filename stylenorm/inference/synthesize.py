"""Semantic image synthesis and class-conditional generation with repository models.

* :func:`synthesize` (architecture ``spade``): a label map of class indices
  (1, H, W) -> an image (1, 3, H, W) in [0, 1] at the model's native size,
  optionally steered by a style image (models trained with ``--use-vae``) or a
  seed (the random z of such models).
* :func:`labels_from_image`: a label-map file or upload -> the class indices
  :func:`synthesize` takes: an index PNG (modes L, P, I, I;16; pixel value =
  class, or the dataset's file convention when the card has a ``label_file``)
  or a colour-coded RGB PNG in the model's palette. A map of another
  size is resized (nearest) when its aspect ratio is the model's; anything
  else is a :class:`~stylenorm.errors.ShapeError` saying what would fit.
* :func:`generate` (architecture ``cgan``): n images of a named class.

The card's ``contract`` carries what a caller needs: ``classes`` (names in
index order), ``palette`` (one RGB colour per class) and ``size`` ([H, W]);
models of a dataset layout (``stylenorm import spade --layout ade20k``) add
``layout`` and ``label_file`` = {shift, dontcare}: a pixel value v of an index
PNG is class v + shift and the ``dontcare`` values are the don't-care index
label_nc (ADE20K: shift −1, 0 = "other" is don't-care). Class ids equal to
label_nc are don't-care for generators with that channel (contain_dontcare).
The networks work in [−1, 1] (tanh); this module maps to and from [0, 1].
The CLI (``stylenorm synthesize``, ``stylenorm generate``) and the HTTP
server call these functions.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from stylenorm.data.layouts import LabelFile, default_palette
from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.families import family_of, of_kind
from stylenorm.imageio import DEFAULT_MAX_PIXELS, Source, open_image
from stylenorm.models import LoadedModel

__all__ = [
    "MAX_GENERATE",
    "UnknownClass",
    "colorize_labels",
    "default_palette",
    "generate",
    "label_edges",
    "labels_from_image",
    "model_classes",
    "model_label_file",
    "model_palette",
    "native_size",
    "synthesize",
]

MAX_GENERATE = 1024  # images per generate() call: bounds memory, the caller can loop
_ASPECT_TOLERANCE = 0.01  # relative: a 1-pixel rounding of either side must not count as another aspect
_INDEX_MODES = ("L", "I", "I;16", "I;16B", "I;16L", "1")
_LISTED = 12  # colours / classes shown in an error message before "…"


class UnknownClass(StylenormError, KeyError):
    """A class name the class-conditional model does not have; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------------------------------ palettes


def colorize_labels(labels: Tensor, palette: Sequence[Sequence[int]]) -> Tensor:
    """Paint class indices (N, H, W) with palette -> (N, 3, H, W) in [0, 1]; indices past it are black."""
    table = torch.tensor([list(c) for c in palette] + [[0, 0, 0]], dtype=torch.float32) / 255.0
    index = labels.long().clamp(0, len(palette)).cpu()
    return table[index].movedim(-1, -3)


# ------------------------------------------------------------------------------------------ model facts


def _check_kind(model: LoadedModel, kind: str, what: str) -> None:
    """model must be of a family that does this kind of work (synthesize: spade, generate: cgan)."""
    if not isinstance(model, LoadedModel):
        raise SpecError(f"{what} needs a model from stylenorm.models.load; got {type(model).__name__}")
    if family_of(model.card).kind != kind:
        wanted = " or ".join(repr(a) for a in of_kind(kind))
        raise SpecError(f"{what} needs a {wanted} model; {model.card.name!r} is {model.card.architecture!r}")


def model_classes(model: LoadedModel) -> list[str]:
    """The class names of a spade or cgan model, in index order (the card's contract)."""
    classes = model.card.contract.get("classes")
    if not classes:
        n = getattr(model.module, "label_nc", None) or getattr(model.module, "num_classes", 0)
        return [f"class_{i}" for i in range(n)]
    return [str(c) for c in classes]


def model_palette(model: LoadedModel) -> list[list[int]]:
    """One RGB colour per class: the card's contract palette, else :func:`default_palette`."""
    palette = model.card.contract.get("palette")
    n = len(model_classes(model))
    if not palette:
        return default_palette(n)
    return [[int(v) for v in colour] for colour in palette]


def model_label_file(model: LoadedModel) -> LabelFile | None:
    """How the model's dataset encodes classes in label files (the card's ``label_file``), or None:
    pixel value = class index."""
    data = model.card.contract.get("label_file")
    if data is None:
        return None
    return LabelFile.from_card(data, f"model {model.card.name!r}")


def _has_dontcare(model: LoadedModel) -> bool:
    return bool(getattr(model.module, "contain_dontcare", False))


def native_size(model: LoadedModel) -> tuple[int, int]:
    """(H, W) the model synthesizes (spade) or generates (cgan)."""
    module = model.module
    if hasattr(module, "out_size"):
        h, w = module.out_size
        return int(h), int(w)
    if hasattr(module, "image_size"):
        return int(module.image_size), int(module.image_size)
    size = model.card.contract.get("size")
    if not size:
        raise SpecError(f"model {model.card.name!r} states no output size")
    return int(size[0]), int(size[1])


def _device(model: LoadedModel) -> torch.device:
    param = next(model.module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# ------------------------------------------------------------------------------------------ label maps


def _describe_values(values: np.ndarray, counts: np.ndarray) -> str:
    shown = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(values[:6], counts[:6], strict=True))
    return shown + (f" and {len(values) - 6} more" if len(values) > 6 else "")


def _class_listing(classes: Sequence[str]) -> str:
    shown = ", ".join(f"{i} {name}" for i, name in enumerate(classes[:_LISTED]))
    return shown + (f", … {len(classes) - 1} {classes[-1]}" if len(classes) > _LISTED else "")


def _check_range(labels: Tensor, classes: Sequence[str], source: str, dontcare: bool = False) -> None:
    """ShapeError naming the out-of-range values and the valid classes (and don't-care = n if allowed)."""
    n = len(classes)
    bad = (labels < 0) | (labels > n if dontcare else labels >= n)
    if labels.numel() and bool(bad.any()):
        values, counts = np.unique(labels[bad].cpu().numpy(), return_counts=True)
        raise ShapeError(
            f"{source}: label value(s) {_describe_values(values, counts)} are not classes of this model; "
            f"valid are 0..{n - 1} ({_class_listing(classes)})"
            + (f", and {n} (don't-care)" if dontcare else "")
        )


def _decode_file(
    ids: np.ndarray, convention: LabelFile, classes: Sequence[str], source: str, model: LoadedModel
) -> np.ndarray:
    """Pixel values of a dataset label file -> class ids (don't-care = n); ShapeError naming bad values."""
    n = len(classes)
    labels, bad = convention.decode(ids, n)
    if bool(bad.any()):
        values, counts = np.unique(ids[bad], return_counts=True)
        layout = model.card.contract.get("layout")
        raise ShapeError(
            f"{source}: pixel value(s) {_describe_values(values, counts)} are not labels of model "
            f"{model.card.name!r}" + (f" ({layout} label file" if layout else " (its label files")
            + f": {convention.describe(n)}; classes {_class_listing(classes)})"
        )
    if bool((labels == n).any()) and not _has_dontcare(model):
        raise ShapeError(
            f"{source}: don't-care pixels, but model {model.card.name!r} has no don't-care channel"
        )
    return labels


def _nearest(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest resize of integer maps (..., H, W) by pixel centres (as PIL's NEAREST), exact for any dtype."""
    h, w = labels.shape[-2:]
    rows = ((torch.arange(size[0]) + 0.5) * h / size[0]).long().clamp_(max=h - 1)
    cols = ((torch.arange(size[1]) + 0.5) * w / size[1]).long().clamp_(max=w - 1)
    return labels[..., rows[:, None].to(labels.device), cols[None, :].to(labels.device)]


def _fit_size(labels: Tensor, size: tuple[int, int], source: str, model_name: str) -> Tensor:
    """labels (N, H, W) at size (h, w): as is, resized by nearest when the aspect matches, else ShapeError."""
    h, w = labels.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return labels
    if h < 1 or w < 1:
        raise ShapeError(f"{source} is empty ({w}×{h} pixels)")
    aspect, target = w / h, tw / th
    if abs(aspect - target) > _ASPECT_TOLERANCE * target:
        raise ShapeError(
            f"{source} is {w}×{h} (W×H, aspect {aspect:.3g}) but model {model_name!r} synthesizes "
            f"{tw}×{th} (aspect {target:.3g}); crop or pad the label map to that aspect ratio "
            "(maps of the same aspect are resized by nearest neighbour)"
        )
    return _nearest(labels, (th, tw))


def _palette_ids(rgb: np.ndarray, palette: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(class ids (H, W), mask of pixels whose colour is in the palette) by exact colour match."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in palette], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    pos = np.clip(np.searchsorted(keys[order], packed), 0, len(keys) - 1)
    found = keys[order][pos] == packed
    return order[pos], found


def _colour_name(packed: int) -> str:
    return f"({packed >> 16}, {(packed >> 8) & 255}, {packed & 255})"


def _unknown_colours(rgb: np.ndarray, found: np.ndarray, classes: Sequence[str], palette: Sequence) -> str:
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    values, counts = np.unique(packed[~found], return_counts=True)
    order = np.argsort(-counts, kind="stable")  # the most frequent first: the likely culprits
    shown = ", ".join(f"{_colour_name(int(values[i]))} × {int(counts[i])} px" for i in order[:6])
    more = f" and {len(values) - 6} more" if len(values) > 6 else ""
    pairs = zip(classes[:_LISTED], palette[:_LISTED], strict=True)
    valid = ", ".join(f"{name} {tuple(c)}" for name, c in pairs)
    if len(classes) > _LISTED:
        valid += f", … ({len(classes)} classes)"
    return (
        f"colour(s) not in the model's palette: {shown}{more}. Paint with exactly these colours "
        f"(no anti-aliasing, no JPEG): {valid}"
    )


def labels_from_image(
    model: LoadedModel, source: Source, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Tensor:
    """A label-map image (path, bytes or file) -> class indices (1, H, W) int64 at the model's size.

    Index images (modes L, I, I;16, 1; pixel value = class) and colour-coded
    RGB(A) images in the model's palette are accepted. A palette ('P') image
    is read through its colours when all of them are in the model's palette,
    otherwise its indices are the classes. When the card has a ``label_file``
    (a dataset layout), index pixel values follow it: ADE20K's value v is
    class v − 1 and 0 is don't-care (returned as label_nc). JPEG (lossy:
    colours and ids change at edges), transparent pixels, unknown colours,
    out-of-range indices and another aspect ratio are ShapeErrors that say
    what would fit.
    """
    _check_kind(model, "synthesize", "labels_from_image")
    classes, palette = model_classes(model), model_palette(model)
    convention = model_label_file(model)
    name = f"label map {source}" if isinstance(source, str | os.PathLike) else "the label map"
    img = open_image(source, max_pixels)
    try:
        ids, file_values = _image_ids(img, classes, palette, name, convention)
    finally:
        img.close()
    if file_values and convention is not None:
        ids = _decode_file(ids, convention, classes, name, model)
        labels = torch.from_numpy(ids).unsqueeze(0)
    else:
        labels = torch.from_numpy(ids).unsqueeze(0)
        _check_range(labels, classes, name)
    return _fit_size(labels, native_size(model), name, model.card.name)


def _image_ids(
    img: Image.Image,
    classes: Sequence[str],
    palette: Sequence,
    name: str,
    convention: LabelFile | None = None,
) -> tuple[np.ndarray, bool]:
    """(ids (H, W) int64, whether they are file values rather than palette classes) of a decoded label
    image (range not yet checked)."""
    if img.format == "JPEG":
        raise ShapeError(
            f"{name} is a JPEG: lossy compression changes colours and ids at region edges. "
            "Save label maps as PNG"
        )
    mode = img.mode
    if mode in _INDEX_MODES:
        return np.asarray(img).astype(np.int64), True
    if mode == "P":
        indices = np.asarray(img).astype(np.int64)
        raw = img.getpalette() or []
        table = np.array(raw + [0] * (768 - len(raw)), dtype=np.int64)[:768].reshape(256, 3)
        ids, found = _palette_ids(table[np.clip(indices, 0, 255)], palette)
        return (ids, False) if bool(found.all()) else (indices, True)
    if mode in ("RGB", "RGBA", "LA"):
        arr = np.asarray(img)
        if mode != "RGB" and not bool((arr[..., -1] == 255).all()):
            raise ShapeError(
                f"{name} has transparent pixels; label maps must be opaque (every pixel one class)"
            )
        if mode == "LA":
            return arr[..., 0].astype(np.int64), True
        rgb = arr[..., :3]
        ids, found = _palette_ids(rgb, palette)
        if bool(found.all()):
            return ids, False
        grey = bool((rgb == rgb[..., :1]).all())
        if grey:  # an index map that was saved as RGB, if its values are labels
            values = rgb[..., 0].astype(np.int64)
            if convention is None and int(values.max()) < len(classes):
                return values, True
            if convention is not None and not bool(convention.decode(values, len(classes))[1].any()):
                return values, True
        raise ShapeError(f"{name}: {_unknown_colours(rgb, found, classes, palette)}")
    raise ShapeError(
        f"{name} has image mode {mode!r}; expected an index image (L, P, I or I;16: pixel value = class "
        "index) or an RGB image colour-coded in the model's palette"
    )


def _as_label_batch(labels: Tensor) -> Tensor:
    if not isinstance(labels, Tensor):
        raise ShapeError(f"labels must be an integer tensor (1, H, W); got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ShapeError(f"labels must hold integer class indices; got dtype {labels.dtype}")
    if labels.dim() == 2:
        labels = labels.unsqueeze(0)
    elif labels.dim() == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 3 or labels.shape[0] < 1:
        raise ShapeError(f"labels must be (1, H, W) (or (N, H, W)); got shape {tuple(labels.shape)}")
    return labels.long()


def label_edges(labels: Tensor) -> Tensor:
    """(N, H, W) class ids -> (N, 1, H, W) float: 1 where a 4-neighbour has another class.

    Stands in for the instance-edge channel at inference when no instance map
    is given: region boundaries (the edges of stuff classes equal them).
    """
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    horizontal = labels[:, :, 1:] != labels[:, :, :-1]
    vertical = labels[:, 1:, :] != labels[:, :-1, :]
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge.unsqueeze(1).float()


def semantic_map(generator: Any, labels: Tensor) -> Tensor:
    """The SPADE generator's input for class ids (N, H, W): one-hot (+ empty don't-care) (+ edges)."""
    n, h, w = labels.shape
    one_hot = torch.zeros(n, generator.label_nc + int(generator.contain_dontcare), h, w, device=labels.device)
    one_hot.scatter_(1, labels.unsqueeze(1), 1.0)
    if generator.use_instance:
        one_hot = torch.cat([one_hot, label_edges(labels)], dim=1)
    return one_hot


def _seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbelow(2**31)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer; got {seed!r}")
    return seed


def synthesize(
    model: LoadedModel, labels: Tensor, style: Tensor | None = None, seed: int | None = None
) -> Tensor:
    """Class indices (1, H, W) [+ style image (1, 3, h, w) in [0, 1]] -> image (1, 3, H', W') in [0, 1].

    A class index equal to label_nc is don't-care for generators with that
    channel (``contain_dontcare``; what :func:`labels_from_image` returns for
    a dataset file's don't-care pixels).

    (H', W') is the model's native size; a map of the same aspect ratio is
    resized (nearest) to it. ``style`` steers models with an image encoder
    (trained with ``--use-vae``); for the others it is an error. ``seed``
    draws z for encoder models synthesizing without a style image (None: a
    random one); models without an encoder are deterministic and ignore it.
    (N, H, W) labels give N images.
    """
    _check_kind(model, "synthesize", "synthesize")
    generator = model.module
    classes = model_classes(model)
    labels = _as_label_batch(labels)
    _check_range(labels, classes, "the label map", _has_dontcare(model))
    labels = _fit_size(labels, native_size(model), "the label map", model.card.name)
    n = labels.shape[0]
    if style is not None and getattr(generator, "encoder", None) is None:
        raise SpecError(
            f"model {model.card.name!r} has no style encoder (it was trained without --use-vae), so a "
            "style image cannot steer it; synthesize without one"
        )
    device = _device(model)
    with torch.inference_mode():
        segmap = semantic_map(generator, labels.to(device))
        if style is not None:
            if not isinstance(style, Tensor) or style.dim() != 4 or style.shape[1] != 3:
                got = tuple(style.shape) if isinstance(style, Tensor) else type(style).__name__
                raise ShapeError(f"the style image must be RGB (1, 3, h, w) in [0, 1]; got {got}")
            if style.shape[0] not in (1, n):
                raise ShapeError(f"{style.shape[0]} style images for {n} label maps; give 1 or {n}")
            image = style.to(device=device, dtype=torch.float32).expand(n, -1, -1, -1) * 2 - 1
            out = generator(segmap, style_image=image)
        elif getattr(generator, "use_vae", False):
            g = torch.Generator().manual_seed(_seed(seed))
            z = torch.randn(n, generator.z_dim, generator=g).to(device)
            out = generator(segmap, z=z)
        else:
            out = generator(segmap)
    return ((out.float() + 1) / 2).clamp(0.0, 1.0)


def generate(model: LoadedModel, class_name: str, n: int = 1, seed: int | None = None) -> Tensor:
    """n images of class ``class_name`` from a cgan model -> (n, 3, S, S) in [0, 1]; a seed repeats them."""
    _check_kind(model, "generate", "generate")
    classes = model_classes(model)
    if class_name not in classes:
        raise UnknownClass(
            f"model {model.card.name!r} has no class {class_name!r}; its classes: {', '.join(classes)}"
        )
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_GENERATE:
        raise SpecError(f"n must be an integer in 1..{MAX_GENERATE}; got {n!r}")
    generator = model.module
    device = _device(model)
    g = torch.Generator().manual_seed(_seed(seed))
    z = torch.randn(n, generator.z_dim, generator=g).to(device)
    y = torch.full((n,), classes.index(class_name), dtype=torch.long, device=device)
    with torch.inference_mode():
        out = generator(z, y)
    return ((out.float() + 1) / 2).clamp(0.0, 1.0)
