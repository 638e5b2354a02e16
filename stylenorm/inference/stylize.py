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
Large images run in exact tiles (:mod:`stylenorm.nets.tiling`): with ``tile=``, or
automatically above ``max_untiled_pixels``. The CLI and the HTTP server both
call this module.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenorm.errors import ShapeError, SpecError
from stylenorm.families import Request, family_of, of_kind
from stylenorm.families.base import (
    MIN_SIDE,
    UnknownStyle,
    check_image,
    detached,
    named_style,
    preserve_colors,
    refuse,
)
from stylenorm.models import LoadedModel
from stylenorm.nets.adain import StyleStats
from stylenorm.nets.optimise import OptimiseOptions
from stylenorm.nets.tiling import DEFAULT_TILE, MIN_TILE
from stylenorm.runtime import InferencePath


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


class StyleCache:
    """A thread-safe LRU of style statistics, keyed by (model name, style key).

    The server keys styles by a hash of the upload (or by a name); ``key_of``
    hashes a decoded image. Entries are AdaIN's and the colour transfer's (mean, std), each (1, C),
    or WCT's colouring statistics per level (a mean and a C×C root: 344 KB for the shipped levels).
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
            self._entries[(model_name, key)] = detached(stats)
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
    dtype: torch.dtype | None = None,
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
    autocast (CUDA only), ``dtype`` in that autocast dtype (``torch.bfloat16``: fast only on a CPU
    with native bf16, see :func:`stylenorm.runtime.native_bf16`, and on CUDA). ``optimise``
    (options) and ``progress(i, n, loss)`` are for optimise models only. The result is on content's
    device.
    """
    family = family_of(model.card)
    if family.capabilities(model.card) is None:
        raise SpecError(
            f"model {model.card.name!r} is a {family.name!r} model; stylize handles "
            f"{', '.join(of_kind('stylize', 'optimise'))}"
        )
    content = check_image(content, "content").float()
    # one style given bare: a name or an image (a bare (mean, std) pair would read as two styles)
    styles = [styles] if isinstance(styles, str | Tensor) else list(styles)
    if not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
        raise ShapeError(f"alpha must be a number in [0, 1]; got {alpha!r}")
    if tile is not None and (not isinstance(tile, int) or isinstance(tile, bool) or tile < MIN_TILE):
        raise SpecError(f"tile must be an integer of at least {MIN_TILE} pixels; got {tile!r}")
    if max_untiled_pixels is not None and max_untiled_pixels < 1:
        raise SpecError(f"max_untiled_pixels must be positive; got {max_untiled_pixels}")
    h, w = content.shape[2:]
    if family.tiles and tile is None and max_untiled_pixels is not None and h * w > max_untiled_pixels:
        tile = DEFAULT_TILE
    device = model_device(model)
    if half and device.type != "cuda":
        raise SpecError(f"half precision needs a model on a CUDA device; this one is on {device}")
    if half:
        dtype = torch.float16
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
        raise SpecError(f"dtype must be torch.float16 or torch.bfloat16 (or None: float32); got {dtype}")
    request = Request(
        content, styles, None if style_weights is None else list(style_weights), float(alpha),
        bool(preserve_color), None if masks is None else list(masks), tile, max_untiled_pixels, cache,
        optimise, progress,
    )
    if family.needs_gradients:  # it optimises through the encoder: outside inference mode
        refuse(family.name, half=dtype is not None)
        return family.run(model, request, device)
    refuse(family.name, optimise=optimise, progress=progress)
    if not family.tiles:
        refuse(family.name, tile=tile)
    precision = family.serving_path(InferencePath(dtype, False)).autocast(device)
    with torch.inference_mode(), precision:
        out = family.run(model, request, device)
    return out.float().clamp(0.0, 1.0).to(content.device)


__all__ = [
    "MIN_SIDE",
    "StyleCache",
    "UnknownStyle",
    "model_device",
    "named_style",
    "preserve_colors",
    "resize_to",
    "stylize",
]
