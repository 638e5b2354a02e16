"""Write scikit-learn's handwritten digits as a class-folder image set for `stylenorm train cgan`.

    .venv/bin/python scripts/digits_dataset.py data/digits [--size 32]

scikit-learn bundles the UCI "Optical Recognition of Handwritten Digits" test set
(`sklearn.datasets.load_digits`: 1,797 digits of 8×8 pixels, 17 grey levels, 10
classes, from 43 writers), so it is a labelled image set a machine without
internet has. Each digit is written as dark ink on white paper, upsampled to
`--size` (bicubic), as an RGB PNG in `OUT/<digit>/<index>.png`; the class folders are named
0 … 9, which become the model's class names.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) in 0..16, labels (N,)) from scikit-learn, with a clear error when it is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise SystemExit(
            "scikit-learn is needed for its bundled digits: pip install scikit-learn "
            "(it is in the dev extra: pip install -e '.[dev]')"
        ) from exc
    bunch = load_digits()
    return bunch.images, bunch.target


def render(image: np.ndarray, size: int) -> Image.Image:
    """One 8×8 digit (0 = paper … 16 = ink) as dark ink on white, bicubic-upsampled to size×size RGB."""
    ink = np.clip(image / 16.0, 0.0, 1.0)
    gray = Image.fromarray(np.round(255 * (1.0 - ink)).astype(np.uint8), "L")
    return gray.resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def write(out: Path, size: int = 32) -> dict[str, int]:
    """Write every digit under out/<label>/; returns the count per class. Files appear whole or not at all."""
    images, labels = digits()
    counts: dict[str, int] = {}
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = out / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            render(image, size).save(f, "PNG")
        os.replace(tmp, folder / f"{index:04d}.png")
        counts[folder.name] = counts.get(folder.name, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (class subfolders 0 … 9)")
    parser.add_argument("--size", type=int, default=32, help="output side in pixels (default 32)")
    args = parser.parse_args()
    counts = write(args.out, args.size)
    per_class = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"wrote {sum(counts.values())} digits to {args.out}: {per_class}")


if __name__ == "__main__":
    main()
