"""Layers whose structure goes beyond one statistic × one modulation.

IBN splits channels between two norms; FRN adds a learned threshold (TLU);
PONO hands its moments to a later moment shortcut; EvoNorm mixes
normalization and activation in one formula.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.norm.base import Normalization, check_features, modulate
from stylenorm.norm.modulation import ChannelAffine
from stylenorm.norm.registry import one_float, one_int, register_norm
from stylenorm.norm.stats import (
    BatchStats,
    FRNStats,
    InstanceStats,
    PositionStats,
    _RunningStats,
)


class IBN(nn.Module):
    """IBN-a: instance norm (affine) on the first ⌊ratio·C⌋ channels, batch norm on the rest.

    Any ratio in (0, 1) (the official split only works for 0.5). Keys follow
    IBN-Net: ``IN.weight``, ``IN.bias``, ``BN.weight``, ``BN.running_mean`` ….
    """

    def __init__(
        self, num_features: int, ratio: float = 0.5, eps: float = 1e-5, momentum: float | None = 0.1
    ) -> None:
        super().__init__()
        half = int(num_features * ratio)
        if not 0 < ratio < 1 or half < 1 or half >= num_features:
            raise ShapeError(
                f"IBN ratio must leave both parts non-empty: ratio={ratio} of {num_features} "
                f"channels gives {half} IN and {num_features - half} BN channels"
            )
        self.num_features = num_features
        self.half = half
        self.IN = Normalization(InstanceStats(half, eps), ChannelAffine(half), num_features=half)
        rest = num_features - half
        self.BN = Normalization(BatchStats(rest, eps, momentum), ChannelAffine(rest), num_features=rest)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> (N, C, H, W)."""
        check_features(x, self.num_features, "IBN")
        a, b = torch.split(x, [self.half, self.num_features - self.half], dim=1)
        return torch.cat([self.IN(a), self.BN(b)], dim=1)


@register_norm(
    "ibn", "ibn:ratio", "IBN-a: IN on ratio·C channels, BN on the rest", ("eps", "momentum"), max_args=1
)
def _ibn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return IBN(c, one_float(spec, args, "the IN ratio", 0.5), **o)


class FilterResponseNorm(Normalization):
    """FRN followed by the thresholded linear unit: ``max(γ·x/sqrt(ν² + |ε|) + β, τ)``.

    γ = 1, β = 0, τ = 0 per channel; ``tlu=False`` leaves out the threshold.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-6, learnable_eps: bool = False, tlu: bool = True
    ) -> None:
        super().__init__(
            FRNStats(num_features, eps, learnable_eps), ChannelAffine(num_features),
            num_features=num_features,
        )
        self.tau = nn.Parameter(torch.zeros(num_features)) if tlu else None

    def forward(self, x: Tensor, cond: None = None) -> Tensor:
        """x (N, C, H, W) -> (N, C, H, W)."""
        y = super().forward(x, cond)
        return y if self.tau is None else torch.maximum(y, self.tau.view(1, -1, 1, 1))


@register_norm("frn", "frn", "Filter Response Norm + TLU", ("eps", "learnable_eps", "tlu"))
def _frn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return FilterResponseNorm(c, **o)


class PositionalNorm(Normalization):
    """PONO: normalize over channels at each position; optionally return the moments.

    With ``return_stats=True`` the call returns ``(y, mean, std)`` with mean
    and std (N, 1, H, W), for :func:`moment_shortcut` in a decoder.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        affine: bool = False,
        unbiased: bool = False,
        return_stats: bool = False,
    ) -> None:
        super().__init__(
            PositionStats(num_features, eps, unbiased),
            ChannelAffine(num_features) if affine else None,
            num_features=num_features,
        )
        self.return_stats = return_stats

    def forward(self, x: Tensor, cond: None = None) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """x (N, C, H, W) -> y (N, C, H, W), or (y, mean, std) with moments (N, 1, H, W)."""
        check_features(x, self.num_features, "PositionalNorm")
        mean, std = self.stats.moments(x)
        scale, shift = self._affine(x, cond)
        y = modulate((x - mean) / std, scale, shift)
        return (y, mean, std) if self.return_stats else y


@register_norm(
    "pono", "pono", "Positional Norm (moments available for a moment shortcut)",
    ("eps", "affine", "unbiased", "return_stats"),
)
def _pono(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return PositionalNorm(c, **o)


def moment_shortcut(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """PONO's moment shortcut ``x · std + mean`` (not in place); mean, std broadcast to x."""
    return torch.addcmul(mean, x, std)


class MomentShortcut(nn.Module):
    """Module form of :func:`moment_shortcut`: ``ms(x, mean, std)``."""

    def forward(self, x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """x (N, C, H, W), mean/std (N, 1, H, W) -> (N, C, H, W)."""
        return moment_shortcut(x, mean, std)


class EvoNormB0(_RunningStats):
    """EvoNorm-B0: ``x / max(sqrt(σ²_B + ε), v·x + sqrt(σ²_IN + ε)) · γ + β``.

    σ²_B is the biased batch variance in training (running var, unbiased, in
    eval; torch's momentum rule); σ²_IN the instance variance. γ = v = 1, β = 0.
    """

    def __init__(self, num_features: int, eps: float = 1e-3, momentum: float | None = 0.1) -> None:
        super().__init__(num_features, eps, momentum, True)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> (N, C, H, W)."""
        check_features(x, self.num_features, "EvoNormB0")
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ShapeError(f"EvoNorm-B0 needs more than one value per channel; got {tuple(x.shape)}")
            var_b = torch.var(x, dim=(0, 2, 3), correction=0)
            factor = self._next_factor()
            with torch.no_grad():
                mean_b = x.mean(dim=(0, 2, 3))
            self._update(mean_b, var_b.detach() * count / (count - 1), factor)
        else:
            var_b = self.running_var
        var_in = torch.var(x, dim=(2, 3), keepdim=True, correction=0)
        den = torch.maximum(
            torch.sqrt(var_b + self.eps).view(1, -1, 1, 1),
            self.v.view(1, -1, 1, 1) * x + torch.sqrt(var_in + self.eps),
        )
        return x / den * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


@register_norm("evo_b0", "evo_b0", "EvoNorm-B0", ("eps", "momentum"))
def _evo_b0(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return EvoNormB0(c, **o)


class EvoNormS0(nn.Module):
    """EvoNorm-S0: ``x · sigmoid(v·x) / sqrt(σ²_group + ε) · γ + β`` (biased group std)."""

    def __init__(self, num_features: int, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        groups = min(groups, num_features)
        if num_features % groups:
            raise ShapeError(f"EvoNorm-S0: {groups} groups do not divide {num_features} channels")
        self.num_features, self.groups, self.eps = num_features, groups, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> (N, C, H, W)."""
        check_features(x, self.num_features, "EvoNormS0")
        n, c, _h, _w = x.shape
        var = torch.var(x.reshape(n, self.groups, -1), dim=2, correction=0)
        inv = torch.rsqrt(var + self.eps).repeat_interleave(c // self.groups, dim=1)
        num = x * torch.sigmoid(self.v.view(1, -1, 1, 1) * x)
        return num * (inv * self.weight).view(n, c, 1, 1) + self.bias.view(1, -1, 1, 1)


@register_norm("evo_s0", "evo_s0:G", "EvoNorm-S0 with G groups (default 32)", ("eps",), max_args=1)
def _evo_s0(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return EvoNormS0(c, one_int(spec, args, "the group count", default=32), **o)


@register_norm(
    "lrn", "lrn:n", "Local Response Norm (torch.nn.LocalResponseNorm)", ("alpha", "beta", "k"), max_args=1
)
def _lrn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return nn.LocalResponseNorm(one_int(spec, args, "the window n", default=5), **o)  # torch's own class


__all__ = [
    "IBN",
    "EvoNormB0",
    "EvoNormS0",
    "FilterResponseNorm",
    "MomentShortcut",
    "PositionalNorm",
    "moment_shortcut",
]
