"""Synthetic outdoor scenes: procedural label maps and matching photo-like images.

For tests, demos and quick training runs of semantic image synthesis without
downloading a dataset. A scene has sky on top, a noisy horizon (sometimes
with distant rocky mountains), and below it a coast (water, a sand beach,
grass), a lake in a meadow, or a meadow with sandy patches; rocks and trees
are blobs standing on the ground, nearer ones larger. The image paints each
class with its own colour and texture: a vertical gradient with clouds for
sky, ripples and sky reflection for water, noise for grass and sand, sphere
shading for rocks, clumpy foliage for trees.

Everything is deterministic from the seed. The layout noise is drawn on a
grid of fixed cell counts, so one seed gives nearly the same scene at every
size (pixel-level texture, and which tree spots count as grass, depend on it).

Classes (:data:`SCENE_CLASSES`): 0 sky, 1 water, 2 grass, 3 rock, 4 sand,
5 tree. :data:`PALETTE` gives the RGB colour of each class for painting label
maps (the web page's brush colours).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from stylenorm.errors import SpecError

__all__ = [
    "PALETTE",
    "SCENE_CLASSES",
    "SyntheticScenes",
    "colorize",
    "make_scene",
    "scene_seed",
    "write_scenes",
]

SCENE_CLASSES = ("sky", "water", "grass", "rock", "sand", "tree")
SKY, WATER, GRASS, ROCK, SAND, TREE = range(6)
PALETTE = (
    (135, 190, 235),  # sky
    (40, 90, 200),  # water
    (95, 175, 60),  # grass
    (125, 115, 105),  # rock
    (230, 210, 150),  # sand
    (25, 95, 40),  # tree
)

# ------------------------------------------------------------------------------------------ noise


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def _value_noise(
    rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, cells: tuple[int, int]
) -> np.ndarray:
    """Smooth noise in [−1, 1] at ys (H,), xs (W,) in [0, 1]: a random lattice of `cells`, eased."""
    cy, cx = cells
    lattice = rng.uniform(-1.0, 1.0, size=(cy + 2, cx + 2))
    fy, fx = ys * cy, xs * cx
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    ty, tx = _smoothstep(fy - y0)[:, None], _smoothstep(fx - x0)[None, :]
    a, b = lattice[y0][:, x0], lattice[y0][:, x0 + 1]
    c, d = lattice[y0 + 1][:, x0], lattice[y0 + 1][:, x0 + 1]
    top, bottom = a + (b - a) * tx, c + (d - c) * tx
    return top + (bottom - top) * ty


def _fractal(
    rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, cells: tuple[int, int], octaves: int = 3
) -> np.ndarray:
    """Sum of octaves of value noise (each twice the cells, half the amplitude), scaled to about [−1, 1]."""
    total, amp, norm = np.zeros((ys.size, xs.size)), 1.0, 0.0
    for o in range(octaves):
        total += amp * _value_noise(rng, ys, xs, (cells[0] * 2**o, cells[1] * 2**o))
        norm += amp
        amp *= 0.5
    return total / norm


def _curve(rng: np.random.Generator, xs: np.ndarray, cells: int, octaves: int = 3) -> np.ndarray:
    """1-D fractal noise along xs (W,) in [0, 1] -> (W,) about [−1, 1]."""
    return _fractal(rng, np.zeros(1), xs, (1, cells), octaves)[0]


# ------------------------------------------------------------------------------------------ layout


def _sizes(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not (isinstance(h, int) and isinstance(w, int)) or h < 8 or w < 8:
        raise SpecError(f"scene size must be an int or (H, W) of ints ≥ 8; got {size!r}")
    return h, w


def _layout(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, dict[str, np.ndarray | float]]:
    """Labels (H, W) int64 and the per-pixel helpers the painter needs (depth, rock shading, crown height)."""
    ys = (np.arange(h) + 0.5) / h  # [0, 1] top to bottom
    xs = (np.arange(w) + 0.5) / w
    aspect = w / h
    v = np.broadcast_to(ys[:, None], (h, w))
    u = np.broadcast_to(xs[None, :], (h, w))
    labels = np.full((h, w), SKY, dtype=np.int64)

    horizon0 = rng.uniform(0.3, 0.55)
    horizon = horizon0 + 0.035 * _curve(rng, xs, 4)  # (W,)
    ground = v > horizon[None, :]
    depth = np.clip(
        (v - horizon[None, :]) / (1 - horizon[None, :]), 0, 1
    )  # 0 at the horizon, 1 at the bottom

    if rng.random() < 0.5:  # distant rocky mountains
        ridge = rng.uniform(0.05, 0.2) * (0.5 + 0.5 * _curve(rng, xs, 3, octaves=4))
        labels[(~ground) & (v > (horizon - ridge)[None, :])] = ROCK

    kind = ("coast", "lake", "meadow")[int(rng.integers(3))]
    field = depth + 0.22 * _fractal(rng, ys, xs, (4, 6))
    region = np.full((h, w), GRASS, dtype=np.int64)
    if kind == "coast":
        shore = rng.uniform(0.2, 0.5)
        beach = shore + rng.uniform(0.08, 0.22)
        region[field < beach] = SAND
        region[field < shore] = WATER
    elif kind == "lake":
        cx, cy = rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.6)  # cy in depth units
        rx, ry = rng.uniform(0.15, 0.3), rng.uniform(0.12, 0.25)
        dist = np.sqrt(((u - cx) / rx) ** 2 + ((depth - cy) / ry) ** 2)
        dist = dist + 0.3 * _fractal(rng, ys, xs, (6, 6))
        region[dist < 1.25] = SAND
        region[dist < 1.0] = WATER
    else:
        region[_fractal(rng, ys, xs, (5, 5)) > 0.35] = SAND
    labels[ground] = region[ground]

    # blobs: drawn far to near, so nearer ones cover farther ones
    edge_noise = _fractal(rng, ys, xs, (12, 12), octaves=2)
    rock_shade = np.ones((h, w))
    crown = np.zeros((h, w))  # 0 at a crown's top, 1 at its bottom (for foliage shading)
    blobs = []
    for _ in range(int(rng.integers(0, 4))):
        blobs.append(("rock", rng.uniform(0, 1), rng.uniform(0.05, 1.0), rng.uniform(0.04, 0.1)))
    for _ in range(int(rng.integers(0 if kind == "coast" else 1, 6))):
        # trees stand on grass: a few tries to find some, else the tree is left out
        for _try in range(8):
            bu, bdepth = rng.uniform(0, 1), rng.uniform(0.0, 0.9)
            col = min(int(bu * w), w - 1)
            row = min(int((horizon[col] + bdepth * (1 - horizon[col])) * h), h - 1)
            if labels[row, col] == GRASS:
                blobs.append(("tree", bu, bdepth, rng.uniform(0.04, 0.09)))
                break
    blobs.sort(key=lambda b: b[2])
    yy, xx = v, u * aspect  # isotropic coordinates (units of the image height)
    for what, bu, bdepth, radius in blobs:
        col = min(int(bu * w), w - 1)
        base_v = horizon[col] + bdepth * (1 - horizon[col])
        scale = 0.35 + 0.65 * bdepth  # perspective: far things are small
        r = radius * scale
        bx = bu * aspect
        if what == "rock":
            ry_ = 0.75 * r
            cy_ = base_v - 0.5 * ry_
            d = np.sqrt(((xx - bx) / r) ** 2 + ((yy - cy_) / ry_) ** 2)
            inside = d < 1 + 0.25 * edge_noise
            nx, ny = (xx - bx) / r, (yy - cy_) / ry_
            nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
            shade = np.clip(0.45 + 0.55 * (-0.5 * nx - 0.6 * ny + 0.62 * nz), 0.15, 1.1)
            labels[inside] = ROCK
            rock_shade[inside] = shade[inside]
        else:
            rx_, ry_ = 1.1 * r, 1.6 * r
            trunk_h = 0.9 * r
            cy_ = base_v - trunk_h - ry_
            d = np.sqrt(((xx - bx) / rx_) ** 2 + ((yy - cy_) / ry_) ** 2)
            inside = d < 1 + 0.3 * edge_noise
            trunk = (np.abs(xx - bx) < 0.12 * r) & (yy > cy_) & (yy < base_v)
            labels[inside | trunk] = TREE
            crown[inside] = np.clip((yy - (cy_ - ry_)) / (2 * ry_), 0, 1)[inside]
            crown[trunk & ~inside] = 2.0  # marks trunk pixels for the painter
    helpers: dict[str, np.ndarray | float] = {
        "depth": depth,
        "horizon": horizon,
        "rock_shade": rock_shade,
        "crown": crown,
        "v": v,
    }
    return labels, helpers


# ------------------------------------------------------------------------------------------ painting


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours a, b (3,) or (H, W, 3) by t (H, W) -> (H, W, 3)."""
    return a + (b - a) * t[..., None]


def _paint(
    rng: np.random.Generator, labels: np.ndarray, helpers: dict, texture: np.random.Generator
) -> np.ndarray:
    """RGB (H, W, 3) in [0, 1] for labels (H, W); `rng` draws scene colours, `texture` pixel grain."""
    h, w = labels.shape
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    depth, horizon, v = helpers["depth"], helpers["horizon"], helpers["v"]
    grain = texture.standard_normal((h, w))
    img = np.zeros((h, w, 3))

    # sky: zenith-to-horizon gradient, sometimes a warm sunset horizon, and soft clouds
    zenith = np.array([0.2, 0.42, 0.8]) + rng.uniform(-0.06, 0.06, 3)
    low = np.array([0.72, 0.84, 0.95]) if rng.random() < 0.75 else np.array([0.98, 0.7, 0.45])
    t_sky = np.clip(v / horizon[None, :], 0, 1) ** 0.8
    sky = _mix(zenith, low, t_sky)
    clouds = np.clip((_fractal(rng, ys, xs, (3, 5), octaves=4) - rng.uniform(0.0, 0.35)) * 2.5, 0, 1)
    sky = _mix(sky, np.array([0.97, 0.97, 0.98]), clouds * 0.85 * (1 - 0.5 * t_sky))
    img[labels == SKY] = sky[labels == SKY]

    # water: deep colour, the horizon's light reflected far away, horizontal ripples
    deep = np.array([0.07, 0.25, 0.45]) + rng.uniform(-0.04, 0.04, 3)
    reflect = np.exp(-4 * depth)
    ripples = np.sin(2 * np.pi * 28 * np.sqrt(depth + 1e-3) + 3 * _fractal(rng, ys, xs, (8, 3)))
    water = _mix(deep, low * 0.85, reflect) * (1 + 0.08 * ripples)[..., None]
    img[labels == WATER] = water[labels == WATER]

    # grass: green with patchy variation and fine grain, hazier near the horizon
    green = np.array([0.27, 0.5, 0.16]) + rng.uniform(-0.05, 0.05, 3)
    patches = _fractal(rng, ys, xs, (8, 8))
    grass = green * (1 + 0.18 * patches + 0.1 * grain)[..., None]
    grass = _mix(grass, low * 0.8, 0.35 * np.exp(-6 * depth))
    img[labels == GRASS] = grass[labels == GRASS]

    # sand: pale beige, ripple-free grain, darker where it is wet next to water
    beige = np.array([0.86, 0.76, 0.55]) + rng.uniform(-0.04, 0.04, 3)
    sand = beige * (1 + 0.06 * grain + 0.06 * _fractal(rng, ys, xs, (10, 10)))[..., None]
    img[labels == SAND] = sand[labels == SAND]

    # rock: grey stone, sphere-shaded boulders, hazy blue-grey mountains above the horizon
    stone = np.array([0.5, 0.48, 0.45]) + rng.uniform(-0.05, 0.05, 3)
    rock = (
        stone
        * (helpers["rock_shade"] * (1 + 0.12 * _fractal(rng, ys, xs, (16, 16)) + 0.06 * grain))[..., None]
    )
    above = v <= horizon[None, :]
    mountain = _mix(
        stone * (0.85 + 0.25 * _fractal(rng, ys, xs, (6, 10)))[..., None], low, np.full((h, w), 0.45)
    )
    rock = np.where(above[..., None], mountain, rock)
    img[labels == ROCK] = rock[labels == ROCK]

    # trees: clumpy foliage, lit from above; brown trunks
    leaf = np.array([0.1, 0.3, 0.1]) + rng.uniform(-0.03, 0.03, 3)
    clumps = _fractal(rng, ys, xs, (20, 20), octaves=2)
    crown = helpers["crown"]
    light = 1.25 - 0.6 * np.clip(crown, 0, 1) + 0.35 * clumps + 0.08 * grain
    foliage = leaf * light[..., None]
    trunk = np.array([0.33, 0.23, 0.14]) * (1 + 0.1 * grain)[..., None]
    tree = np.where((crown > 1.5)[..., None], trunk, foliage)
    img[labels == TREE] = tree[labels == TREE]
    return np.clip(img, 0.0, 1.0)


# ------------------------------------------------------------------------------------------ API


def make_scene(size: int | tuple[int, int], seed: int) -> tuple[Tensor, Tensor]:
    """One scene: size S or (H, W), seed ≥ 0 -> (labels (H, W) int64 in 0..5, image (3, H, W) in [0, 1])."""
    h, w = _sizes(size)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"seed must be a non-negative int; got {seed!r}")
    layout_seq, paint_seq, texture_seq = np.random.SeedSequence(int(seed)).spawn(3)
    labels, helpers = _layout(np.random.default_rng(layout_seq), h, w)
    image = _paint(np.random.default_rng(paint_seq), labels, helpers, np.random.default_rng(texture_seq))
    return torch.from_numpy(labels), torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32))


def colorize(labels: Tensor, palette: tuple[tuple[int, int, int], ...] = PALETTE) -> Tensor:
    """Paint labels with a palette: (H, W) or (N, H, W) int -> (3, H, W) or (N, 3, H, W) in [0, 1]."""
    table = torch.tensor(palette, dtype=torch.float32) / 255.0
    if labels.is_floating_point() or int(labels.min()) < 0 or int(labels.max()) >= len(palette):
        raise SpecError(f"labels must be integers in 0..{len(palette) - 1} to colorize")
    out = table[labels.long()]  # (..., H, W, 3)
    return out.movedim(-1, -3)


def scene_seed(seed: int, index: int) -> int:
    """The seed of item `index` of a scene set with base `seed` (independent streams, no collisions)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)


class SyntheticScenes(Dataset):
    """n scenes from a base seed; item i -> {"label": (H, W) int64, "image": (3, H, W), "path": name}."""

    num_classes = len(SCENE_CLASSES)

    def __init__(self, n: int, size: int | tuple[int, int] = 64, seed: int = 0) -> None:
        if n < 1:
            raise SpecError(f"a scene set needs n ≥ 1; got {n}")
        self.n, self.size, self.seed = n, _sizes(size), seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        """One scene, generated on demand (deterministic: the same index gives the same scene)."""
        if not -self.n <= index < self.n:
            raise IndexError(f"scene index {index} out of range for {self.n} scenes")
        index %= self.n
        labels, image = make_scene(self.size, scene_seed(self.seed, index))
        return {"label": labels, "image": image, "path": f"scene_{index:05d}"}


def write_scenes(folder: str | Path, n: int, size: int | tuple[int, int] = 256, seed: int = 0) -> Path:
    """Write n scenes in the custom layout: folder/labels/*.png (ids), folder/images/*.png, classes.json.

    Files are paired by stem (``scene_00000.png`` in both); train with
    ``label_dir=folder/labels, image_dir=folder/images, label_nc=6``.
    Returns the folder.
    """
    folder = Path(folder)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    scenes = SyntheticScenes(n, size, seed)
    for i in range(n):
        item = scenes[i]
        name = f"{item['path']}.png"
        Image.fromarray(item["label"].numpy().astype(np.uint8)).save(folder / "labels" / name)
        pixels = (item["image"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / name)
    meta = {
        "label_nc": len(SCENE_CLASSES),
        "classes": list(SCENE_CLASSES),
        "palette": [list(c) for c in PALETTE],
    }
    (folder / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder
