"""Write models/color-transfer: the weightless colour-transfer model with procedural named styles.

    .venv/bin/python scripts/make_color_model.py [--models-dir models]

The named styles are swatches drawn here (no third-party images), so the
server has something real to serve on a fresh machine.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from stylenorm.imageio import save_image
from stylenorm.repository import ModelCard, save_model

SIZE = 128


def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")


def swatches(seed: int = 0) -> dict[str, torch.Tensor]:
    """Four procedural colour swatches, (1, 3, SIZE, SIZE) in [0, 1] each."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = _grid()
    noise = torch.randn(3, SIZE, SIZE, generator=g) * 0.04
    band = 0.5 + 0.5 * torch.sin(ys * 12 + 2 * torch.sin(xs * 5))
    styles = {
        "sunset": torch.stack([0.95 - 0.3 * ys, 0.35 + 0.35 * band * (1 - ys), 0.25 + 0.5 * ys]),
        "ocean": torch.stack([0.05 + 0.1 * band, 0.3 + 0.3 * ys, 0.55 + 0.35 * (1 - ys) * band]),
        "forest": torch.stack([0.15 + 0.15 * band, 0.35 + 0.25 * band * xs, 0.12 + 0.08 * ys]),
        "desert": torch.stack([0.85 - 0.1 * ys, 0.62 - 0.15 * ys + 0.05 * band, 0.38 - 0.1 * ys]),
        "neon": torch.stack([0.5 + 0.5 * torch.sin(xs * 2 * math.pi), 0.2 * band,
                             0.5 + 0.5 * torch.cos(ys * 2 * math.pi)]),
    }
    return {k: (v + noise).clamp(0, 1).unsqueeze(0) for k, v in styles.items()}


def main(argv: list[str] | None = None) -> Path:
    """Write the model folder and return its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    folder = args.models_dir / "color-transfer"
    styles = swatches()
    (folder / "styles").mkdir(parents=True, exist_ok=True)
    for name, image in styles.items():
        save_image(image, folder / "styles" / f"{name}.png")
    card = ModelCard(
        name="color-transfer",
        architecture="color",
        styles=list(styles),
        description="Reinhard colour transfer: the content takes the colour statistics of the style "
        "(per-channel mean and std in the decorrelated lαβ space). Instant, no weights.",
        provenance={"made_by": "scripts/make_color_model.py", "weights": "none",
                    "styles": "procedural swatches drawn by the script"},
    )
    save_model(folder, card)
    print(f"wrote {folder}")
    return folder


if __name__ == "__main__":
    main()
