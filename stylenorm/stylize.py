"""The stylize API: one function over every model family of the repository.

``stylize(model, content, …)`` takes a :class:`~stylenorm.models.LoadedModel`
and dispatches on its card's architecture:

========== ============================== ==========================================
family     styles                         options
========== ============================== ==========================================
fast       none (baked into the weights)  preserve_color (luminance only), tile
multistyle names from ``card.styles``     style_weights (mixing), preserve_color, tile
adain      images or cached (mean, std)   style_weights, alpha, masks, preserve_color (CORAL), tile
optimise   images (Gatys et al.: slow)    style_weights, masks, preserve_color (luminance), optimise
color      one image                      alpha
========== ============================== ==========================================

An option a family does not support is an error, never silently dropped.
Large images run in exact tiles (:mod:`stylenorm.tiling`): with ``tile=``, or
automatically above ``max_untiled_pixels``. The CLI and the HTTP server both
call this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.models import LoadedModel
from stylenorm.nets.adain import AdaINNet, StyleStats, coral
from stylenorm.nets.transformer import TransformerNet
from stylenorm.optimise import OptimisationModel, OptimiseOptions
from stylenorm.optimise import optimise as run_optimisation
from stylenorm.tiling import DEFAULT_TILE, MIN_TILE, adain_stylize_tiled, tiled_style_stats, transformer_tiled

MIN_SIDE = 16  # the smallest image side every family handles (reflection pads need a few pixels per level)
ARCHITECTURES = ("fast", "multistyle", "adain", "optimise", "color")


class UnknownStyle(StylenormError, KeyError):
    """A style name that the multi-style model does not have; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def resize_to(image: Tensor, size: int | None) -> Tensor:
    """Bound the longer side of image (N, C, H, W) to ``size``, keeping the aspect; never upscale."""
    if size is None:
        return image
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise SpecError(f"size must be a positive number of pixels; got {size!r}")
    if image.dim() != 4:
        raise ShapeError(f"expected images (N, C, H, W); got shape {tuple(image.shape)}")
    h, w = image.shape[2:]
    if max(h, w) <= size:
        return image
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(image.float(), size=new, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0).to(image.dtype)


def preserve_colors(stylized: Tensor, content: Tensor) -> Tensor:
    """Luminance-only transfer: stylized's luma with content's chroma (YCbCr, BT.601); (N, 3, H, W) each."""
    y_s = 0.299 * stylized[:, 0] + 0.587 * stylized[:, 1] + 0.114 * stylized[:, 2]
    y_c = 0.299 * content[:, 0] + 0.587 * content[:, 1] + 0.114 * content[:, 2]
    # content + (Δluma)·(1, 1, 1) keeps the content's Cb and Cr exactly (they ignore a gray offset)
    return (content + (y_s - y_c).unsqueeze(1)).clamp(0.0, 1.0)


class StyleCache:
    """A thread-safe LRU of AdaIN style statistics, keyed by (model name, style key).

    The server keys styles by a hash of the upload (or by a name); ``key_of``
    hashes a decoded image. Entries are small ((1, C) mean and std).
    """

    def __init__(self, capacity: int = 128) -> None:
        if capacity < 1:
            raise SpecError(f"cache capacity must be at least 1; got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, Hashable], StyleStats] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key_of(image: Tensor) -> str:
        """A content hash of an image tensor (shape, dtype and values)."""
        t = image.detach().contiguous().cpu()
        digest = hashlib.sha256(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return digest.hexdigest()

    def get(self, model_name: str, key: Hashable) -> StyleStats | None:
        """The cached (mean, std) or None; a hit makes the entry most recent."""
        with self._lock:
            stats = self._entries.get((model_name, key))
            if stats is None:
                self.misses += 1
                return None
            self._entries.move_to_end((model_name, key))
            self.hits += 1
            return stats

    def put(self, model_name: str, key: Hashable, stats: StyleStats) -> None:
        """Store (mean, std), each (1, C), evicting the least recently used entry when full."""
        with self._lock:
            self._entries[(model_name, key)] = (stats[0].detach(), stats[1].detach())
            self._entries.move_to_end((model_name, key))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def get_or_compute(self, model_name: str, key: Hashable, compute: Callable[[], StyleStats]) -> StyleStats:
        """The cached statistics, or ``compute()`` stored under (model_name, key)."""
        stats = self.get(model_name, key)
        if stats is None:
            stats = compute()
            self.put(model_name, key, stats)
        return stats

    def drop(self, model_name: str) -> None:
        """Forget every entry of one model (after it was reloaded or replaced)."""
        with self._lock:
            for k in [k for k in self._entries if k[0] == model_name]:
                del self._entries[k]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: tuple[str, Hashable]) -> bool:
        return item in self._entries


def model_device(model: LoadedModel) -> torch.device:
    """Where the model's weights live (CPU for weightless models)."""
    for p in model.module.parameters():
        return p.device
    for b in model.module.buffers():
        return b.device
    return torch.device("cpu")


def _check_image(t: object, what: str) -> Tensor:
    if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[:2] != (1, 3) or not t.is_floating_point():
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ShapeError(f"{what} must be one float RGB image (1, 3, H, W) in [0, 1]; got {got}")
    if min(t.shape[2:]) < MIN_SIDE:
        raise ShapeError(
            f"{what} is {t.shape[3]}×{t.shape[2]} (W×H); each side needs at least {MIN_SIDE} pixels"
        )
    return t


def _check_weights(weights: Sequence[float] | None, k: int) -> list[float] | None:
    if weights is None:
        return None
    w = [float(x) for x in weights]
    if len(w) != k:
        raise ShapeError(f"got {len(w)} style weights for {k} styles; give one weight per style")
    if any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ShapeError(f"style weights must be finite, non-negative and not all zero; got {w}")
    return w


def _refuse(family: str, **options: object) -> None:
    """Raise SpecError naming the first option that is set but means nothing to this family."""
    for name, value in options.items():
        unset = value is None or value is False or (isinstance(value, list | tuple) and not value)
        if not unset:
            raise SpecError(f"{family} models do not take {name.replace('_', ' ')} (got {value!r})")


def _style_row(model: LoadedModel, styles: Sequence[object], weights: list[float] | None) -> Tensor:
    """Multistyle: style names (+ weights) -> indices (1,) for one style, else mixing weights (1, S)."""
    names = model.card.styles
    if not styles:
        raise SpecError(f"multistyle model {model.card.name!r} needs a style name: one of {', '.join(names)}")
    index = []
    for s in styles:
        if not isinstance(s, str):
            raise SpecError(
                f"styles of multistyle model {model.card.name!r} are names ({', '.join(names)}); "
                f"got a {type(s).__name__}"
            )
        if s not in names:
            raise UnknownStyle(
                f"model {model.card.name!r} has no style {s!r}; valid styles: {', '.join(names)}"
            )
        index.append(names.index(s))
    if len(index) == 1:
        return torch.tensor(index)
    w = weights if weights is not None else [1.0] * len(index)
    row = torch.zeros(1, len(names))
    for i, wi in zip(index, w, strict=True):
        row[0, i] += wi / sum(w)  # a convex mix of the (γ, β) rows; a repeated name adds up
    return row


def stylize(
    model: LoadedModel,
    content: Tensor,
    styles: Sequence[str | Tensor | StyleStats] = (),
    style_weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    preserve_color: bool = False,
    masks: Sequence[Tensor] | None = None,
    tile: int | None = None,
    max_untiled_pixels: int | None = None,
    *,
    cache: StyleCache | None = None,
    half: bool = False,
    optimise: OptimiseOptions | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Tensor:
    """Stylize content (1, 3, H, W) in [0, 1] with a repository model -> (1, 3, H, W) float32 in [0, 1].

    ``styles``: style names (multistyle), style images (1, 3, h, w), cached
    (mean, std) or names of the model's gallery ``styles/<name>.png`` (adain),
    one image or gallery name (color), none (fast). ``style_weights`` mix
    several styles (normalized to sum 1); ``masks`` (H, W) in [0, 1], one per
    style, give each AdaIN style its region instead. ``alpha`` goes from the
    content (0) to full style (1). ``tile`` (pixels) runs exact tiles;
    ``max_untiled_pixels`` switches to tiles of DEFAULT_TILE above that many
    pixels. ``cache`` keeps AdaIN style statistics; ``half`` runs in float16
    autocast (CUDA only). ``optimise`` (options) and ``progress(i, n, loss)``
    are for optimise models only. The result is on content's device.
    """
    arch = model.card.architecture
    if arch not in ARCHITECTURES:
        raise SpecError(
            f"model {model.card.name!r} is a {arch!r} model; stylize handles {', '.join(ARCHITECTURES)}"
        )
    content = _check_image(content, "content").float()
    # one style given bare: a name or an image (a bare (mean, std) pair would read as two styles)
    styles = [styles] if isinstance(styles, str | Tensor) else list(styles)
    if not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
        raise ShapeError(f"alpha must be a number in [0, 1]; got {alpha!r}")
    if tile is not None and (not isinstance(tile, int) or isinstance(tile, bool) or tile < MIN_TILE):
        raise SpecError(f"tile must be an integer of at least {MIN_TILE} pixels; got {tile!r}")
    if max_untiled_pixels is not None and max_untiled_pixels < 1:
        raise SpecError(f"max_untiled_pixels must be positive; got {max_untiled_pixels}")
    h, w = content.shape[2:]
    if tile is None and max_untiled_pixels is not None and h * w > max_untiled_pixels:
        tile = DEFAULT_TILE
    device = model_device(model)
    if half and device.type != "cuda":
        raise SpecError(f"half precision needs a model on a CUDA device; this one is on {device}")
    if arch == "optimise":  # gradients through the encoder: outside inference mode
        _refuse(arch, alpha=None if alpha == 1.0 else alpha, tile=tile, half=half)
        return _run_optimise(model, content, styles, style_weights, preserve_color, masks, optimise, progress)
    _refuse(arch, optimise=optimise, progress=progress)
    precision = torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext()
    with torch.inference_mode(), precision:
        options = (style_weights, alpha, preserve_color, masks)
        if arch in ("fast", "multistyle"):
            out = _run_transformer(model, content, styles, *options, tile, device)
        elif arch == "adain":
            out = _run_adain(model, content, styles, *options, tile, device, cache, max_untiled_pixels)
        else:
            out = _run_color(model, content, styles, *options, device)
    return out.float().clamp(0.0, 1.0).to(content.device)


def _run_transformer(
    model: LoadedModel,
    content: Tensor,
    styles: list,
    weights: Sequence[float] | None,
    alpha: float,
    preserve_color: bool,
    masks: Sequence[Tensor] | None,
    tile: int | None,
    device: torch.device,
) -> Tensor:
    arch, net = model.card.architecture, model.module
    assert isinstance(net, TransformerNet)
    _refuse(arch, alpha=None if alpha == 1.0 else alpha, masks=masks)
    if arch == "fast":
        _refuse(arch, styles=styles, style_weights=weights)
        cond = None
    else:
        cond = _style_row(model, styles, _check_weights(weights, len(styles)))
    if tile is not None:  # the full activations stay where the content is
        out = transformer_tiled(net, content, cond, tile, device)
    else:
        out = net(content.to(device), None if cond is None else cond.to(device)).to(content.device)
    return preserve_colors(out.float(), content) if preserve_color else out


def _run_optimise(
    model: LoadedModel,
    content: Tensor,
    styles: list,
    weights: Sequence[float] | None,
    preserve_color: bool,
    masks: Sequence[Tensor] | None,
    options: OptimiseOptions | None,
    progress: Callable[[int, int, float], None] | None,
) -> Tensor:
    net = model.module
    assert isinstance(net, OptimisationModel)
    images = [_check_image(s, f"style {i + 1}") for i, s in enumerate(_resolve_names(model, styles))]
    if not images:
        raise SpecError(f"optimise model {model.card.name!r} needs at least one style image")
    weights = _check_weights(weights, len(images))
    if masks is not None:
        masks = [m.reshape(1, 1, *m.shape[-2:]).float() for m in masks]
    out = run_optimisation(net, content, images, weights, masks, options, progress).to(content.device)
    return preserve_colors(out, content) if preserve_color else out


def _run_adain(
    model: LoadedModel,
    content: Tensor,
    styles: list,
    weights: Sequence[float] | None,
    alpha: float,
    preserve_color: bool,
    masks: Sequence[Tensor] | None,
    tile: int | None,
    device: torch.device,
    cache: StyleCache | None,
    max_untiled_pixels: int | None,
) -> Tensor:
    net = model.module
    assert isinstance(net, AdaINNet)
    styles = _resolve_names(model, styles)
    if not styles:
        raise SpecError(f"adain model {model.card.name!r} needs at least one style image")
    weights = _check_weights(weights, len(styles))
    if masks is not None:
        masks = list(masks)
        if weights is not None:
            raise SpecError("give style weights or masks, not both: masks already decide each style's share")
        if len(masks) != len(styles):
            raise ShapeError(f"need one mask per style: {len(styles)} styles, {len(masks)} masks")
        size = tuple(content.shape[2:])
        for i, m in enumerate(masks):
            if not isinstance(m, Tensor) or m.dim() != 2 or tuple(m.shape) != size:
                got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                raise ShapeError(f"mask {i + 1} must be (H, W) = {size} like the content; got {got}")
    host = content.device if tile is not None else device
    prepared: list[StyleStats] = []
    for i, s in enumerate(styles):
        if isinstance(s, Tensor):
            s = _check_image(s, f"style image {i + 1}").float()
            big = max_untiled_pixels is not None and s.shape[2] * s.shape[3] > max_untiled_pixels
            style_tile = tile if tile is not None else (DEFAULT_TILE if big else None)
            if preserve_color:
                # AdaINNet's colour preservation, done here so large styles can be encoded in tiles;
                # the recoloured style depends on this content, so it is not cached
                s = coral(s[0].to(content.device), content[0]).unsqueeze(0)
                prepared.append(_adain_stats(model, net, s, style_tile, device, None))
            else:
                prepared.append(_adain_stats(model, net, s, style_tile, device, cache))
        elif isinstance(s, tuple | list) and len(s) == 2 and all(isinstance(t, Tensor) for t in s):
            if preserve_color:
                raise SpecError("preserve_color recolours style images; it cannot apply to cached statistics")
            prepared.append((s[0], s[1]))
        else:
            raise SpecError(
                f"adain styles are images (1, 3, h, w) or cached (mean, std); style {i + 1} is a "
                f"{type(s).__name__}" + (" (multistyle models take names)" if isinstance(s, str) else "")
            )
    # statistics (cached ones too) may sit on any device
    stats: list[Tensor | StyleStats] = [(mean.to(host), std.to(host)) for mean, std in prepared]
    if tile is not None:
        return adain_stylize_tiled(net, content, stats, weights, alpha, masks, False, tile, device)
    masks_dev = None if masks is None else [m.to(device) for m in masks]
    return net.stylize(content.to(device), stats, weights, alpha, masks_dev, False)


def named_style(model: LoadedModel, name: str) -> Tensor:
    """The image of a named style of an adain/color model, ``styles/<name>.png``: (1, 3, h, w)."""
    if name not in model.card.styles:
        known = ", ".join(model.card.styles) or "none"
        raise UnknownStyle(f"model {model.card.name!r} has no style {name!r}; its styles: {known}")
    from stylenorm.imageio import load_image

    return load_image(model.folder / "styles" / f"{name}.png")


def _resolve_names(model: LoadedModel, styles: list) -> list:
    """Style names (of the model's own gallery) become their images; other styles pass through."""
    return [named_style(model, s) if isinstance(s, str) else s for s in styles]


def _adain_stats(
    model: LoadedModel,
    net: AdaINNet,
    style: Tensor,
    tile: int | None,
    device: torch.device,
    cache: StyleCache | None,
) -> StyleStats:
    """(mean, std) of one style image: from the cache, else encoded (in tiles when tile is set)."""

    def compute() -> StyleStats:
        if tile is not None:  # the style stays on its device, tiles go to the model's
            return tiled_style_stats(net, style, tile, device)
        return net.style_stats(style.to(device))

    if cache is None:
        return compute()
    return cache.get_or_compute(model.card.name, StyleCache.key_of(style), compute)


def _run_color(
    model: LoadedModel,
    content: Tensor,
    styles: list,
    weights: Sequence[float] | None,
    alpha: float,
    preserve_color: bool,
    masks: Sequence[Tensor] | None,
    device: torch.device,
) -> Tensor:
    # pixelwise with global statistics: tiling would not change a thing, so it is not needed here
    _refuse("color", style_weights=weights, masks=masks, preserve_color=preserve_color)
    styles = _resolve_names(model, styles)
    if len(styles) != 1 or not isinstance(styles[0], Tensor):
        raise SpecError(f"color models take exactly one style image; got {len(styles)} style(s)")
    style = _check_image(styles[0], "style image")
    return model.module(content.to(device), style.to(device), alpha)


__all__ = [
    "ARCHITECTURES",
    "MIN_SIDE",
    "StyleCache",
    "UnknownStyle",
    "model_device",
    "preserve_colors",
    "resize_to",
    "stylize",
]
