"""Write scikit-learn's handwritten digits as a class-folder image set for `stylenorm train cgan`, and
score a trained digits model.

    .venv/bin/python scripts/digits_dataset.py data/digits [--size 32]
    .venv/bin/python scripts/digits_dataset.py --score models/digits --json OUT.json --sheet OUT.png

scikit-learn bundles the UCI "Optical Recognition of Handwritten Digits" test set
(`sklearn.datasets.load_digits`: 1,797 digits of 8×8 pixels, 17 grey levels, 10
classes, from 43 writers), so it is a labelled image set a machine without
internet has. Each digit is written as dark ink on white paper, upsampled to
`--size` (bicubic), as an RGB PNG in `OUT/<digit>/<index>.png`; the class folders are named
0 … 9, which become the model's class names.

`--score MODEL` measures what a class-conditional generator is for: does it draw the
class it is asked for? A logistic regression trained on 80 % of the real digits
(at their own 8×8) reads each generated image, brought back to 8×8 ink levels; the
share read as the requested class is the model's *class accuracy*, beside the same
classifier's accuracy on the held-out 20 % of real digits sent through the same
render-and-shrink path (the ceiling). `--sheet` writes one row per class.
"""

from __future__ import annotations

import argparse
import json
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


def to_digit(image: np.ndarray) -> np.ndarray:
    """An RGB image in [0, 1] (H, W, 3), dark ink on white -> the 8×8 ink levels (0..16) of load_digits."""
    gray = Image.fromarray(np.round(255 * image.mean(-1)).astype(np.uint8), "L")
    small = np.asarray(gray.resize((8, 8), Image.Resampling.BOX), np.float64) / 255.0
    return 16.0 * (1.0 - small)


def score(folder: Path, per_class: int = 50, seed: int = 0) -> tuple[dict, np.ndarray]:
    """({"class_accuracy", "real_accuracy", "cells", "per_class"}, a sheet (10·H, 8·W, 3) in [0, 1])."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from stylenorm import models
    from stylenorm.inference.synthesize import generate

    images, labels = digits()
    x_train, x_test, y_train, y_test = train_test_split(
        images.reshape(len(images), -1), labels, test_size=0.2, random_state=seed, stratify=labels
    )
    reader = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    round_trip = [to_digit(np.asarray(render(x.reshape(8, 8), 32), np.float64) / 255.0) for x in x_test]
    real = float(reader.score(np.stack(round_trip).reshape(len(x_test), -1), y_test))
    model = models.load(folder)
    classes = list(model.card.contract["classes"])
    per_class -= per_class % 10
    hits, per_class_hits, rows = 0, {}, []
    for index, name in enumerate(classes):
        draws = range(per_class // 10)
        chunks = [generate(model, name, 10, seed=1000 * seed + 10 * index + k) for k in draws]
        pictures = torch.cat(chunks).permute(0, 2, 3, 1).clamp(0, 1).numpy()
        read = reader.predict(np.stack([to_digit(p) for p in pictures]).reshape(per_class, -1))
        right = int((read.astype(str) == str(name)).sum())
        hits += right
        per_class_hits[str(name)] = right / per_class
        rows.append(np.concatenate(list(pictures[:8]), axis=1))
    summary = {
        "class_accuracy": hits / (per_class * len(classes)),
        "real_accuracy": real,
        "cells": per_class * len(classes),
        "per_class": per_class_hits,
        "reader": "logistic regression on 80 % of load_digits at 8×8 (scripts/digits_dataset.py --score)",
    }
    return summary, np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder to write (class subfolders 0 … 9)")
    parser.add_argument("--size", type=int, default=32, help="output side in pixels (default 32)")
    parser.add_argument("--score", type=Path, help="a digits cgan model folder to score instead")
    parser.add_argument("--json", type=Path, help="with --score: write {'summary': …} here")
    parser.add_argument("--sheet", type=Path, help="with --score: write a PNG, one row of 8 per class")
    args = parser.parse_args()
    if args.score:
        summary, sheet = score(args.score)
        print(json.dumps(summary, indent=2))
        if args.json:
            args.json.write_text(json.dumps({"summary": summary}, indent=2) + "\n")
        if args.sheet:
            Image.fromarray(np.round(255 * sheet).astype(np.uint8)).resize(
                (sheet.shape[1] * 2, sheet.shape[0] * 2), Image.Resampling.NEAREST
            ).save(args.sheet)
        return
    if args.out is None:
        parser.error("give the folder to write, or --score MODEL")
    counts = write(args.out, args.size)
    per_class = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"wrote {sum(counts.values())} digits to {args.out}: {per_class}")


if __name__ == "__main__":
    main()
