"""Statistics: the parameter-free half of a normalization (which elements μ, σ span).

Each class is called ``stats(x, scale=None, shift=None)`` with x (N, C, H, W)
and returns ``x̂ · scale + shift`` (see :mod:`stylenorm.norm.base` for the
accepted scale/shift shapes). Where a torch kernel exists it is used with the
affine fused into it; running buffers carry torch's names and conventions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.norm.base import is_per_pixel, modulate
from stylenorm.norm.registry import RUN_OPTIONS, one_int, register_affine_layer, register_norm, register_stats


def _per_channel(scale: Tensor | None, shift: Tensor | None) -> bool:
    return all(t is None or t.dim() == 1 for t in (scale, shift))


def _flat(t: Tensor | None, n: int, c: int) -> Tensor | None:
    """(C,) or (N, C) or (1, C) as a (N·C,) vector, for the (1, N·C, H, W) view."""
    return None if t is None else t.expand(n, c).reshape(n * c)


def group_normalize(
    x: Tensor, num_groups: int, scale: Tensor | None, shift: Tensor | None, eps: float
) -> Tensor:
    """Group-normalize x (N, C, H, W) and apply scale/shift of shape (C,), (N, C) or (N, C, H, W)."""
    n, c, h, w = x.shape
    g = num_groups
    if (c // g) * h * w == 1:
        return modulate(torch.zeros_like(x), scale, shift)
    if is_per_pixel(scale) or is_per_pixel(shift):
        return modulate(F.group_norm(x, g, None, None, eps), scale, shift)
    if _per_channel(scale, shift):
        return F.group_norm(x, g, scale, shift, eps)
    if not x.is_contiguous():  # the view below would copy; normalize then modulate
        return modulate(F.group_norm(x, g, None, None, eps), scale, shift)
    y = F.group_norm(x.view(1, n * c, h, w), n * g, _flat(scale, n, c), _flat(shift, n, c), eps)
    return y.view(n, c, h, w)


class IdentityStats(nn.Module):
    """No normalization: ``x̂ = x`` (the statistic of FiLM and of ``none``)."""

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x · scale + shift."""
        return modulate(x, scale, shift)


@register_stats("none", "none", "no normalization (x̂ = x)", ())
def _none_stats(c: int, args: list[str], spec: str) -> nn.Module:
    return IdentityStats()


@register_norm("none", "none", "identity", ())
def _none(c: int, args: list[str], spec: str) -> nn.Module:
    return nn.Identity()


class _RunningStats(nn.Module):
    """Running mean/var buffers with torch's names, momentum rule and cumulative mode."""

    def __init__(
        self, num_features: int, eps: float, momentum: float | None, track_running_stats: bool
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running var 1, batch counter 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _next_factor(self) -> float:
        """Count one more training batch and return this update's averaging factor."""
        if not (self.training and self.track_running_stats):
            return 0.0
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as torch's BatchNorm
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    @torch.no_grad()
    def _update(self, mean: Tensor, unbiased_var: Tensor, factor: float) -> None:
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)

    def _normalize_by_running(self, x: Tensor, scale: Tensor | None, shift: Tensor | None) -> Tensor:
        """Normalize by the running buffers (eval), the affine fused into the kernel when per-channel."""
        fused = _per_channel(scale, shift)
        y = F.batch_norm(
            x, self.running_mean, self.running_var,
            scale if fused else None, shift if fused else None, False, 0.0, self.eps,
        )
        return y if fused else modulate(y, scale, shift)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchStats(_RunningStats):
    """Batch statistics over (N, H, W) per channel, exactly as ``torch.nn.BatchNorm2d``.

    Biased variance to normalize, unbiased variance into ``running_var``,
    momentum 0.1 (``None`` = cumulative average); eval uses the running buffers.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, track_running_stats)

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        factor = self._next_factor()
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        fused = _per_channel(scale, shift)
        y = F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            scale if fused else None,
            shift if fused else None,
            use_batch,
            factor,
            self.eps,
        )
        return y if fused else modulate(y, scale, shift)


@register_stats("batch", "batch", "BatchNorm statistics over (N, H, W), running mean/var", RUN_OPTIONS)
def _batch_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return BatchStats(c, **o)


register_affine_layer("batch", True, "BatchNorm (torch.nn.BatchNorm2d compatible)")


class GroupStats(nn.Module):
    """Statistics over (C/G, H, W) per sample and group, exactly as ``F.group_norm``.

    ``num_groups=C`` is instance norm, ``num_groups=1`` layer norm over (C, H, W).
    A group of a single element normalizes to x̂ = 0 (torch raises instead).
    Per-sample (N, C) scale/shift are fused into the kernel through the
    (1, N·C, H, W) view, so CIN and AdaIN cost one pass over x.
    """

    def __init__(self, num_features: int, num_groups: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_groups < 1 or num_features % num_groups:
            raise ShapeError(
                f"group norm needs the group count to divide the channels: "
                f"{num_features} channels cannot be split into {num_groups} groups "
                f"(divisors of {num_features}: {_divisors(num_features)})"
            )
        self.num_features = num_features
        self.num_groups = num_groups
        self.eps = eps

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        return group_normalize(x, self.num_groups, scale, shift, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_groups={self.num_groups}, eps={self.eps}"


@register_stats("layer", "layer", "LayerNorm statistics over (C, H, W) (= group:1)", ("eps",))
def _layer_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return GroupStats(c, 1, **o)


@register_stats("group", "group:G", "GroupNorm statistics over (C/G, H, W)", ("eps",), max_args=1)
def _group_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return GroupStats(c, one_int(spec, args, "the group count G"), **o)


register_affine_layer("layer", True, "LayerNorm over (C, H, W) with per-channel affine (= group:1)")
register_affine_layer("group", True, "GroupNorm (torch.nn.GroupNorm compatible)")


class InstanceStats(_RunningStats):
    """Instance statistics over (H, W) per sample and channel (``F.instance_norm``).

    Computed with the group-norm kernel (the same numbers, ~4× faster on CPU).
    ``track_running_stats=True`` keeps torch's running buffers (EMA of the batch
    average of instance means and unbiased variances) and uses them in eval;
    with ``momentum=None`` they hold the cumulative average (torch never
    updates them in that case). ``unbiased=True`` divides by H·W − 1, the
    convention of the popular PyTorch AdaIN port. A single spatial element
    normalizes to x̂ = 0 (torch raises instead).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        track_running_stats: bool = False,
        unbiased: bool = False,
    ) -> None:
        super().__init__(num_features, eps, momentum, track_running_stats)
        self.unbiased = unbiased

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        if self.track_running_stats and not self.training:
            return self._normalize_by_running(x, scale, shift)
        if self.track_running_stats:
            factor = self._next_factor()
            var, mean = torch.var_mean(x.detach(), dim=(2, 3), correction=1)
            self._update(mean.mean(0), var.mean(0), factor)
        m = x.shape[2] * x.shape[3]
        if self.unbiased and m > 1:
            # (x−μ)/sqrt(v·m/(m−1) + ε) = c·(x−μ)/sqrt(v + ε·c²) with c = sqrt((m−1)/m)
            c2 = (m - 1) / m
            c = math.sqrt(c2)
            scale = x.new_full((self.num_features,), c) if scale is None else scale * c
            return group_normalize(x, self.num_features, scale, shift, self.eps * c2)
        return group_normalize(x, self.num_features, scale, shift, self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", unbiased={self.unbiased}"


@register_stats("instance", "instance", "InstanceNorm statistics over (H, W)", (*RUN_OPTIONS, "unbiased"))
def _instance_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return InstanceStats(c, **o)


register_affine_layer("instance", False, "InstanceNorm (affine off by default, as torch)")


class PositionStats(nn.Module):
    """Positional statistics over C at each (n, h, w) — PONO, LN over channels per pixel.

    Biased variance by default (≡ ``LayerNorm`` over C per pixel); ``unbiased=True``
    is the official PONO code's convention. With one channel x̂ = 0, never NaN.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, unbiased: bool = False) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.unbiased = unbiased

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std over channels: x (N, C, H, W) -> two (N, 1, H, W) tensors."""
        correction = 1 if self.unbiased and x.shape[1] > 1 else 0
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=correction)
        return mean, torch.sqrt(var + self.eps)

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        mean, std = self.moments(x)
        return modulate((x - mean) / std, scale, shift)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, unbiased={self.unbiased}"


@register_stats("pono", "pono", "positional statistics over C per pixel", ("eps", "unbiased"))
def _pono_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return PositionStats(c, **o)


class RMSStats(nn.Module):
    """Root mean square over C at each pixel, no centering (RMSNorm for conv features)."""

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x / sqrt(mean_C x² + ε) · scale + shift."""
        inv = torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)
        return modulate(x * inv, scale, shift)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


@register_stats("rms", "rms", "root mean square over C per pixel (no centering)", ("eps",))
def _rms_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return RMSStats(c, **o)


register_affine_layer("rms", True, "RMSNorm over C per pixel, per-channel gain", bias=None)


class FRNStats(nn.Module):
    """Filter response normalization: x / sqrt(ν² + |ε|), ν² = mean over (H, W) of x².

    ε defaults to the paper's 1e-6 and may be learned (``learnable_eps=True``),
    which the paper reports as crucial for 1×1 maps (else FRN ≈ sign(x)).
    """

    def __init__(self, num_features: int, eps: float = 1e-6, learnable_eps: bool = False) -> None:
        super().__init__()
        self.num_features = num_features
        eps_t = torch.full((num_features,), float(eps))
        if learnable_eps:
            self.eps = nn.Parameter(eps_t)
        else:
            self.register_buffer("eps", eps_t, persistent=False)

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        nu2 = x.square().mean(dim=(2, 3))
        inv = torch.rsqrt(nu2 + self.eps.abs())  # (N, C)
        return _apply_moments(x, torch.zeros_like(inv), inv, scale, shift)


@register_stats("frn", "frn", "filter response: second moment over (H, W)", ("eps", "learnable_eps"))
def _frn_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return FRNStats(c, **o)


class SwitchableStats(_RunningStats):
    """Switchable normalization: a learned softmax mixture of IN, LN and BN moments.

    ``μ = Σ softmax(mean_weight)_k μ_k`` and ``σ² = Σ softmax(var_weight)_k σ²_k``
    over k ∈ (IN, LN, BN), all biased, so a one-hot mixture equals
    ``instance``/``layer``/``batch`` exactly. The BN part keeps torch's running
    buffers and momentum convention (the official code uses a Keras-style 0.9
    and starts running_var at 0); eval uses them for the BN term.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        using_bn: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, using_bn)
        self.using_bn = using_bn
        k = 3 if using_bn else 2
        self.mean_weight = nn.Parameter(torch.ones(k))
        self.var_weight = nn.Parameter(torch.ones(k))

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        n, _, h, w = x.shape
        var_in, mean_in = torch.var_mean(x, dim=(2, 3), correction=0)  # (N, C)
        second = var_in + mean_in.square()
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = second.mean(1, keepdim=True) - mean_ln.square()
        means, variances = [mean_in, mean_ln], [var_in, var_ln]
        if self.using_bn:
            if self.training:
                mean_bn = mean_in.mean(0, keepdim=True)
                var_bn = second.mean(0, keepdim=True) - mean_bn.square()
                count = n * h * w
                if count < 2:
                    raise ShapeError(
                        "switchable norm needs more than one value per channel in training "
                        f"(its BN term); got input of shape {tuple(x.shape)}"
                    )
                factor = self._next_factor()
                self._update(mean_bn[0].detach(), var_bn[0].detach() * count / (count - 1), factor)
            else:
                mean_bn = self.running_mean.unsqueeze(0)
                var_bn = self.running_var.unsqueeze(0)
            means.append(mean_bn)
            variances.append(var_bn)
        wm = torch.softmax(self.mean_weight, 0)
        wv = torch.softmax(self.var_weight, 0)
        mean = sum(wk * mk for wk, mk in zip(wm, means, strict=True))
        var = sum(wk * vk for wk, vk in zip(wv, variances, strict=True))
        return _apply_moments(x, mean, torch.rsqrt(var + self.eps), scale, shift)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", using_bn={self.using_bn}"


@register_stats(
    "switchable", "switchable", "learned mixture of IN, LN and BN statistics", ("eps", "momentum", "using_bn")
)
def _switch_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return SwitchableStats(c, **o)


register_affine_layer("switchable", True, "Switchable Normalization")


class BatchRenormStats(_RunningStats):
    """Batch renormalization: BN statistics corrected toward the running ones by r, d.

    ``x̂ = (x − μ_B)/σ_B · r + d`` with ``r = clip(σ_B/σ, 1/r_max, r_max)`` and
    ``d = clip((μ_B − μ)/σ, −d_max, d_max)``, both stop-gradient, σ =
    sqrt(running_var + ε). For ``warmup_steps`` batches r_max = 1, d_max = 0
    (plain BN), then the limits ramp linearly to their final values over
    ``ramp_steps``. Running buffers follow BN's rules (unbiased var), so eval
    and ``r_max=1, d_max=0`` are exactly ``batch``.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 0,
        ramp_steps: int = 0,
    ) -> None:
        super().__init__(num_features, eps, momentum, True)
        if r_max < 1 or d_max < 0:
            raise ShapeError(f"batch renorm needs r_max >= 1 and d_max >= 0; got {r_max}, {d_max}")
        self.r_max, self.d_max = r_max, d_max
        self.warmup_steps, self.ramp_steps = warmup_steps, ramp_steps

    def limits(self) -> tuple[float, float]:
        """The (r_max, d_max) in force for the next training batch."""
        t = int(self.num_batches_tracked)
        if t < self.warmup_steps:
            return 1.0, 0.0
        frac = 1.0 if self.ramp_steps <= 0 else min(1.0, (t - self.warmup_steps) / self.ramp_steps)
        return 1.0 + frac * (self.r_max - 1.0), frac * self.d_max

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) -> x̂ · scale + shift."""
        if not self.training:
            return self._normalize_by_running(x, scale, shift)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if count < 2:
            raise ShapeError(
                f"batch renorm needs more than one value per channel in training; got {tuple(x.shape)}"
            )
        r_max, d_max = self.limits()
        var_b, mean_b = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        std_b = torch.sqrt(var_b + self.eps)
        with torch.no_grad():
            std_run = torch.sqrt(self.running_var + self.eps)
            r = (std_b / std_run).clamp(1.0 / r_max, r_max)
            d = ((mean_b - self.running_mean) / std_run).clamp(-d_max, d_max)
        factor = self._next_factor()
        self._update(mean_b.detach(), var_b.detach() * count / (count - 1), factor)
        inv = r / std_b
        return _apply_moments(x, mean_b - d / inv, inv, scale, shift)

    def extra_repr(self) -> str:
        return super().extra_repr() + (
            f", r_max={self.r_max}, d_max={self.d_max}, "
            f"warmup_steps={self.warmup_steps}, ramp_steps={self.ramp_steps}"
        )


@register_stats(
    "batch_renorm", "batch_renorm", "Batch Renormalization (r, d corrections)",
    ("eps", "momentum", "r_max", "d_max", "warmup_steps", "ramp_steps"),
)
def _renorm_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return BatchRenormStats(c, **o)


register_affine_layer("batch_renorm", True, "Batch Renormalization")


def _apply_moments(
    x: Tensor, mean: Tensor, inv_std: Tensor, scale: Tensor | None, shift: Tensor | None
) -> Tensor:
    """``(x − mean)·inv_std·scale + shift`` as one pass; mean, inv_std (C,) or (N, C)."""
    if is_per_pixel(scale) or is_per_pixel(shift):
        a, b = inv_std, -mean * inv_std
        return modulate(modulate(x, a, b), scale, shift)
    a = inv_std if scale is None else inv_std * scale
    b = -mean * a if shift is None else shift - mean * a
    return modulate(x, a, b)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]
