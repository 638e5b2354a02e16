"""Spatial modulations from a segmentation map: SPADE (a conv net) and CLADE (a table)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm.base import Affine, Modulation, Normalization
from stylenorm.norm.registry import KERNEL, STAT_OPTIONS, inner_stats, register_norm, require_option


def _check_segmap(x: Tensor, segmap: Tensor, label_nc: int, who: str) -> None:
    if not isinstance(segmap, Tensor) or segmap.dim() != 4:
        got = tuple(segmap.shape) if isinstance(segmap, Tensor) else type(segmap).__name__
        raise ShapeError(f"{who} needs a label map (N, {label_nc}, h, w); got {got}")
    if segmap.shape[0] != x.shape[0] or segmap.shape[1] != label_nc:
        raise ShapeError(
            f"{who} label map must be (N, label_nc, h, w) = ({x.shape[0]}, {label_nc}, h, w); "
            f"got {tuple(segmap.shape)}"
        )
    if not segmap.is_floating_point():
        raise ShapeError(f"{who} label map must be a float (one-hot) tensor; got {segmap.dtype}")


class SpatialModulation(Modulation):
    """SPADE: per-pixel γ, β from a conv net over the label map; scale = 1 + γ.

    ``cond`` (N, label_nc, h, w) is resized to x's size by nearest, then
    ``γ, β = conv(ReLU(conv(m)))`` with a shared hidden width (128 as in the
    official code) and zero padding. Key names follow NVlabs/SPADE
    (``mlp_shared.0``, ``mlp_gamma``, ``mlp_beta``).
    """

    conditional = True

    def __init__(
        self, label_nc: int, num_features: int, kernel_size: int = 3, hidden: int = 128
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ShapeError(f"SPADE kernel size must be odd (3, 5, 11, ...); got {kernel_size}")
        pad = kernel_size // 2
        self.label_nc = label_nc
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, num_features, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, num_features, kernel_size, padding=pad)

    def forward(self, x: Tensor, cond: Tensor) -> Affine:
        """cond (N, label_nc, h, w) -> (1 + γ, β), each (N, C, H, W)."""
        _check_segmap(x, cond, self.label_nc, "SPADE")
        segmap = cond.to(x.dtype)
        if segmap.shape[2:] != x.shape[2:]:
            segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        # One conv for γ and β reads the hidden map once; the "1 +" rides in γ's bias
        # (1 + Wa + b = Wa + (b + 1)), saving a full pass over the (N, C, H, W) output.
        weight = torch.cat([self.mlp_gamma.weight, self.mlp_beta.weight])
        bias = torch.cat([self.mlp_gamma.bias + 1, self.mlp_beta.bias])
        scale, shift = F.conv2d(actv, weight, bias, padding=self.mlp_gamma.padding).chunk(2, dim=1)
        return scale, shift


@register_norm(
    "spade", "spade:<stats>:<k>x<k>", "SPADE: per-pixel 1+γ, β from a conv net over the label map",
    ("label_nc", "hidden", *STAT_OPTIONS), max_args=8, conditional=True,
)
def _spade(c: int, args: list[str], spec: str, hidden: int = 128, **o: Any) -> nn.Module:
    label_nc = require_option(spec, o, "label_nc", f"'{spec}', 64, label_nc=151")
    kernel = 3
    if args and (size := KERNEL.match(args[-1])):
        kh, kw = (int(v) for v in size.groups())
        if kh != kw or kh % 2 == 0:
            raise SpecError(f"{spec!r}: the kernel must be square and odd, like 3x3 or 5x5")
        kernel, args = kh, args[:-1]
    stats = inner_stats(spec, ":".join(args) or "instance", c, o)
    return Normalization(stats, SpatialModulation(label_nc, c, kernel, hidden), num_features=c)


class ClassModulation(Modulation):
    """CLADE: γ, β looked up per pixel from a (label_nc, C) table by the pixel's class.

    The class of a pixel is the argmax over the label channels (a one-hot map
    gives the same result as a bias-free 1×1 conv on it). Tables start at
    γ = 1, β = 0 (the official code draws γ from U(0, 1)).
    """

    conditional = True

    def __init__(self, label_nc: int, num_features: int) -> None:
        super().__init__()
        self.label_nc = label_nc
        self.weight = nn.Parameter(torch.ones(label_nc, num_features))
        self.bias = nn.Parameter(torch.zeros(label_nc, num_features))

    def forward(self, x: Tensor, cond: Tensor) -> Affine:
        """cond (N, label_nc, h, w) -> (γ, β), each (N, C, H, W)."""
        _check_segmap(x, cond, self.label_nc, "CLADE")
        labels = cond.argmax(dim=1, keepdim=True)
        if labels.shape[2:] != x.shape[2:]:
            labels = F.interpolate(labels.float(), size=x.shape[2:], mode="nearest").long()
        labels = labels[:, 0]  # (N, H, W)
        gamma = F.embedding(labels, self.weight).permute(0, 3, 1, 2)
        beta = F.embedding(labels, self.bias).permute(0, 3, 1, 2)
        return gamma, beta


@register_norm(
    "clade", "clade[:<stats>]", "CLADE: per-class γ, β looked up per pixel", ("label_nc", *STAT_OPTIONS),
    max_args=8, conditional=True,
)
def _clade(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    label_nc = require_option(spec, o, "label_nc", f"'{spec}', 64, label_nc=151")
    stats = inner_stats(spec, ":".join(args) or "instance", c, o)
    return Normalization(stats, ClassModulation(label_nc, c), num_features=c)
