"""What every model family implements, and the checks the families share.

A *family* is what a model card's ``architecture`` names: how to build its module, what a request may
ask of it (its :class:`Capabilities`, which the HTTP API and the web page show), how to run one
request, how to run a batch of them (the server's batcher), a warm-up request, and whether it exports
to ONNX. The library's :func:`stylenorm.inference.stylize.stylize`, the CLI, the sheet, export and the server
dispatch through it; nothing outside a family's module compares architecture names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.repository import ModelCard, ModelError
from stylenorm.runtime import InferencePath

if TYPE_CHECKING:
    from stylenorm.inference.stylize import StyleCache
    from stylenorm.models import LoadedModel
    from stylenorm.nets.adain import StyleStats
    from stylenorm.nets.optimise import OptimiseOptions

MIN_SIDE = 16  # the smallest image side every family handles (reflection pads need a few pixels per level)
MAX_STYLES = 16  # styles (and masks) per request: more is a mistake or an attack, not a use

Kind = Literal["stylize", "optimise", "synthesize", "generate"]


class UnknownStyle(StylenormError, KeyError):
    """A style name that the model does not have; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Capabilities:
    """What a stylize request may ask of a model (the server's ``options`` of a model)."""

    named_styles: bool  # styles may be picked by name (the card's styles)
    uploaded_styles: bool  # style images may be given
    max_styles: int  # most styles per request
    min_styles: int  # fewest
    weights: bool  # several styles mixed with weights
    alpha: bool  # content (0) .. style (1)
    preserve_color: bool
    masks: bool  # one mask per style
    gallery: bool = False  # named styles are the model folder's styles/<name>.png images
    default_alpha: float = 1.0  # what a request without alpha gets (the card's contract.default_alpha)


def any_style(card: ModelCard, *, max_styles: int = MAX_STYLES, alpha: bool, masks: bool) -> Capabilities:
    """The capabilities of a family that takes any style image (adain, wct, optimise): uploads and the
    gallery's names, mixing weights, colour preservation; alpha and masks as the family can."""
    return Capabilities(
        named_styles=bool(card.styles),
        uploaded_styles=True,
        max_styles=max_styles,
        min_styles=1,
        weights=True,
        alpha=alpha,
        preserve_color=True,
        masks=masks,
        gallery=True,
        default_alpha=default_alpha(card) if alpha else 1.0,
    )


def default_alpha(card: ModelCard) -> float:
    """The card's ``contract.default_alpha`` (the alpha its outputs look best at), else 1."""
    value = card.contract.get("default_alpha", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ModelError(
            f"model {card.name!r}: contract.default_alpha must be a number in [0, 1]; got {value!r}"
        )
    return float(value)


@dataclass
class Request:
    """One stylize request in library terms, checked against the family's capabilities by its run."""

    content: Tensor  # (1, 3, H, W) in [0, 1]
    styles: list[Any] = field(default_factory=list)  # names, images (1, 3, h, w) or cached (mean, std)
    weights: list[float] | None = None
    alpha: float = 1.0
    preserve_color: bool = False
    masks: list[Tensor] | None = None
    tile: int | None = None  # run in exact tiles of this size
    max_untiled_pixels: int | None = None
    cache: StyleCache | None = None
    optimise: OptimiseOptions | None = None
    progress: Callable[[int, int, float], None] | None = None


@dataclass
class BatchRow:
    """One sample of a batched forward pass: the style it asks for, already resolved by the batcher."""

    names: list[str] = field(default_factory=list)  # named styles (families that take names)
    mix: list[float] = field(default_factory=list)  # their weights, summing to 1
    stats: StyleStats | None = None  # mixed (mean, std) (families whose styles are statistics)
    alpha: float = 1.0


class Family:
    """The interface of a model family; subclasses set the class attributes and override what applies.

    Register an instance in :mod:`stylenorm.families` (one line) and every command, ``stylize()`` and
    the server know the architecture.
    """

    name: ClassVar[str]  # the card's architecture
    kind: ClassVar[Kind]  # the endpoint that serves it
    summary: ClassVar[str] = ""  # one line for docs and listings
    batched: ClassVar[bool] = False  # run_batch stacks requests of one content size into one pass
    style_statistics: ClassVar[bool] = False  # a style reduces to statistics (style_stats) the server caches
    takes_statistics: ClassVar[bool] = False  # run() accepts cached (mean, std) in place of an image
    tiles: ClassVar[bool] = True  # large contents run in exact tiles (False: pixelwise, needs none)
    exportable: ClassVar[bool] = False  # stylenorm export writes ONNX for it
    onnx_tolerance: ClassVar[float] = 1e-3  # max abs difference its ONNX check accepts (images in [0, 1])
    needs_gradients: ClassVar[bool] = False  # run() optimises: no torch.inference_mode around it
    reduced_precision: ClassVar[bool] = True  # may run under float16/bfloat16 autocast
    channels_last: ClassVar[bool] = True  # runs faster in channels_last (bench/e2e.py measures it)

    def serving_path(self, path: InferencePath) -> InferencePath:
        """``path`` as this family runs on it: no autocast unless ``reduced_precision``, channels_last
        only where the family gains from it."""
        dtype = path.dtype if self.reduced_precision else None
        return InferencePath(dtype, path.channels_last and self.channels_last)

    def build(self, card: ModelCard) -> nn.Module:
        """A freshly initialized module for the card's arguments."""
        raise NotImplementedError

    def weights_to_save(self, card: ModelCard, module: nn.Module) -> dict[str, Tensor]:
        """The tensors a model folder stores (default: the whole state dict)."""
        return module.state_dict()

    def capabilities(self, card: ModelCard) -> Capabilities | None:
        """What a stylize request may ask (None: the family does not stylize)."""
        return None

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        """Stylize one request -> (1, 3, H, W) on device or content's device (not clamped)."""
        raise SpecError(f"{self.name} models do not stylize")

    def run_batch(self, model: LoadedModel, contents: Tensor, rows: list[BatchRow]) -> Tensor:
        """One forward pass over contents (N, 3, H, W) on the model's device -> (N, 3, H, W)."""
        raise SpecError(f"{self.name} models do not run in batches")

    def style_stats(self, model: LoadedModel, image: Tensor) -> StyleStats:
        """(mean, std), each (1, C), of one style image (families with ``style_statistics``)."""
        raise SpecError(f"{self.name} models do not summarise styles as statistics")

    def warmup_styles(self, model: LoadedModel) -> list[str | Tensor]:
        """The styles of a small request that exercises the model once (names or images)."""
        return []

    def export_onnx(self, module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
        """Write the ONNX graph(s) of module (a portable copy) at path; returns the files (families with
        ``exportable``; the graphs are built by :mod:`stylenorm.interop.export`)."""
        raise SpecError(f"{self.name} models do not export to ONNX")

    def check_onnx(self, module: nn.Module, paths: list[Path], sample: tuple[Tensor, ...]) -> float:
        """Max abs difference between module and its exported files on sample, under onnxruntime."""
        raise SpecError(f"{self.name} models do not export to ONNX")


class StatisticsFamily(Family):
    """A family whose styles reduce to per-channel statistics (mean, std) that its module takes
    (``style_stats(image)``): the server caches them per style and batches requests with per-sample
    statistics. Subclasses say how a batch applies them (:meth:`apply_stats`)."""

    batched = True
    style_statistics = True

    def style_stats(self, model: LoadedModel, image: Tensor) -> StyleStats:
        mean, std = model.module.style_stats(image)  # type: ignore[operator]
        return mean.float(), std.float()

    def warmup_styles(self, model: LoadedModel) -> list[str | Tensor]:
        return gallery_or_pattern(model)

    def apply_stats(self, module: nn.Module, contents: Tensor, stats: StyleStats, alpha: Tensor) -> Tensor:
        """contents (N, 3, H, W) with per-sample statistics, each (N, C), and alpha (N, 1, 1, 1)."""
        raise NotImplementedError

    def run_batch(self, model: LoadedModel, contents: Tensor, rows: list[BatchRow]) -> Tensor:
        if any(r.stats is None for r in rows):
            raise SpecError(f"a {self.name} batch needs each sample's style statistics")
        means = torch.cat([r.stats[0] for r in rows]).to(contents.device)  # type: ignore[index]
        stds = torch.cat([r.stats[1] for r in rows]).to(contents.device)  # type: ignore[index]
        alpha = torch.tensor([r.alpha for r in rows], device=contents.device).view(-1, 1, 1, 1)
        return self.apply_stats(model.module, contents, (means, stds), alpha)


# ----------------------------------------------------------------------------- shared helpers


def detached(stats: Any) -> Any:
    """Style statistics with every tensor detached: (mean, std) pairs, or WCT's {level: (mean, root)}."""
    if isinstance(stats, Tensor):
        return stats.detach()
    if isinstance(stats, dict):
        return {k: detached(v) for k, v in stats.items()}
    return type(stats)(detached(v) for v in stats)


def on_device(stats: Any, device: torch.device) -> Any:
    """Style statistics (as :func:`detached` takes them) moved to device."""
    if isinstance(stats, Tensor):
        return stats.to(device)
    if isinstance(stats, dict):
        return {k: on_device(v, device) for k, v in stats.items()}
    return type(stats)(on_device(v, device) for v in stats)


def test_pattern(size: int = 32, seed: int = 0) -> Tensor:
    """A smooth colourful test picture (1, 3, size, size) in [0, 1] (warm-ups, thumbnails)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    b = 0.5 + 0.5 * torch.sin(6.0 * (x + y) + seed)
    return torch.stack([x, y, b]).unsqueeze(0).clamp(0, 1)


def gallery_or_pattern(model: LoadedModel) -> list[str | Tensor]:
    """A warm-up style: the first named style with a gallery image, else a small test picture."""
    gallery = [s for s in model.card.styles if (model.folder / "styles" / f"{s}.png").is_file()]
    return [gallery[0]] if gallery else [test_pattern(32, seed=1)]


def check_image(t: object, what: str) -> Tensor:
    """t must be one float RGB image (1, 3, H, W) with sides of at least MIN_SIDE."""
    if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[:2] != (1, 3) or not t.is_floating_point():
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ShapeError(f"{what} must be one float RGB image (1, 3, H, W) in [0, 1]; got {got}")
    if min(t.shape[2:]) < MIN_SIDE:
        raise ShapeError(
            f"{what} is {t.shape[3]}×{t.shape[2]} (W×H); each side needs at least {MIN_SIDE} pixels"
        )
    return t


def check_weights(weights: Sequence[float] | None, k: int) -> list[float] | None:
    """One finite, non-negative weight per style, not all zero (None passes)."""
    if weights is None:
        return None
    w = [float(x) for x in weights]
    if len(w) != k:
        raise ShapeError(f"got {len(w)} style weights for {k} styles; give one weight per style")
    if any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ShapeError(f"style weights must be finite, non-negative and not all zero; got {w}")
    return w


def refuse(family: str, **options: object) -> None:
    """Raise SpecError naming the first option that is set but means nothing to this family."""
    for name, value in options.items():
        unset = value is None or value is False or (isinstance(value, list | tuple) and not value)
        if not unset:
            raise SpecError(f"{family} models do not take {name.replace('_', ' ')} (got {value!r})")


def named_style(model: LoadedModel, name: str) -> Tensor:
    """The image of a named style of a gallery model, ``styles/<name>.png``: (1, 3, h, w)."""
    if name not in model.card.styles:
        known = ", ".join(model.card.styles) or "none"
        raise UnknownStyle(f"model {model.card.name!r} has no style {name!r}; its styles: {known}")
    from stylenorm.imageio import load_image

    return load_image(model.folder / "styles" / f"{name}.png")


def resolve_names(model: LoadedModel, styles: list) -> list:
    """Style names (of the model's own gallery) become their images; other styles pass through."""
    return [named_style(model, s) if isinstance(s, str) else s for s in styles]


def style_images(model: LoadedModel, family: str, styles: list, label: str = "style image") -> list[Tensor]:
    """The request's styles as checked images (gallery names resolved); SpecError when there is none."""
    images = [check_image(s, f"{label} {i + 1}") for i, s in enumerate(resolve_names(model, styles))]
    if not images:
        raise SpecError(f"{family} model {model.card.name!r} needs at least one style image")
    return images


def preserve_colors(stylized: Tensor, content: Tensor) -> Tensor:
    """Luminance-only transfer: stylized's luma with content's chroma (YCbCr, BT.601); (N, 3, H, W) each."""
    y_s = 0.299 * stylized[:, 0] + 0.587 * stylized[:, 1] + 0.114 * stylized[:, 2]
    y_c = 0.299 * content[:, 0] + 0.587 * content[:, 1] + 0.114 * content[:, 2]
    # content + (Δluma)·(1, 1, 1) keeps the content's Cb and Cr exactly (they ignore a gray offset)
    return (content + (y_s - y_c).unsqueeze(1)).clamp(0.0, 1.0)


def mix_weights(weights: Sequence[float] | None, k: int) -> list[float]:
    """Weights normalised to sum 1 (None: equal shares)."""
    if weights is None:
        return [1.0 / k] * k
    total = float(sum(weights))
    return [w / total for w in weights]


def check_classes(card: ModelCard, n: int, what: str) -> None:
    """The contract's class names (and palette) must fit a generator's n classes."""
    classes = card.contract.get("classes")
    if classes is not None and len(classes) != n:
        raise ModelError(f"{card.name}: {len(classes)} class names in the contract but {what} {n}")
    palette = card.contract.get("palette")
    if palette is not None:
        if len(palette) != n:
            raise ModelError(f"{card.name}: {len(palette)} palette colours but {what} {n}")
        packed = [tuple(c) for c in palette]
        if len(set(packed)) != n or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in packed):
            raise ModelError(f"{card.name}: the palette needs {n} distinct [r, g, b] colours in 0..255")
