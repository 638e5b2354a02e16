"""Image folders for style-transfer training, and the style-image loader.

* :func:`find_images` walks a folder tree for image files (by extension,
  case-insensitive) and checks each file's header; unreadable ones are
  skipped and counted, never fatal.
* :class:`ImageFolder` decodes lazily: an item that fails to decode at load
  time is replaced by the next readable one (deterministically) and counted.
  Items are ``(image, replaced)``: ``replaced`` is how many files failed
  before this one was found, so the counts reach the trainer from
  DataLoader worker processes too.
* :class:`ResumableSampler` is torch's ``DistributedSampler`` (seeded
  shuffle, one shard per rank; ``num_replicas=1`` without torchrun) that can
  start in the middle of an epoch and hands each draw its own seed, so
  random crops do not depend on worker processes and a resumed run sees
  exactly the images the uninterrupted one would.

Transforms follow the anchors: ``center`` = Resize(S) + CenterCrop(S)
(pytorch/examples fast_neural_style); ``random`` = shorter side to L keeping
the aspect ratio, then a random S×S crop (AdaIN's training). Images are RGB
float in [0, 1], (3, S, S); :func:`load_training_image` gives (1, 3, h, w).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from stylenorm.errors import StylenormError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
_SEED_MASK = (1 << 63) - 1


class DataError(StylenormError, ValueError):
    """A data folder is missing, holds no readable image, or an image file cannot be read."""


@dataclass
class ImageScan:
    """The result of walking a folder: readable images and the files skipped (path, reason)."""

    root: Path
    images: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _header_ok(path: Path) -> str | None:
    """None if PIL recognizes the file's header (cheap: no pixel decode), else the reason."""
    try:
        with Image.open(path) as img:
            if img.width < 1 or img.height < 1:
                return "empty image"
    except Exception as exc:  # PIL raises many types for junk headers; each one means "skip"
        return f"{type(exc).__name__}: {exc}"
    return None


def _walk(root: Path) -> Iterator[Path]:
    """Image-named files under root; follows links to folders once each (no cycles), skips hidden ones."""
    seen: set[str] = set()
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # a fixed order: links resolve alike
        for name in files:
            if _is_image_name(name) and not name.startswith("."):
                yield Path(dirpath) / name


def find_images(root: str | Path, what: str = "image folder") -> ImageScan:
    """Every readable image under root (recursive, sorted); DataError if there is none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} {root} does not exist or is not a folder")
    candidates = sorted(_walk(root))
    images, skipped = [], []
    for path in candidates:
        reason = _header_ok(path)
        if reason is None:
            images.append(path)
        else:
            skipped.append((path, reason))
    if not images:
        if skipped:
            raise DataError(
                f"{what} {root}: all {len(skipped)} image files are unreadable (first: {skipped[0][0]}: "
                f"{skipped[0][1]})"
            )
        raise DataError(
            f"{what} {root} holds no images (looked recursively for {', '.join(IMAGE_EXTENSIONS)})"
        )
    return ImageScan(root, images, skipped)


def _open_rgb(path: Path, min_side: int | None = None) -> Image.Image:
    """Decode path fully as RGB; ``min_side`` lets JPEG decode at a reduced scale ≥ that size."""
    with Image.open(path) as img:
        if min_side is not None:
            img.draft("RGB", (min_side, min_side))  # JPEG DCT scaling: never below the requested size
        return img.convert("RGB")


def _to_tensor(img: Image.Image) -> Tensor:
    return TF.pil_to_tensor(img).float().div_(255.0)


def load_training_image(path: str | Path, size: int | None = None) -> Tensor:
    """One training image file (a style, a sample) -> (1, 3, h, w) RGB float in [0, 1]; ``size`` resizes
    the shorter side (aspect kept). Inference inputs go through :func:`stylenorm.imageio.load_image`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} not found")
    try:
        img = _open_rgb(path, size)
    except Exception as exc:  # any decoder failure is the same user error: this file cannot be read
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    if size is not None:
        img = TF.resize(img, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return _to_tensor(img).unsqueeze(0)


class ImageFolder(Dataset):
    """The images of a folder tree as training crops: item -> (image (3, S, S) in [0, 1], replaced).

    ``crop="center"``: shorter side to ``size``, centre crop (pytorch/examples).
    ``crop="random"``: shorter side to ``load_size`` (default ``size``), random
    ``size`` crop drawn from the item's seed (AdaIN). An index may be an int or
    ``(index, seed)`` as :class:`ResumableSampler` yields them.
    """

    def __init__(
        self,
        root: str | Path,
        size: int,
        crop: str = "center",
        load_size: int | None = None,
        what: str = "image folder",
    ) -> None:
        if crop not in ("center", "random"):
            raise DataError(f"crop must be 'center' or 'random'; got {crop!r}")
        load_size = size if load_size is None else load_size
        if size < 1 or load_size < size:
            raise DataError(f"need 1 ≤ size ≤ load size; got size {size}, load size {load_size}")
        scan = find_images(root, what)
        self.root, self.paths, self.skipped = scan.root, scan.images, scan.skipped
        self.size, self.load_size, self.crop = size, load_size, crop
        self.failed: list[tuple[Path, str]] = []  # decode failures seen in this process

    def __len__(self) -> int:
        return len(self.paths)

    def _transform(self, img: Image.Image, seed: int) -> Image.Image:
        if self.crop == "center":
            img = TF.resize(img, self.size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
            return TF.center_crop(img, [self.size, self.size])
        img = TF.resize(img, self.load_size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        g = torch.Generator().manual_seed(seed & _SEED_MASK)
        top = int(torch.randint(img.height - self.size + 1, (1,), generator=g))
        left = int(torch.randint(img.width - self.size + 1, (1,), generator=g))
        return TF.crop(img, top, left, self.size, self.size)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, int]:
        index, seed = item if isinstance(item, tuple) else (item, item)
        n = len(self.paths)
        for replaced in range(n):
            path = self.paths[(index + replaced) % n]
            try:
                img = _open_rgb(path, self.load_size if self.crop == "random" else self.size)
                return _to_tensor(self._transform(img, seed)), replaced
            except Exception as exc:  # a corrupt file must never stop training: count it, take the next
                self.failed.append((path, f"{type(exc).__name__}: {exc}"))
        raise DataError(f"none of the {n} images in {self.root} could be decoded (first: {self.failed[0]})")


def item_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    """A 63-bit seed for one draw, from the run seed and where the draw is (epoch, rank, position)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) & _SEED_MASK)
    base = int(torch.randint(1 << 62, (1,), generator=g))
    return (base + rank * 0x9E3779B97F4A7C15 + position * 0xBF58476D1CE4E5B9) & _SEED_MASK


class ResumableSampler(DistributedSampler):
    """Seeded, shuffled, sharded sampling that can start mid-epoch; yields ``(index, item_seed)``.

    ``set_epoch(e)`` picks the permutation (as DistributedSampler does);
    ``start`` skips the first draws of this rank's shard, so a resumed run
    continues with the very next image.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())
        for position in range(self.start, len(indices)):
            yield indices[position], item_seed(self.seed, self.epoch, self.rank, position)

    def __len__(self) -> int:
        return self.num_samples - self.start


__all__ = [
    "IMAGE_EXTENSIONS",
    "DataError",
    "ImageFolder",
    "ImageScan",
    "ResumableSampler",
    "find_images",
    "item_seed",
    "load_training_image",
]
