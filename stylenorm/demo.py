"""A one-picture tour of the library: AdaIN on pixel statistics recolours a scene.

``python -m stylenorm.demo --out demo.png`` draws a procedural landscape and a
procedural "sunset" swatch, then transfers the swatch's colour statistics
onto the landscape with ``make_norm("adain", 3)`` in a decorrelated colour
space (Reinhard et al. 2001), and writes content | style | result side by side.
No weights, no downloads.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from PIL import Image

from stylenorm.norm import make_norm

# RGB -> decorrelated opponent space (luminance, red-green, yellow-blue), orthonormal rows.
_OPPONENT = torch.tensor(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
    ]
)


def landscape(size: int, seed: int = 0) -> torch.Tensor:
    """A procedural scene: sky gradient, sun, two hill ridges, a lake. -> (1, 3, size, size) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([0.35 + 0.3 * ys, 0.55 + 0.25 * ys, 0.95 - 0.1 * ys])
    sun = ((xs - 0.7) ** 2 + (ys - 0.25) ** 2).sqrt() < 0.08
    img[:, sun] = torch.tensor([1.0, 0.95, 0.7])[:, None]
    for height, amp, colour in ((0.55, 0.06, (0.25, 0.5, 0.3)), (0.68, 0.04, (0.15, 0.38, 0.18))):
        ridge = height + amp * torch.sin(xs * 9 + height * 20) + 0.02 * torch.sin(xs * 31)
        img[:, ys > ridge] = torch.tensor(colour)[:, None]
    lake = (ys > 0.8) & ((xs - 0.35).abs() < 0.3 - (ys - 0.8))
    img[:, lake] = torch.tensor([0.2, 0.4, 0.7])[:, None]
    img = img + 0.03 * torch.randn(img.shape, generator=g)
    return img.clamp(0, 1).unsqueeze(0)


def sunset(size: int, seed: int = 1) -> torch.Tensor:
    """A procedural warm swatch (orange to violet bands with noise). -> (1, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    band = 0.5 + 0.5 * torch.sin(ys * 12 + 2 * torch.sin(xs * 5))
    img = torch.stack([0.95 - 0.3 * ys, 0.35 + 0.35 * band * (1 - ys), 0.25 + 0.5 * ys])
    return (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1).unsqueeze(0)


def color_transfer(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN on pixel statistics in opponent colour space: (1, 3, H, W) ×2 in [0, 1] -> (1, 3, H, W)."""
    to_opp = _OPPONENT.to(content)
    c = torch.einsum("ij,njhw->nihw", to_opp, content)
    s = torch.einsum("ij,njhw->nihw", to_opp, style)
    out = make_norm("adain", 3, eps=1e-6)(c, s)
    return torch.einsum("ji,njhw->nihw", to_opp, out).clamp(0, 1)


def to_image(t: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> an RGB PIL image."""
    arr = (t[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(arr, "RGB")


def main(argv: list[str] | None = None) -> Path:
    """Write content | style | result as one PNG and return its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo.png"))
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    content, style = landscape(args.size), sunset(args.size)
    result = color_transfer(content, style)
    sheet = Image.new("RGB", (3 * args.size + 20, args.size), "white")
    for i, t in enumerate((content, style, result)):
        sheet.paste(to_image(t), (i * (args.size + 10), 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} (content | style | AdaIN colour transfer)")
    return args.out


if __name__ == "__main__":
    main()
