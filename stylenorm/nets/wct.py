"""Universal style transfer by whitening and colouring (WCT, Li et al. 2017).

One pretrained VGG encoder, one decoder per level (relu1_1 … relu4_1) trained only to invert the
encoder, and no style training at all. Coarse to fine, at each level from the deepest: encode the
current image, whiten its features per sample (:class:`~stylenorm.norm.whitening.InstanceWhitening`),
colour them with the style's mean and covariance square root, blend with alpha, decode. Several styles
mix by weights (the coloured features are blended). Newton–Schulz iterations by default: no SVD or
eigendecomposition in the forward pass (``method="eigh"`` is the exact reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.nets.adain import crop_margin, mirrored_decoder, pad_mirrored
from stylenorm.nets.vgg import VGGEncoder
from stylenorm.norm.whitening import Method, covariance, sqrt_and_inverse_sqrt, whiten_instances

LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
MARGIN = 16  # pixels mirrored around the content against a border fringe (a multiple of the stride 8)

# per level: (mean (N, C), Σ^{1/2} (N, C, C)) of one style
Colouring = dict[str, tuple[Tensor, Tensor]]


class Decoders(nn.Module):
    """One mirrored decoder per level; ``decoders(features)`` decodes {level: features} -> {level: image}."""

    def __init__(self, depth: int, levels: Sequence[str]) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.by_level = nn.ModuleDict({level: mirrored_decoder(depth, level) for level in self.levels})

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {level: self.by_level[level](f) for level, f in features.items()}


class WCTNet(nn.Module):
    """The encoder (cut at the deepest level), the decoders, and the cascade."""

    def __init__(
        self,
        encoder: VGGEncoder,
        levels: Sequence[str] = LEVELS,
        eps: float = 1e-5,
        method: Method = "newton",
        iterations: int = 30,
    ) -> None:
        super().__init__()
        unknown = sorted(set(levels) - set(LEVELS))
        if unknown or not levels:
            raise ShapeError(f"WCT levels are some of {', '.join(LEVELS)}; got {list(levels)}")
        self.levels = tuple(sorted(set(levels), key=LEVELS.index))  # shallow to deep
        if LEVELS.index(self.levels[-1]) > LEVELS.index(encoder.last):
            raise ShapeError(f"the encoder ends at {encoder.last}, before the level {self.levels[-1]}")
        self.encoder = encoder
        self.decoders = Decoders(encoder.depth, self.levels)
        self.eps, self.method, self.iterations = eps, method, iterations
        self.multiple = 2 ** LEVELS.index(self.levels[-1])

    def style_stats(self, style: Tensor) -> Colouring:
        """A style image (1, 3, h, w) -> its colouring statistics at every level (cacheable)."""
        feats = self.encoder(style, self.levels)
        out: Colouring = {}
        for level, f in feats.items():
            n, c = f.shape[:2]
            with torch.autocast(f.device.type, enabled=False):
                mean, sigma = covariance(f.reshape(n, c, -1), self.eps)
                root, _ = sqrt_and_inverse_sqrt(sigma, self.method, self.iterations)
            out[level] = (mean[..., 0], root)
        return out

    def transfer(self, feat: Tensor, styles: list[tuple[Tensor, Tensor]], mix: list[float]) -> Tensor:
        """Whitened content features coloured with each style, blended by mix (summing to 1)."""
        white = whiten_instances(feat, int(feat.shape[1]), self.eps, self.method, self.iterations)
        n, c, h, w = white.shape
        flat = white.reshape(n, c, h * w)
        flat = flat.double() if flat.dtype == torch.float64 else flat.float()
        out = torch.zeros_like(flat)
        for m, (mean, root) in zip(mix, styles, strict=True):
            out += m * (root.to(flat) @ flat + mean.to(flat)[..., None])
        return out.reshape(n, c, h, w).to(feat.dtype)

    def transfer_regions(
        self, feat: Tensor, styles: list[tuple[Tensor, Tensor]], weights: Tensor
    ) -> Tensor:
        """Masks: each style's region whitened with that region's own statistics and coloured with its
        style; the results blended per pixel by weights (K, h, w), which sum to 1 where any is set."""
        n, c, h, w = feat.shape
        flat = feat.reshape(n, c, h * w)
        flat = flat.double() if flat.dtype == torch.float64 else flat.float()
        out = torch.zeros_like(flat)
        for wk, (mean, root) in zip(weights.reshape(len(styles), h * w), styles, strict=True):
            region = wk > 0
            if int(region.sum()) < 2:
                continue  # a region that vanished at this level's resolution: no statistics to take
            with torch.autocast(feat.device.type, enabled=False):
                r_mean, sigma = covariance(flat[:, :, region], self.eps)
                _, inv = sqrt_and_inverse_sqrt(sigma, self.method, self.iterations)
                coloured = root.to(flat) @ (inv @ (flat - r_mean)) + mean.to(flat)[..., None]
            out += wk.to(flat) * coloured
        return out.reshape(n, c, h, w).to(feat.dtype)

    def stylize(
        self,
        content: Tensor,
        styles: list[Tensor | Colouring],
        weights: list[float] | None = None,
        alpha: float = 1.0,
        masks: list[Tensor] | None = None,
    ) -> Tensor:
        """content (1, 3, H, W) with styles (images (1, 3, h, w) or their :meth:`style_stats`); mixed
        by ``weights``, or placed by ``masks`` (one (H, W) in [0, 1] per style: region statistics)."""
        if content.dim() != 4 or content.shape[:2] != (1, 3):
            raise ShapeError(f"content must be one RGB image (1, 3, H, W); got {tuple(content.shape)}")
        if not styles:
            raise ShapeError("need at least one style")
        if masks is not None and (len(masks) != len(styles) or weights is not None):
            raise ShapeError(f"give one mask per style ({len(styles)}) and no weights with masks")
        stats = [self.style_stats(s) if isinstance(s, Tensor) else s for s in styles]
        total = float(sum(weights)) if weights is not None else float(len(stats))
        mix = [w / total for w in weights] if weights is not None else [1.0 / len(stats)] * len(stats)
        x, h, w = pad_mirrored(content, MARGIN, self.multiple)
        grid = None
        if masks is not None:  # padded like the content, so they stay on the picture
            grid = pad_mirrored(torch.stack([m.float() for m in masks])[None].to(x), MARGIN, self.multiple)[0]
        for level in reversed(self.levels):  # coarse to fine
            feat = self.encoder(x, (level,))[level]
            level_styles = [s[level] for s in stats]
            if grid is None:
                t = self.transfer(feat, level_styles, mix)
            else:
                k = F.interpolate(grid, size=feat.shape[2:], mode="bilinear", align_corners=False)[0]
                k = k / k.sum(0, keepdim=True).clamp_min(1e-8)
                t = self.transfer_regions(feat, level_styles, k)
            x = self.decoders.by_level[level](alpha * t + (1 - alpha) * feat)
        return crop_margin(x, MARGIN, (h, w))

    def reconstruct(self, content: Tensor, level: str) -> Tensor:
        """Encode and decode at one level (what the decoders are trained for)."""
        x, h, w = pad_mirrored(content, MARGIN, self.multiple)
        return crop_margin(self.decoders.by_level[level](self.encoder(x, (level,))[level]), MARGIN, (h, w))


__all__ = ["LEVELS", "Colouring", "Decoders", "WCTNet"]
