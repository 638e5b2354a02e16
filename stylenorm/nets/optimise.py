"""Style transfer by optimisation (Gatys et al. 2016): no trained net, the pixels themselves are fitted.

The output image starts as the content photo and is optimised (L-BFGS by
default, or Adam) so that a pretrained VGG's features keep the content's at
``relu4_1`` while its per-layer statistics match the style's at ``relu1_1`` …
``relu4_1``: Gram matrices (Gatys et al.) or per-channel mean and std (the
statistics AdaIN matches). Slow — seconds to minutes per image on a CPU — but
it works with any style, needs only the encoder, and is the quality the
feed-forward models of this repository try to approach.

Each term is divided by its value at the start (a style layer's loss between
the content and the style, the content loss by the content features' mean
square), so the layers of a pretrained VGG, whose raw losses differ by orders
of magnitude, count alike and the weights read as proportions. Several styles
mix by weights (their target statistics are blended), or each paints its own
region with masks (the statistics of the masked features). ``progress`` is
called after every iteration and ``cancelled`` before each, so a caller can
show progress and stop a job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.nets.vgg import VGGEncoder

StyleLoss = Literal["gram", "mean_std"]
Optimizer = Literal["lbfgs", "adam"]
MAX_ITERATIONS = 2000
_EDGE = 0.02  # the start is clamped to [_EDGE, 1 − _EDGE]: a finite logit whose sigmoid still moves (at
# 1e-3, white and black regions had too little gradient to take any texture: a white sky stayed white)


class Cancelled(StylenormError):
    """The caller's ``cancelled()`` said stop (a deleted job, a server shutting down)."""


@dataclass(frozen=True)
class OptimiseOptions:
    """What the optimisation does (40 L-BFGS iterations at 256 px already paint a style's texture)."""

    iterations: int = 100
    content_weight: float = 1.0
    style_weight: float = 5.0
    style_loss: StyleLoss = "gram"
    optimizer: Optimizer = "lbfgs"
    lr: float | None = None  # default: 1 for L-BFGS (its line search scales the step), 0.1 for Adam
    tv_weight: float = 0.0
    init: Literal["content", "noise"] = "content"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise SpecError(f"iterations must be 1 … {MAX_ITERATIONS}; got {self.iterations}")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0:
            raise SpecError("loss weights must be ≥ 0")
        if self.style_loss not in ("gram", "mean_std"):
            raise SpecError(f"style_loss must be 'gram' or 'mean_std'; got {self.style_loss!r}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise SpecError(f"optimizer must be 'lbfgs' or 'adam'; got {self.optimizer!r}")
        if self.init not in ("content", "noise"):
            raise SpecError(f"init must be 'content' or 'noise'; got {self.init!r}")
        if self.lr is not None and not self.lr > 0:
            raise SpecError(f"lr must be > 0; got {self.lr}")


class OptimisationModel(nn.Module):
    """What an ``optimise`` model folder holds: the frozen encoder whose features are matched."""

    def __init__(self, encoder: VGGEncoder) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        last = int(encoder.last[4])
        self.style_taps = tuple(f"relu{i}_1" for i in range(1, last + 1))
        self.content_tap = encoder.last


def _masked_gram(features: Tensor, mask: Tensor | None) -> Tensor:
    """features (1, C, H, W), mask (1, 1, H, W) or None -> (1, C, C): the masked Gram over its area."""
    n, c, h, w = features.shape
    f = features if mask is None else features * mask
    area = h * w if mask is None else mask.sum().clamp_min(1.0)
    f = f.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * area)


def _masked_moments(features: Tensor, mask: Tensor | None, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over the mask's region: (1, C, H, W) -> two (1, C)."""
    if mask is None:
        mean = features.mean(dim=(2, 3))
        var = features.var(dim=(2, 3), unbiased=False)
    else:
        area = mask.sum().clamp_min(1.0)
        mean = (features * mask).sum(dim=(2, 3)) / area
        var = ((features - mean[..., None, None]).square() * mask).sum(dim=(2, 3)) / area
    return mean, (var + eps).sqrt()


def _statistics(features: Tensor, mask: Tensor | None, kind: StyleLoss) -> tuple[Tensor, ...]:
    return (_masked_gram(features, mask),) if kind == "gram" else _masked_moments(features, mask)


def _distance(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> Tensor:
    return sum(((x - y).square().mean() for x, y in zip(a, b, strict=True)), torch.zeros(()))


def _mask_at(mask: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(mask, size=size, mode="area") if mask.shape[2:] != size else mask


def _check(
    content: Tensor, styles: Sequence[Tensor], weights: Sequence[float] | None, masks: Sequence[Tensor] | None
) -> None:
    if content.dim() != 4 or content.shape[:2] != (1, 3):
        raise ShapeError(f"content must be one RGB image (1, 3, H, W); got {tuple(content.shape)}")
    if not styles:
        raise SpecError("optimisation needs at least one style image")
    for s in styles:
        if s.dim() != 4 or s.shape[:2] != (1, 3):
            raise ShapeError(f"each style must be one RGB image (1, 3, H, W); got {tuple(s.shape)}")
    if weights is not None and (len(weights) != len(styles) or min(weights) < 0 or sum(weights) <= 0):
        raise SpecError(
            f"weights: {len(styles)} non-negative numbers with a positive sum; got {list(weights)}"
        )
    if masks is not None:
        if weights is not None:
            raise SpecError("give masks (each style paints its region) or weights (styles mixed), not both")
        if len(masks) != len(styles):
            raise SpecError(f"{len(styles)} styles need {len(styles)} masks; got {len(masks)}")
        for m in masks:
            if m.shape != (1, 1, *content.shape[2:]):
                raise ShapeError(
                    f"each mask must be (1, 1, {content.shape[2]}, {content.shape[3]}); got {tuple(m.shape)}"
                )


def optimise(
    model: OptimisationModel,
    content: Tensor,
    styles: Sequence[Tensor],
    weights: Sequence[float] | None = None,
    masks: Sequence[Tensor] | None = None,
    options: OptimiseOptions | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Tensor:
    """The stylized image (1, 3, H, W) in [0, 1], content's size; styles (1, 3, h, w) any size each.

    ``weights``: mix the styles' statistics (default equal); ``masks`` (1, 1, H, W) in [0, 1]: style k
    paints where mask k is white. ``progress(iteration, iterations, loss)`` after each iteration;
    ``cancelled()`` true stops with :class:`Cancelled`.
    """
    options = options or OptimiseOptions()
    _check(content, styles, weights, masks)
    encoder, taps, last = model.encoder, model.style_taps, model.content_tap
    device = next(encoder.parameters()).device
    content = content.to(device, torch.float32)
    kind = options.style_loss
    with torch.no_grad():
        style_feats = [encoder(s.to(device, torch.float32), taps) for s in styles]
        content_feats = encoder(content, taps)
        target_content = content_feats[last]
        share = [1.0 / len(styles)] * len(styles) if weights is None else [w / sum(weights) for w in weights]
        # regions: one per mask, or one region (the whole image) whose target blends the styles' statistics
        region_masks: list[Tensor | None] = list(masks) if masks is not None else [None]
        targets: dict[str, list[tuple[Tensor, ...]]] = {}
        for tap in taps:
            stats = [_statistics(f[tap], None, kind) for f in style_feats]
            if masks is None:
                blended = tuple(
                    sum(w * s[i] for w, s in zip(share, stats, strict=True)) for i in range(len(stats[0]))
                )
                targets[tap] = [blended]  # type: ignore[list-item]
            else:
                targets[tap] = stats

        def style_terms(feats: dict[str, Tensor]) -> dict[str, Tensor]:
            out = {}
            for tap in taps:
                size = tuple(feats[tap].shape[2:])
                out[tap] = sum(
                    (
                        _distance(
                            _statistics(
                                feats[tap], None if m is None else _mask_at(m.to(device), size), kind
                            ),
                            t,
                        )
                        for m, t in zip(region_masks, targets[tap], strict=True)
                    ),
                    torch.zeros((), device=device),
                )
            return out

        start = style_terms(content_feats)
        scale = {tap: v.clamp_min(1e-12) for tap, v in start.items()}
        content_scale = target_content.square().mean().clamp_min(1e-12)

    generator = torch.Generator(device="cpu").manual_seed(options.seed)
    if options.init == "content":
        start_image = content.clone(memory_format=torch.contiguous_format)
    else:
        start_image = torch.rand(content.shape, generator=generator).to(device)
    # the pixels are sigmoid(z): always in (0, 1) with no clamping, which would break L-BFGS's curvature
    # history (it stalled within a few iterations when the image was clamped after each step)
    z = torch.logit(start_image.clamp(_EDGE, 1 - _EDGE)).requires_grad_(True)
    if options.optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [z],
            lr=options.lr or 1.0,
            max_iter=1,
            max_eval=20,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,  # the iteration count decides when to stop, not a
        )  # gradient threshold: pixel gradients of a normalised loss are small (below torch's 1e-7 default)
    else:
        opt = torch.optim.Adam([z], lr=options.lr or 0.1)
    style_share = options.style_weight / len(taps)

    def closure() -> Tensor:
        opt.zero_grad()
        x = torch.sigmoid(z)
        feats = encoder(x, taps)
        terms = style_terms(feats)
        loss = options.content_weight * (feats[last] - target_content).square().mean() / content_scale
        loss = loss + style_share * sum((terms[t] / scale[t] for t in taps), torch.zeros((), device=device))
        if options.tv_weight > 0:
            loss = loss + options.tv_weight * (
                (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
            )
        loss.backward()
        return loss

    with torch.enable_grad():
        for i in range(options.iterations):
            if cancelled is not None and cancelled():
                raise Cancelled(f"stopped after {i} of {options.iterations} iterations")
            loss = opt.step(closure)
            if progress is not None:
                progress(i + 1, options.iterations, float(loss.detach()))
    with torch.no_grad():
        return torch.sigmoid(z)


__all__ = ["MAX_ITERATIONS", "Cancelled", "OptimisationModel", "OptimiseOptions", "optimise"]
