"""Contact sheets: a content × style grid stylized by one model, with quality numbers.

``stylenorm sheet --model M --content A.jpg B.jpg --style S1.jpg sunset --out sheet.png``
writes the grid (contents down the left, style thumbnails along the top) and
prints, per cell and on average, the relative style distance (output → style
over content → style, lower is more stylized), the content distance at relu4_1
(lower keeps more content) and the luminance SSIM of the output to its content
(higher keeps more structure). The features come from the pretrained ``hed``
VGG-16 (``--metric-encoder``; ``random`` gives the first models' scores).

For a SPADE model, ``--content`` takes label maps (index or palette PNGs) and
``--reference`` the real images painted from them (same file stems): each row
is label map | synthesized | reference; the numbers compare the synthesis
with the reference — relative style distance (synthesis → reference over the
coloured label map → reference) and luminance SSIM to the reference.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from stylenorm.errors import SpecError
from stylenorm.evaluation.metrics import (
    METRIC_ENCODERS,
    content_distance,
    metric_encoder,
    relative_style_distance,
    ssim,
)
from stylenorm.families import family_of
from stylenorm.imageio import load_image, to_pil
from stylenorm.inference.stylize import named_style, resize_to, stylize
from stylenorm.inference.synthesize import colorize_labels, labels_from_image, model_palette, synthesize
from stylenorm.models import LoadedModel, load
from stylenorm.nets.optimise import OptimiseOptions
from stylenorm.nets.vgg import VGGEncoder
from stylenorm.repository import MODELS_DIR_HELP

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
_PAD = 6
_LABEL = 14


@dataclass
class Cell:
    """The numbers of one grid cell."""

    content: str
    style: str
    relative_style_distance: float
    ssim: float
    content_distance: float = float("nan")


def _square(image: Tensor, size: int) -> Tensor:
    """Center-crop to a square and resize to size: (1, 3, H, W) -> (1, 3, size, size)."""
    h, w = image.shape[2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[:, :, top : top + side, left : left + side]
    return torch.nn.functional.interpolate(
        crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    ).clamp(0, 1)


def _expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        elif path.suffix.lower() in _IMAGE_SUFFIXES and not path.exists():
            raise SpecError(f"{p} not found")
        else:
            out.append(p)  # a file, or a gallery name of the model
    return out


def _fit(label: str, width: int) -> str:
    """Shorten a label to about what the default font fits in width pixels (6 px a character)."""
    room = max(4, width // 6)
    return label if len(label) <= room else label[: room - 1] + "…"


def _style_image(model: LoadedModel, style: str, size: int) -> Tensor | None:
    """The picture of a style: a file, a gallery image, or None (a multistyle row without a thumbnail)."""
    names_only = _names_only(model)
    if Path(style).is_file():
        if names_only and Path(style).stem not in model.card.styles:
            raise SpecError(
                f"{Path(style).name} is not named after a style of {model.card.name!r} "
                f"({', '.join(model.card.styles)})"
            )
        return resize_to(load_image(style), size * 2)
    thumb = model.folder / "styles" / f"{style}.png"
    if style in model.card.styles and thumb.is_file():
        return named_style(model, style)
    if names_only and style in model.card.styles:
        return None
    raise SpecError(f"{style!r} is neither an image file nor a style of {model.card.name!r}")


def _names_only(model: LoadedModel) -> bool:
    """Its styles are names of rows in its weights (multistyle), not images."""
    caps = family_of(model.card).capabilities(model.card)
    return caps is not None and caps.named_styles and not caps.uploaded_styles


def contact_sheet(
    model: LoadedModel,
    contents: list[str],
    styles: list[str],
    size: int = 256,
    alpha: float = 1.0,
    encoder: VGGEncoder | None = None,
    optimise: OptimiseOptions | None = None,
) -> tuple[Image.Image, list[Cell]]:
    """Stylize every content with every style; returns the grid picture and the per-cell numbers.

    ``optimise``: the options of an optimise model (default OptimiseOptions()).
    """
    if not contents:
        raise SpecError("a contact sheet needs at least one content image")
    family = family_of(model.card)
    caps = family.capabilities(model.card)
    if caps is None:
        raise SpecError(f"a {family.name} model does not stylize; contact sheets show stylize models")
    takes_styles, names_only = caps.max_styles > 0, _names_only(model)
    columns: list[str | None] = list(styles) if takes_styles else [None]
    if takes_styles and not styles:
        raise SpecError(f"a {family.name} model needs styles for its sheet's columns")
    encoder = metric_encoder(encoder)
    cell = size + _PAD
    sheet = Image.new(
        "RGB", (cell * (len(columns) + 1) + _PAD, (cell + _LABEL) * (len(contents) + 1)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    pictures = {s: _style_image(model, s, size) if s is not None else None for s in columns}
    for j, s in enumerate(columns, start=1):
        x = j * cell + _PAD
        if pictures[s] is not None:
            sheet.paste(to_pil(_square(pictures[s], size)), (x, _PAD))
        draw.text((x, size + _PAD), _fit(Path(s).stem if s else model.card.name, size), fill="black")
    cells: list[Cell] = []
    for i, path in enumerate(contents, start=1):
        content = _square(load_image(path), size)
        y = i * (cell + _LABEL) + _PAD
        sheet.paste(to_pil(content), (_PAD, y))
        draw.text((_PAD, y + size), _fit(Path(path).stem, size), fill="black")
        for j, s in enumerate(columns, start=1):
            style_arg = [] if s is None else [pictures[s] if Path(s).is_file() else s]
            if names_only and s is not None and Path(s).is_file():
                style_arg = [Path(s).stem]  # a row's image: the row by its name, the image for the numbers
            options: dict = {"alpha": alpha} if caps.alpha else {}
            if family.needs_gradients:
                options = {"optimise": optimise}
            out = stylize(model, content, style_arg, **options)
            sheet.paste(to_pil(out), (j * cell + _PAD, y))
            target = pictures[s] if s is not None else None
            rel = float("nan")  # a multistyle row without a picture has no style to measure against
            if target is not None:
                rel = float(relative_style_distance(out, content, _square(target, size), encoder)[0])
            name = Path(s).stem if s else "-"
            moved = float(content_distance(out, content, encoder)[0])
            cells.append(Cell(Path(path).stem, name, rel, float(ssim(out, content)[0]), moved))
    return sheet, cells


def synthesis_sheet(
    model: LoadedModel,
    label_maps: list[str],
    references: list[str] | None = None,
    size: int = 256,
    encoder: VGGEncoder | None = None,
) -> tuple[Image.Image, list[Cell]]:
    """Label map | synthesized | reference per row; numbers against the reference (same stem) if given."""
    if not label_maps:
        raise SpecError("a synthesis sheet needs at least one label map")
    by_stem = {Path(r).stem: r for r in references or []}
    missing = [Path(m).name for m in label_maps if by_stem and Path(m).stem not in by_stem]
    if missing:
        raise SpecError(f"no reference image with the stem of {', '.join(missing)}")
    columns = ["label map", model.card.name] + (["reference"] if by_stem else [])
    encoder = metric_encoder(encoder)
    cell = size + _PAD
    height = (cell + _LABEL) * len(label_maps) + _LABEL
    sheet = Image.new("RGB", (cell * len(columns) + _PAD, height), "white")
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(columns):
        draw.text((j * cell + _PAD, 0), title, fill="black")
    palette = model_palette(model)
    cells: list[Cell] = []
    for i, path in enumerate(label_maps):
        labels = labels_from_image(model, path)
        painted = colorize_labels(labels, palette)  # (1, 3, H, W) at the model's size
        out = synthesize(model, labels)
        y = _LABEL + i * (cell + _LABEL)
        row = [painted, out]
        reference = None
        if by_stem:
            reference = _square(load_image(by_stem[Path(path).stem]), out.shape[-1])
            row.append(reference)
        for j, image in enumerate(row):
            big = torch.nn.functional.interpolate(image, size=(size, size), mode="nearest")
            sheet.paste(to_pil(big), (j * cell + _PAD, y))
        draw.text((_PAD, y + size), _fit(Path(path).stem, size), fill="black")
        if reference is not None:
            rel = float(relative_style_distance(out, painted, reference, encoder)[0])
            moved = float(content_distance(out, reference, encoder)[0])
            cells.append(Cell(Path(path).stem, "reference", rel, float(ssim(out, reference)[0]), moved))
    return sheet, cells


def summarize(cells: list[Cell]) -> dict[str, float]:
    """Mean relative style distance (over cells that have a style picture), content distance and SSIM."""
    rel = [c.relative_style_distance for c in cells if not math.isnan(c.relative_style_distance)]
    moved = [c.content_distance for c in cells if not math.isnan(c.content_distance)]
    return {
        "relative_style_distance": sum(rel) / len(rel) if rel else float("nan"),
        "content_distance": sum(moved) / len(moved) if moved else float("nan"),
        "ssim": sum(c.ssim for c in cells) / len(cells),
        "cells": len(cells),
    }


def _run(args: argparse.Namespace) -> int:
    model = load(args.model, args.models_dir)
    contents, styles = _expand(args.content), _expand(args.style or [])
    encoder = metric_encoder(kind=args.metric_encoder)
    if family_of(model.card).kind == "synthesize":
        sheet, cells = synthesis_sheet(model, contents, _expand(args.reference or []), args.size, encoder)
    else:
        optimise = OptimiseOptions(iterations=args.iterations) if args.iterations else None
        sheet, cells = contact_sheet(model, contents, styles, args.size, args.alpha, encoder, optimise)
    sheet.save(args.out)  # a fresh PIL image: no metadata to strip
    for c in cells:
        print(
            f"{c.content:>24} × {c.style:<24} rel. style distance {c.relative_style_distance:.3f}  "
            f"content distance {c.content_distance:.3f}  SSIM {c.ssim:.3f}"
        )
    summary = summarize(cells)
    print(
        f"mean ({args.metric_encoder} VGG): "
        f"relative style distance {summary['relative_style_distance']:.3f}, "
        f"content distance {summary['content_distance']:.3f}, SSIM {summary['ssim']:.3f} "
        f"over {summary['cells']} cells -> {args.out}"
    )
    if args.metrics_json:
        report = {"encoder": args.metric_encoder, "summary": summary, "cells": [asdict(c) for c in cells]}
        Path(args.metrics_json).write_text(json.dumps(report, indent=2))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``stylenorm sheet``."""
    p = subparsers.add_parser("sheet", help="content × style contact sheet with quality numbers")
    p.add_argument("--model", required=True, help="model name (in --models-dir) or folder")
    p.add_argument(
        "--content", nargs="+", required=True, help="content images or folders (label maps for a spade model)"
    )
    p.add_argument(
        "--reference", nargs="*", help="spade: the real images of the label maps (matched by file stem)"
    )
    p.add_argument("--style", nargs="*", help="style images, folders, or gallery names of the model")
    p.add_argument("--size", type=int, default=256, help="cell size in pixels (default 256)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off (adain, color)")
    p.add_argument("--iterations", type=int, default=None, help="optimise models: iterations per cell")
    p.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    p.add_argument("--metrics-json", default=None, help="also write the numbers as JSON")
    p.add_argument(
        "--metric-encoder",
        choices=METRIC_ENCODERS,
        default="hed",
        help="features of the distances: hed, the pretrained VGG-16 (default), or random, the "
        "seeded random VGG-19 the first models were scored with",
    )
    p.add_argument("--out", required=True, help="the sheet (PNG/JPEG/WebP)")
    p.set_defaults(func=_run)
