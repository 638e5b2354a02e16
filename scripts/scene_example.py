"""Write a spade model's example label map (example.png), the page's starting point for painting.

    .venv/bin/python scripts/scene_example.py models/scenes [--seed N]

Draws held-out synthetic scene layouts (`stylenorm.data.scenes.make_scene`; the shipped
scenes model trained on seed 0's stream, these seeds are drawn apart from it) at the
model's size, keeps the first one that shows every class, and writes it in the model's
palette. Written whole or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylenorm.data.scenes import colorize, make_scene
from stylenorm.imageio import save_image
from stylenorm.inference.synthesize import model_palette, native_size
from stylenorm.models import load
from stylenorm.repository import atomic_write


def example_map(folder: Path, seed: int) -> tuple[torch.Tensor, int, list[list[int]]]:
    """(labels (H, W), the seed used, the model's palette): the first layout from seed on that uses every
    class of the model."""
    model = load(folder)
    palette = model_palette(model)
    size = native_size(model)
    for s in range(seed, seed + 200):
        labels, _ = make_scene(size, s)
        if len(labels.unique()) == len(palette):
            return labels, s, palette
    raise SystemExit(f"no layout with all {len(palette)} classes in seeds {seed}..{seed + 199}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the spade model folder (models/scenes)")
    parser.add_argument("--seed", type=int, default=1_000_003, help="first layout seed to try")
    args = parser.parse_args()
    labels, seed, palette = example_map(args.folder, args.seed)
    image = colorize(labels, tuple(tuple(c) for c in palette)).unsqueeze(0)  # type: ignore[arg-type]
    atomic_write(args.folder / "example.png", lambda tmp: save_image(image, tmp, "png"))
    print(f"wrote {args.folder / 'example.png'} (layout seed {seed}, {tuple(labels.shape)})")


if __name__ == "__main__":
    main()
