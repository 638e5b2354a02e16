"""Tiny test images drawn on the spot: random shapes over gradients, saved as PNG/JPEG, plus broken files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def draw_image(path: Path, width: int, height: int, seed: int) -> Path:
    """A gradient with a few random ellipses and rectangles, saved in the format of path's suffix."""
    rng = random.Random(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(x * rng.uniform(0.5, 5) + y * rng.uniform(0, 3) + rng.randrange(256)) % 256 for _ in range(3)], -1
    ).astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = [x0, y0, x0 + rng.randrange(4, width // 2), y0 + rng.randrange(4, height // 2)]
        color = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def image_folder(root: Path, count: int, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Path]:
    """count images under root (some in a subfolder, PNG and upper-case .JPG), returned in sorted order."""
    paths = []
    for i in range(count):
        sub = root / "sub" if i % 2 else root
        suffix = ".png" if i % 3 else ".JPG"
        paths.append(draw_image(sub / f"img{i}{suffix}", size[0], size[1], seed + i))
    return sorted(paths)


def add_corrupt_files(root: Path, good_png: Path) -> dict[str, Path]:
    """Three broken files: junk bytes (.jpg), empty (.png) — both fail the header check — and a
    PNG cut after its header (passes the scan, fails to decode at load time)."""
    root.mkdir(parents=True, exist_ok=True)
    junk = root / "junk.jpg"
    junk.write_bytes(b"this is not an image at all")
    empty = root / "empty.png"
    empty.write_bytes(b"")
    truncated = root / "truncated.png"
    truncated.write_bytes(good_png.read_bytes()[:80])
    return {"junk": junk, "empty": empty, "truncated": truncated}
