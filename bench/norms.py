"""Benchmark every norm spec against torch's equivalent (or a straightforward formulation).

For each spec: forward and forward+backward time of our layer, of its baseline
(built from torch ops with the same parameter values, checked to give the same
output and gradients before timing) and of one copy of the input (the
bandwidth floor), all measured interleaved in the same run, medians of
repeats; plus the activation-memory ratio of forward+backward. On CPU both
glibc allocator modes are measured (the tuned one in a subprocess, because
``mallopt`` is process-wide)::

    .venv/bin/python bench/norms.py                                   # full size, both allocators
    .venv/bin/python bench/norms.py --shape 2,16,32,32 --repeats 3    # quick check
    .venv/bin/python bench/norms.py --specs instance,cin,adain --markdown bench/results.md
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_SPECS = (
    "batch", "sync_batch", "batch_renorm", "cross_iter_batch:1", "instance", "layer", "group:32",
    "lrn:5", "ibn:0.5", "switchable", "frn", "pono", "rms", "evo_b0", "evo_s0:32", "cin", "cbn",
    "adain", "film", "spade:instance:3x3", "spade:batch:3x3", "clade", "none",
)
RTOL = ATOL = 1e-4  # outputs; gradients use ATOL × max|reference gradient| (sums over N·H·W terms)
TORCH_TARGET = 1.05  # batch, group, layer, lrn: within 1.05× of torch's own
FAST_TARGET = 0.6  # instance, cin, adain forward: ≤ 0.6× of F.instance_norm + affine
ANY_TARGET = 2.0  # every layer, forward and forward+backward: ≤ 2× its reference
MODE_NOTES = {
    "default": "glibc defaults (every block > 32 MiB is a fresh mmap, page-faulted on first touch)",
    "tuned": "stylenorm.runtime.tune_cpu_allocator() (glibc keeps and reuses freed big blocks)",
}


class Skip(Exception):
    """A spec that cannot be benchmarked here; the message says why."""


@dataclass
class Case:
    """One table row: our layer, its baseline with the same parameter values, and their inputs."""

    label: str
    baseline: str
    ours: Callable[[], Tensor]
    base: Callable[[], Tensor]
    x: Tensor
    leaves: list[Tensor]  # inputs that receive gradients (x, and a float cond where it needs one)
    pairs: list[tuple[str, Tensor, Tensor]]  # (name, our parameter, the baseline's copy of it)
    alive: list[Tensor]  # inputs, parameters and buffers: not counted as activation memory
    target: str = "any"  # "fast" (≤ 0.6× fwd), "torch" (≤ 1.05×) or "any" (≤ 2×)
    grads: list[Tensor] = field(default_factory=list)  # every tensor whose .grad is reset


# ----------------------------------------------------------------------------- helpers for cases


def _randomize(module: nn.Module, gen: torch.Generator) -> None:
    """Move every vector/table/linear parameter off its init (ones/zeros hide swapped terms)."""
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() <= 2:
                p.add_(0.2 * torch.randn(p.shape, generator=gen).to(p.device, p.dtype))


def _clone_state(module: nn.Module) -> dict[str, Tensor]:
    """The flat state dict as independent tensors; parameters become leaves that require grad."""
    out = {}
    for k, v in module.state_dict(keep_vars=True).items():
        t = v.detach().clone()
        out[k] = t.requires_grad_(True) if isinstance(v, nn.Parameter) else t
    return out


def _load_common(base: nn.Module, ours: nn.Module) -> dict[str, Tensor]:
    """Copy our values into a torch module's same-named entries; return its flat state (keep_vars)."""
    theirs = base.state_dict()
    mine = {k: v for k, v in ours.state_dict().items() if k in theirs}
    base.load_state_dict(mine, strict=False)
    return base.state_dict(keep_vars=True)


def _pairs(ours: nn.Module, base_state: dict[str, Tensor]) -> list[tuple[str, Tensor, Tensor]]:
    """(name, ours, baseline) for every parameter of ours that the baseline has too."""
    return [
        (k, v, base_state[k]) for k, v in ours.state_dict(keep_vars=True).items()
        if isinstance(v, nn.Parameter) and k in base_state
    ]


def _col(t: Tensor) -> Tensor:
    """(C,) or (N, C) as a tensor that broadcasts over (N, C, H, W)."""
    return t.view(1, -1, 1, 1) if t.dim() == 1 else t[:, :, None, None]


def _finish(
    label: str, baseline: str, ours_mod: nn.Module, ours: Callable[[], Tensor],
    base: Callable[[], Tensor], x: Tensor, base_state: dict[str, Tensor],
    extra_leaves: tuple[Tensor, ...] = (), extra_alive: tuple[Tensor, ...] = (),
    base_mod: nn.Module | None = None, target: str = "any",
) -> Case:
    """Assemble a Case; puts both modules in train mode and collects what must be reset or excluded."""
    ours_mod.train()
    if base_mod is not None:
        base_mod.train()
    x.requires_grad_(True)
    leaves = [x, *extra_leaves]
    ours_state = list(ours_mod.state_dict(keep_vars=True).values())
    base_vals = list(base_state.values())
    grads = leaves + [t for t in ours_state + base_vals if t.requires_grad]
    return Case(
        label=label, baseline=baseline, ours=ours, base=base, x=x, leaves=leaves,
        pairs=_pairs(ours_mod, base_state), alive=leaves + list(extra_alive) + ours_state + base_vals,
        target=target, grads=grads,
    )


@dataclass
class Ctx:
    """What every case builder needs: the input shape, device and a seeded generator."""

    shape: tuple[int, int, int, int]
    device: torch.device
    gen: torch.Generator

    def randn(self, *shape: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
        """Seeded normal samples on the device."""
        return (torch.randn(shape, generator=self.gen) * scale + shift).to(self.device)

    def input(self) -> Tensor:
        """x: (N, C, H, W), mean 1 and std 2 (so batch renorm's r, d corrections are not trivial)."""
        return self.randn(*self.shape, scale=2.0, shift=1.0)

    def build(self, spec: str, **options: Any) -> nn.Module:
        """make_norm on the device with randomized parameters; ImportError means a missing module."""
        from stylenorm.norm import make_norm

        try:
            mod = make_norm(spec, self.shape[1], **options)
        except ImportError as e:
            raise Skip(f"skipped (module missing: {e})") from None
        except ValueError as e:
            raise Skip(f"skipped (cannot build: {e})") from None
        mod = mod.to(self.device)
        _randomize(mod, self.gen)
        return mod

    def labels(self, label_nc: int) -> Tensor:
        """A one-hot label map (N, label_nc, H/2, W/2), float."""
        n, _c, h, w = self.shape
        idx = torch.randint(label_nc, (n, max(1, h // 2), max(1, w // 2)), generator=self.gen)
        return F.one_hot(idx, label_nc).permute(0, 3, 1, 2).float().contiguous().to(self.device)

    def indices(self, k: int) -> Tensor:
        """Style or class indices (N,)."""
        return torch.randint(k, (self.shape[0],), generator=self.gen).to(self.device)


# ----------------------------------------------------------------------------- the cases


def _batch_like(ctx: Ctx, spec: str) -> list[Case]:
    """batch, sync_batch (no process group), cross_iter_batch:1 -> nn.BatchNorm2d."""
    ours = ctx.build(spec)
    bn = nn.BatchNorm2d(ctx.shape[1], eps=ours.eps, momentum=ours.momentum).to(ctx.device)
    state = _load_common(bn, ours)
    x = ctx.input()
    target = "torch" if spec == "batch" else "any"
    return [_finish(spec, "nn.BatchNorm2d", ours, lambda: ours(x), lambda: bn(x), x, state,
                    base_mod=bn, target=target)]


def _instance(ctx: Ctx, spec: str) -> list[Case]:
    """instance (affine) -> F.instance_norm with weight and bias."""
    ours = ctx.build(spec, affine=True)
    p = _clone_state(ours)
    x = ctx.input()
    eps = ours.eps
    return [_finish(
        spec + " (affine)", "F.instance_norm(w, b)", ours, lambda: ours(x),
        lambda: F.instance_norm(x, weight=p["weight"], bias=p["bias"], eps=eps), x, p, target="fast",
    )]


def _layer(ctx: Ctx, spec: str) -> list[Case]:
    """layer -> nn.GroupNorm(1, C); and again -> F.layer_norm over (C, H, W) with expanded affine."""
    _n, c, h, w = ctx.shape
    ours = ctx.build(spec)
    gn = nn.GroupNorm(1, c, eps=ours.eps).to(ctx.device)
    state = _load_common(gn, ours)
    x = ctx.input()
    first = _finish(spec, "nn.GroupNorm(1, C)", ours, lambda: ours(x), lambda: gn(x), x, state,
                    base_mod=gn, target="torch")
    ours2 = ctx.build(spec)
    p = _clone_state(ours2)
    x2 = ctx.input()
    eps = ours2.eps

    def base() -> Tensor:
        """F.layer_norm over (C, H, W) with the per-channel affine expanded per element."""
        wt = p["weight"].view(c, 1, 1).expand(c, h, w)
        bs = p["bias"].view(c, 1, 1).expand(c, h, w)
        return F.layer_norm(x2, (c, h, w), wt, bs, eps)

    second = _finish(spec + " (vs LN)", "F.layer_norm(C,H,W)", ours2, lambda: ours2(x2), base, x2, p)
    return [first, second]


def _group(ctx: Ctx, spec: str) -> list[Case]:
    """group:G -> nn.GroupNorm(G, C)."""
    ours = ctx.build(spec)
    gn = nn.GroupNorm(ours.num_groups, ctx.shape[1], eps=ours.eps).to(ctx.device)
    state = _load_common(gn, ours)
    x = ctx.input()
    return [_finish(spec, f"nn.GroupNorm({ours.num_groups}, C)", ours, lambda: ours(x), lambda: gn(x),
                    x, state, base_mod=gn, target="torch")]


def _lrn(ctx: Ctx, spec: str) -> list[Case]:
    """lrn:n -> nn.LocalResponseNorm(n)."""
    ours = ctx.build(spec)
    ref = nn.LocalResponseNorm(ours.size, ours.alpha, ours.beta, ours.k)
    x = ctx.input()
    return [_finish(spec, f"nn.LocalResponseNorm({ours.size})", ours, lambda: ours(x), lambda: ref(x),
                    x, {}, target="torch")]


def _ibn(ctx: Ctx, spec: str) -> list[Case]:
    """ibn:r -> cat(F.instance_norm with affine, F.batch_norm) on the two channel parts."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    half, rest = ours.half, ctx.shape[1] - ours.half
    eps_in, eps_bn, mom = ours.IN.eps, ours.BN.eps, ours.BN.momentum

    def base() -> Tensor:
        """IBN-Net's forward: split, IN (affine) | BN, concatenate."""
        a, b = torch.split(x, [half, rest], dim=1)
        ya = F.instance_norm(a, weight=p["IN.weight"], bias=p["IN.bias"], eps=eps_in)
        yb = F.batch_norm(b, p["BN.running_mean"], p["BN.running_var"], p["BN.weight"], p["BN.bias"],
                          True, mom, eps_bn)
        return torch.cat([ya, yb], dim=1)

    return [_finish(spec, "cat(F.instance_norm, F.batch_norm)", ours, lambda: ours(x), base, x, p)]


def _update_running(p: dict[str, Tensor], mean: Tensor, var: Tensor, count: int, momentum: float) -> None:
    """torch's BN rule: running mean/var lerp toward the batch mean and unbiased variance."""
    with torch.no_grad():
        p["running_mean"].lerp_(mean.detach(), momentum)
        p["running_var"].lerp_(var.detach() * count / (count - 1), momentum)
        p["num_batches_tracked"].add_(1)


def _switchable(ctx: Ctx, spec: str) -> list[Case]:
    """switchable -> the official SwitchNorm2d forward (biased IN variance, as our convention)."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    n, c, h, w = ctx.shape
    eps, mom = ours.eps, ours.momentum

    def base() -> Tensor:
        """Moments from var_mean over H·W; LN and BN moments derived from them; softmax mixture."""
        xf = x.view(n, c, -1)
        var_in, mean_in = torch.var_mean(xf, dim=-1, keepdim=True, correction=0)
        temp = var_in + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = temp.mean(1, keepdim=True) - mean_ln**2
        mean_bn = mean_in.mean(0, keepdim=True)
        var_bn = temp.mean(0, keepdim=True) - mean_bn**2
        _update_running(p, mean_bn.view(c), var_bn.view(c), n * h * w, mom)
        wm = torch.softmax(p["mean_weight"], 0)
        wv = torch.softmax(p["var_weight"], 0)
        mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn
        var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn
        xn = ((xf - mean) / (var + eps).sqrt()).view(n, c, h, w)
        return xn * _col(p["weight"]) + _col(p["bias"])

    return [_finish(spec, "SwitchNorm2d formula", ours, lambda: ours(x), base, x, p)]


def _batch_renorm(ctx: Ctx, spec: str) -> list[Case]:
    """batch_renorm -> the paper's formula: (x − μ_B)/σ_B · r + d, r and d stop-gradient."""
    ours = ctx.build(spec)
    if ours.warmup_steps or ours.ramp_steps:
        raise Skip("skipped (baseline assumes no warm-up schedule)")
    p = _clone_state(ours)
    x = ctx.input()
    n, _c, h, w = ctx.shape
    eps, mom, r_max, d_max = ours.eps, ours.momentum, ours.r_max, ours.d_max

    def base() -> Tensor:
        """Batch renormalization, then the affine, then torch's running-stat update."""
        var_b, mean_b = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        std_b = torch.sqrt(var_b + eps)
        with torch.no_grad():
            std_run = torch.sqrt(p["running_var"] + eps)
            r = (std_b / std_run).clamp(1.0 / r_max, r_max)
            d = ((mean_b - p["running_mean"]) / std_run).clamp(-d_max, d_max)
        _update_running(p, mean_b, var_b, n * h * w, mom)
        xn = (x - _col(mean_b)) / _col(std_b) * _col(r) + _col(d)
        return xn * _col(p["weight"]) + _col(p["bias"])

    return [_finish(spec, "Batch Renorm formula", ours, lambda: ours(x), base, x, p)]


def _frn(ctx: Ctx, spec: str) -> list[Case]:
    """frn -> max(γ·x/sqrt(mean_HW x² + ε) + β, τ)."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    eps = float(ours.stats.eps.abs()[0])

    def base() -> Tensor:
        """FRN + TLU as in the paper's pseudocode."""
        nu2 = x.pow(2).mean(dim=(2, 3), keepdim=True)
        y = x * torch.rsqrt(nu2 + eps) * _col(p["weight"]) + _col(p["bias"])
        return torch.max(y, _col(p["tau"]))

    return [_finish(spec, "FRN+TLU formula", ours, lambda: ours(x), base, x, p)]


def _pono(ctx: Ctx, spec: str) -> list[Case]:
    """pono -> (x − mean_C) / sqrt(var_C + ε), biased (our default)."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    eps = ours.eps
    return [_finish(
        spec, "(x-mean_C)/sqrt(var_C+eps)", ours, lambda: ours(x),
        lambda: (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + eps),
        x, p,
    )]


def _rms(ctx: Ctx, spec: str) -> list[Case]:
    """rms -> x · rsqrt(mean_C x² + ε) · w."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    eps = ours.eps
    return [_finish(
        spec, "x*rsqrt(mean_C(x^2)+eps)*w", ours, lambda: ours(x),
        lambda: x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps) * _col(p["weight"]), x, p,
    )]


def _evo_b0(ctx: Ctx, spec: str) -> list[Case]:
    """evo_b0 -> x / max(sqrt(σ²_B + ε), v·x + sqrt(σ²_IN + ε)) · γ + β (reference B10)."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    n, _c, h, w = ctx.shape
    eps, mom = ours.eps, ours.momentum

    def base() -> Tensor:
        """EvoNorm-B0 in training: biased batch variance, running-var update, instance variance."""
        var_b = x.var(dim=(0, 2, 3), unbiased=False)
        _update_running(p, x.detach().mean(dim=(0, 2, 3)), var_b, n * h * w, mom)
        var_in = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        den = torch.max(_col(var_b + eps).sqrt(), _col(p["v"]) * x + (var_in + eps).sqrt())
        return x / den * _col(p["weight"]) + _col(p["bias"])

    return [_finish(spec, "EvoNorm-B0 formula", ours, lambda: ours(x), base, x, p)]


def _evo_s0(ctx: Ctx, spec: str) -> list[Case]:
    """evo_s0:G -> x · sigmoid(v·x) / group_std(x) · γ + β (timm's formulation)."""
    ours = ctx.build(spec)
    p = _clone_state(ours)
    x = ctx.input()
    n, c, h, w = ctx.shape
    g, eps = ours.groups, ours.eps

    def base() -> Tensor:
        """timm group_std: biased variance over (C/G, H, W), expanded back to x's shape."""
        xg = x.reshape(n, g, c // g, h, w)
        std = xg.var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(eps).sqrt()
        std = std.expand(xg.shape).reshape(n, c, h, w)
        return x * torch.sigmoid(_col(p["v"]) * x) / std * _col(p["weight"]) + _col(p["bias"])

    return [_finish(spec, f"EvoNorm-S0 formula (G={g})", ours, lambda: ours(x), base, x, p)]


def _cin(ctx: Ctx, spec: str) -> list[Case]:
    """cin (4 styles, index cond) -> F.instance_norm · γ[idx] + β[idx]."""
    if spec != "cin":
        raise Skip("skipped (baseline only for the default instance statistic)")
    ours = ctx.build(spec, num_styles=4)
    p = _clone_state(ours)
    x, idx = ctx.input(), ctx.indices(4)
    eps = ours.eps
    return [_finish(
        spec, "F.instance_norm*g[s]+b[s]", ours, lambda: ours(x, idx),
        lambda: F.instance_norm(x, eps=eps) * _col(p["weight"][idx]) + _col(p["bias"][idx]),
        x, p, extra_alive=(idx,), target="fast",
    )]


def _cbn(ctx: Ctx, spec: str) -> list[Case]:
    """cbn (4 classes, index cond) -> F.batch_norm (train, no affine) · γ[y] + β[y]."""
    if spec != "cbn":
        raise Skip("skipped (baseline only for the default batch statistic)")
    ours = ctx.build(spec, num_classes=4)
    p = _clone_state(ours)
    x, idx = ctx.input(), ctx.indices(4)
    eps, mom = ours.eps, ours.momentum

    def base() -> Tensor:
        """Parameter-free BN with running stats, then the per-sample class affine."""
        y = F.batch_norm(x, p["running_mean"], p["running_var"], None, None, True, mom, eps)
        return y * _col(p["weight"][idx]) + _col(p["bias"][idx])

    return [_finish(spec, "F.batch_norm*g[y]+b[y]", ours, lambda: ours(x, idx), base, x, p,
                    extra_alive=(idx,))]


def _adain(ctx: Ctx, spec: str) -> list[Case]:
    """adain twice: cond = precomputed (mean, std) and cond = style features (official convention)."""
    from stylenorm.norm import style_moments

    cases = []
    ours = ctx.build(spec)
    x = ctx.input()
    style = ctx.randn(*ctx.shape, scale=3.0, shift=-0.5)
    mean, std = style_moments(style)  # official AdaIN: biased style std, no eps
    eps = ours.eps
    cases.append(_finish(
        spec + " (moments)", "F.instance_norm*std+mean", ours, lambda: ours(x, (mean, std)),
        lambda: F.instance_norm(x, eps=eps) * _col(std) + _col(mean), x, {},
        extra_alive=(mean, std), target="fast",
    ))
    ours2 = ctx.build(spec)
    x2 = ctx.input()
    s2 = ctx.randn(*ctx.shape, scale=3.0, shift=-0.5).requires_grad_(True)

    def base() -> Tensor:
        """Style moments by var_mean (biased, no eps), then IN of the content and the affine."""
        var_s, mean_s = torch.var_mean(s2, dim=(2, 3), correction=0)
        return F.instance_norm(x2, eps=eps) * _col(var_s.sqrt()) + _col(mean_s)

    cases.append(_finish(spec + " (features)", "var_mean(s)+F.instance_norm", ours2,
                         lambda: ours2(x2, s2), base, x2, {}, extra_leaves=(s2,)))
    return cases


def _film(ctx: Ctx, spec: str) -> list[Case]:
    """film (cond_dim 16) -> x · (w + Δγ) + (b + Δβ), Δ = the same linear map of the vector."""
    ours = ctx.build(spec, cond_dim=16)
    p = _clone_state(ours)
    x = ctx.input()
    e = ctx.randn(ctx.shape[0], 16).requires_grad_(True)

    def base() -> Tensor:
        """Linear map of the condition, split into Δγ, Δβ, then the per-sample affine."""
        dg, db = F.linear(e, p["delta.0.weight"], p["delta.0.bias"]).chunk(2, dim=1)
        return x * _col(p["weight"] + dg) + _col(p["bias"] + db)

    return [_finish(spec, "x*(w+dg)+(b+db)", ours, lambda: ours(x, e), base, x, p, extra_leaves=(e,))]


def _pfn(kind: str, p: dict[str, Tensor], eps: float, momentum: float | None) -> Callable[[Tensor], Tensor]:
    """The parameter-free norm of SPADE/CLADE as a torch call: instance or batch (train)."""
    if kind == "instance":
        return lambda t: F.instance_norm(t, eps=eps)
    if kind == "batch":
        return lambda t: F.batch_norm(t, p["running_mean"], p["running_var"], None, None, True,
                                      momentum, eps)
    raise Skip(f"skipped (no baseline for the statistic {kind!r})")


def _spade(ctx: Ctx, spec: str) -> list[Case]:
    """spade:<instance|batch>:kxk (16 labels, hidden 128) -> interpolate + convs + PFN·(1+γ)+β."""
    parts = spec.split(":")
    kind = parts[1] if len(parts) > 2 else "instance"
    k = int(parts[-1].split("x")[0]) if "x" in parts[-1] else 3
    ours = ctx.build(spec, label_nc=16, hidden=128)
    p = _clone_state(ours)
    x, seg = ctx.input(), ctx.labels(16)
    pfn = _pfn(kind, p, ours.eps, getattr(ours, "momentum", None))
    size = ctx.shape[2:]

    def base() -> Tensor:
        """NVlabs SPADE.forward with explicit ops."""
        m = F.interpolate(seg, size=size, mode="nearest")
        actv = F.relu(F.conv2d(m, p["mlp_shared.0.weight"], p["mlp_shared.0.bias"], padding=k // 2))
        gamma = F.conv2d(actv, p["mlp_gamma.weight"], p["mlp_gamma.bias"], padding=k // 2)
        beta = F.conv2d(actv, p["mlp_beta.weight"], p["mlp_beta.bias"], padding=k // 2)
        return pfn(x) * (1 + gamma) + beta

    return [_finish(spec, f"interp+convs+{kind}·(1+g)+b", ours, lambda: ours(x, seg), base, x, p,
                    extra_alive=(seg,))]


def _clade(ctx: Ctx, spec: str) -> list[Case]:
    """clade[:<instance|batch>] (16 labels) -> PFN · γ[label] + β[label] by one-hot einsum."""
    parts = spec.split(":")
    kind = parts[1] if len(parts) > 1 else "instance"
    ours = ctx.build(spec, label_nc=16)
    p = _clone_state(ours)
    x, seg = ctx.input(), ctx.labels(16)
    pfn = _pfn(kind, p, ours.eps, getattr(ours, "momentum", None))
    size = ctx.shape[2:]

    def base() -> Tensor:
        """Nearest-resized one-hot map contracted with the class tables."""
        m = F.interpolate(seg, size=size, mode="nearest")
        gamma = torch.einsum("nlhw,lc->nchw", m, p["weight"])
        beta = torch.einsum("nlhw,lc->nchw", m, p["bias"])
        return pfn(x) * gamma + beta

    return [_finish(spec, f"{kind}·einsum(onehot,g)+b", ours, lambda: ours(x, seg), base, x, p,
                    extra_alive=(seg,))]


def _none(ctx: Ctx, spec: str) -> list[Case]:
    """none: the identity; nothing to measure."""
    raise Skip("skipped (identity: nothing to measure)")


BUILDERS: dict[str, Callable[[Ctx, str], list[Case]]] = {
    "batch": _batch_like, "sync_batch": _batch_like, "cross_iter_batch": _batch_like,
    "instance": _instance, "layer": _layer, "group": _group, "lrn": _lrn, "ibn": _ibn,
    "switchable": _switchable, "batch_renorm": _batch_renorm, "frn": _frn, "pono": _pono, "rms": _rms,
    "evo_b0": _evo_b0, "evo_s0": _evo_s0, "cin": _cin, "cbn": _cbn, "adain": _adain, "film": _film,
    "spade": _spade, "clade": _clade, "none": _none,
}


# ----------------------------------------------------------------------------- checking and timing


def _reset_grads(case: Case) -> None:
    """Set every gradient of the case to None (outside the timed region)."""
    for t in case.grads:
        t.grad = None


def _fwd(fn: Callable[[], Tensor]) -> Tensor:
    """Forward only, without autograd."""
    with torch.no_grad():
        return fn()


def _fwd_bwd(fn: Callable[[], Tensor], g: Tensor) -> None:
    """Forward with autograd, then backward of the fixed output gradient."""
    fn().backward(g)


def _grad_state(case: Case, side: int) -> list[tuple[str, Tensor | None]]:
    """The gradients after a backward: inputs, then our (side 1) or the baseline's (side 2) parameters."""
    out = [(f"input{i}", t.grad) for i, t in enumerate(case.leaves)]
    out += [(name, (ours if side == 1 else base).grad) for name, ours, base in case.pairs]
    return out


def _diff(a: Tensor | None, b: Tensor | None, atol: float) -> str | None:
    """None when close, else a short description of the difference."""
    if a is None or b is None:
        other = a if b is None else b
        if other is None or not bool(other.abs().max() > 0):
            return None
        return "gradient missing on one side"
    if a.shape != b.shape:
        return f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    if torch.allclose(a, b, rtol=RTOL, atol=atol):
        return None
    return f"max |diff| {float((a - b).abs().max()):.3g} (max |ref| {float(b.abs().max()):.3g})"


def check(case: Case, g: Tensor) -> tuple[list[str], float]:
    """Compare outputs and gradients of ours and the baseline; return (problems, max output diff)."""
    problems = []
    yo, yb = _fwd(case.ours), _fwd(case.base)
    err = _diff(yo, yb, ATOL)
    if err:
        problems.append(f"output: {err}")
    out_diff = float((yo - yb).abs().max()) if yo.shape == yb.shape else math.inf
    _reset_grads(case)
    _fwd_bwd(case.ours, g)
    ours_grads = [(n, None if t is None else t.clone()) for n, t in _grad_state(case, 1)]
    _reset_grads(case)
    _fwd_bwd(case.base, g)
    for (name, go), (_, gb) in zip(ours_grads, _grad_state(case, 2), strict=True):
        scale = 1.0 if gb is None else max(1.0, float(gb.abs().max()))
        err = _diff(go, gb, ATOL * scale)
        if err:
            problems.append(f"grad {name}: {err}")
    _reset_grads(case)
    return problems, out_diff


def _storage_key(t: Tensor) -> int | None:
    """The data pointer of a tensor's storage, or None where it has none."""
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None


def activation_bytes(case: Case, fn: Callable[[], Tensor], g: Tensor) -> int:
    """Bytes saved for backward plus the output, leaving out inputs, parameters and buffers."""
    alive = {_storage_key(t) for t in case.alive}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        """Record the storage of a tensor autograd keeps for backward."""
        key = _storage_key(t)
        if key and key not in alive:
            saved[key] = t.untyped_storage().nbytes()
        return t

    _reset_grads(case)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn()
    key = _storage_key(y)
    if key and key not in alive:
        saved[key] = y.untyped_storage().nbytes()
    y.backward(g)
    _reset_grads(case)
    return sum(saved.values())


def cuda_peak_bytes(case: Case, fn: Callable[[], Tensor], g: Tensor) -> int:
    """Peak CUDA memory of forward+backward above what was allocated before it."""
    _reset_grads(case)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn().backward(g)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    _reset_grads(case)
    return peak


def _sync(device: torch.device) -> None:
    """Wait for the device (CUDA) to finish queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    items: list[tuple[Callable[[], Any], Callable[[], None] | None]], repeats: int, device: torch.device
) -> list[list[float]]:
    """Warm up each callable twice, then run them round-robin; seconds per call per repeat."""
    def once(fn: Callable[[], Any], prep: Callable[[], None] | None) -> float:
        """One timed call; preparation and freeing the result stay outside the clock."""
        if prep is not None:
            prep()
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        dt = time.perf_counter() - t0
        del out
        return dt

    times: list[list[float]] = [[] for _ in items]
    gc_was_on = gc.isenabled()
    gc.disable()  # as timeit: no cyclic collection inside a timed call
    try:
        for fn, prep in items:
            for _ in range(2):
                once(fn, prep)
        for _ in range(repeats):
            for i, (fn, prep) in enumerate(items):
                times[i].append(once(fn, prep))
    finally:
        if gc_was_on:
            gc.enable()
    return times


def _paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over repeats of a/b, each pair taken in the same round (so slow drift cancels)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def _target(case: Case, fwd: float, fb: float) -> tuple[str, str]:
    """The target text for the row and whether it holds."""
    misses = []
    if case.target == "fast":
        text = f"fwd<={FAST_TARGET}x, <={ANY_TARGET:g}x"
        if fwd > FAST_TARGET:
            misses.append(f"fwd {fwd:.2f}")
        if fb > ANY_TARGET:
            misses.append(f"f+b {fb:.2f}")
    else:
        limit = TORCH_TARGET if case.target == "torch" else ANY_TARGET
        text = f"<={limit:g}x fwd, f+b"
        misses += [f"{name} {r:.2f}" for name, r in (("fwd", fwd), ("f+b", fb)) if r > limit]
    return text, ("yes" if not misses else "NO: " + ", ".join(misses))


def measure(case: Case, repeats: int, device: torch.device, g: Tensor) -> dict[str, Any]:
    """Time one case (interleaved with the baseline and the copy) and measure its memory ratio."""
    x = case.x

    def prep() -> None:
        """Reset gradients before a forward+backward."""
        _reset_grads(case)

    items: list[tuple[Callable[[], Any], Callable[[], None] | None]] = [
        (lambda: _fwd(case.ours), None),
        (lambda: _fwd(case.base), None),
        (lambda: _fwd(x.clone), None),
        (lambda: _fwd_bwd(case.ours, g), prep),
        (lambda: _fwd_bwd(case.base, g), prep),
    ]
    t_of, t_bf, t_copy, t_ob, t_bb = time_interleaved(items, repeats, device)
    mem = cuda_peak_bytes if device.type == "cuda" else activation_bytes
    m_ours, m_base = mem(case, case.ours, g), mem(case, case.base, g)
    fwd_ratio, fb_ratio = _paired_ratio(t_of, t_bf), _paired_ratio(t_ob, t_bb)
    target, met = _target(case, fwd_ratio, fb_ratio)
    return {
        "spec": case.label, "baseline": case.baseline, "status": "ok",
        "fwd_ms": 1e3 * statistics.median(t_of), "fwd_base_ms": 1e3 * statistics.median(t_bf),
        "copy_ms": 1e3 * statistics.median(t_copy),
        "fwd_ratio": fwd_ratio, "fwd_copy": _paired_ratio(t_of, t_copy),
        "fb_ms": 1e3 * statistics.median(t_ob), "fb_base_ms": 1e3 * statistics.median(t_bb),
        "fb_ratio": fb_ratio, "fb_copy": _paired_ratio(t_ob, t_copy),
        "mem_ours": m_ours, "mem_base": m_base, "mem_ratio": m_ours / m_base if m_base else math.nan,
        "target": target, "met": met,
    }


def copy_floor(shape: tuple[int, ...], device: torch.device, repeats: int) -> dict[str, float]:
    """Median times of x.clone() and of out.copy_(x) into a preallocated buffer, and the copy bandwidth."""
    x = torch.randn(shape, device=device)
    out = torch.empty_like(x)
    t_clone, t_copy = time_interleaved([(x.clone, None), (lambda: out.copy_(x), None)],
                                       max(repeats, 5), device)
    copy_s = statistics.median(t_copy)
    return {"clone_ms": 1e3 * statistics.median(t_clone), "copy_ms": 1e3 * copy_s,
            "copy_gbs": 2 * x.numel() * x.element_size() / copy_s / 1e9}


# ----------------------------------------------------------------------------- running and reporting


def _expand_specs(specs: list[str], channels: int, explicit: bool) -> list[str]:
    """The default list adapts group:32 to channel counts 32 does not divide."""
    if explicit or channels % 32 == 0:
        return specs
    g = math.gcd(32, channels)
    return [f"group:{g}" if s == "group:32" else s for s in specs]


def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Check and time every case in this process (whose allocator mode is ``mode``)."""
    device = torch.device(args.device)
    shape = args.shape
    gen = torch.Generator().manual_seed(args.seed)
    ctx = Ctx(shape, device, gen)
    tag = f"[{mode}]"
    floor = copy_floor(shape, device, 1 if args.check_only else args.repeats)
    print(f"{tag} copy floor: x.clone() {floor['clone_ms']:.3f} ms, out.copy_(x) {floor['copy_ms']:.3f} ms "
          f"({floor['copy_gbs']:.1f} GB/s)", flush=True)
    specs = _expand_specs(args.specs, shape[1], args.specs_given)
    rows = []
    for spec in specs:
        name = spec.split(":")[0]
        builder = BUILDERS.get(name)
        try:
            if builder is None:
                raise Skip("skipped (no baseline defined for this spec)")
            cases = builder(ctx, spec)
        except Skip as e:
            print(f"{tag} {spec}: {e}", flush=True)
            rows.append({"spec": spec, "baseline": "-", "status": str(e)})
            continue
        for case in cases:
            g = ctx.randn(*shape)
            try:
                problems, out_diff = check(case, g)
            except Exception as e:  # a layer or baseline that raises is reported, not fatal
                problems, out_diff = [f"raised {type(e).__name__}: {e}"], math.nan
            if problems:
                print(f"{tag} {case.label}: CHECK FAILED vs {case.baseline}: " + "; ".join(problems),
                      flush=True)
                rows.append({"spec": case.label, "baseline": case.baseline,
                             "status": "CHECK FAILED: " + "; ".join(problems)})
                continue
            if args.check_only:
                print(f"{tag} {case.label}: check ok vs {case.baseline} (max |out diff| {out_diff:.2g})",
                      flush=True)
                rows.append({"spec": case.label, "baseline": case.baseline, "status": "check ok"})
                continue
            row = measure(case, args.repeats, device, g)
            row["out_diff"] = out_diff
            print(f"{tag} {case.label}: check ok (max |out diff| {out_diff:.2g}); fwd {row['fwd_ms']:.3f} ms "
                  f"x{row['fwd_ratio']:.2f}, f+b {row['fb_ms']:.3f} ms x{row['fb_ratio']:.2f}", flush=True)
            rows.append(row)
    return {"mode": mode, "floor": floor, "rows": rows}


COLUMNS = (
    ("spec", "spec"), ("baseline", "baseline"), ("fwd ms", "fwd_ms"), ("fwd/base", "fwd_ratio"),
    ("fwd/copy", "fwd_copy"), ("f+b ms", "fb_ms"), ("f+b/base", "fb_ratio"), ("f+b/copy", "fb_copy"),
    ("mem/base", "mem_ratio"), ("target", "target"), ("met?", "met"),
)


def _cell(row: dict[str, Any], key: str) -> str:
    """One formatted table cell."""
    v = row.get(key, "")
    if isinstance(v, float):
        if key.endswith("_ms"):
            return f"{v:.3f}" if v < 10 else f"{v:.1f}"
        return f"{v:.2f}"
    return str(v)


def _table_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows of cells; a skipped or failed spec puts its status in place of the numbers."""
    out = []
    for row in result["rows"]:
        if row["status"] != "ok":
            out.append([row["spec"], row["baseline"], row["status"]] + [""] * (len(COLUMNS) - 3))
        else:
            out.append([_cell(row, key) for _, key in COLUMNS])
    return out


def text_table(result: dict[str, Any]) -> str:
    """An aligned plain-text table (status text of skipped rows overflows the number columns)."""
    head = [h for h, _ in COLUMNS]
    rows = _table_rows(result)
    ok = [r for r in rows if r[3] or r[4]] + [head]
    widths = [max(len(r[i]) for r in ok) for i in range(len(head))]
    widths[0] = max(len(r[0]) for r in [*rows, head])
    widths[1] = max(len(r[1]) for r in [*rows, head])

    def fmt(cells: list[str]) -> str:
        """One line of the table."""
        if not cells[3] and not cells[4]:
            return "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2]])
        return "  ".join(c.ljust(w) if i < 2 or i >= 9 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    lines = [fmt(head), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def markdown_table(result: dict[str, Any]) -> str:
    """The same table as GitHub Markdown."""
    head = [h for h, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for cells in _table_rows(result):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _device_name(device: torch.device) -> str:
    """The GPU name, or the CPU model from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def footnotes(device: torch.device) -> list[str]:
    """What the columns mean."""
    mem = ("peak CUDA memory of forward+backward above the live tensors (torch.cuda.max_memory_allocated)"
           if device.type == "cuda" else
           "activation memory: bytes of the tensors saved for backward (saved_tensors_hooks, one count per "
           "storage) plus the output, leaving out inputs, parameters and buffers that exist anyway; "
           "CPU has no allocator peak counter")
    return [
        "fwd: forward under torch.no_grad() with the layer in train mode (batch statistics); f+b: forward "
        "with autograd and backward of a fixed output gradient, inputs and parameters requiring grad, "
        "gradients reset to None outside the timed region.",
        "ms: median over repeats; x/base and x/copy: median over repeats of the per-round ratio (ours, the "
        "baseline and x.clone() run round-robin in the same run, after 2 warm-up calls each).",
        "copy: x.clone() of the input (allocates its output as the layers do).",
        f"mem/base: {mem}; ours / baseline.",
        "Every row passed a correctness check before timing: outputs allclose(rtol=atol=1e-4); gradients "
        "of the inputs and of every shared parameter allclose(rtol=1e-4, atol=1e-4 x max |reference grad|).",
        f"Targets: instance, cin, adain (moments) forward <= {FAST_TARGET}x of F.instance_norm + the same "
        f"affine; batch, group, layer (vs GroupNorm), lrn <= {TORCH_TARGET}x of torch's own, forward and "
        f"forward+backward; every layer <= {ANY_TARGET:g}x its reference formulation both ways.",
    ]


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    """Print the tables; return the Markdown document."""
    device = torch.device(args.device)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    header = [
        f"command: `{command}`",
        f"torch {torch.__version__}, device {device.type} ({_device_name(device)}), "
        f"{torch.get_num_threads()} threads, shape {tuple(args.shape)} float32, {args.repeats} repeats",
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
    ]
    md = ["# stylenorm norm benchmark", "", *[f"- {h}" for h in header], ""]
    print("\n" + "\n".join(header))
    for res in results:
        fl = res["floor"]
        floor = (f"copy floor: x.clone() {fl['clone_ms']:.3f} ms; out.copy_(x) into a preallocated buffer "
                 f"{fl['copy_ms']:.3f} ms = {fl['copy_gbs']:.1f} GB/s (read + write)")
        note = f" -- {MODE_NOTES[res['mode']]}" if device.type == "cpu" else ""
        title = f"allocator: {res['mode']}{note}"
        print(f"\n== {title}\n{floor}\n")
        print(text_table(res))
        md += [f"## {title}", "", floor, "", markdown_table(res), ""]
    notes = footnotes(device)
    print("\n" + "\n".join(f"* {n}" for n in notes))
    md += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(md)


def _parse_shape(text: str) -> tuple[int, int, int, int]:
    """'N,C,H,W' -> a 4-tuple of positive ints."""
    parts = tuple(int(v) for v in text.split(","))
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--shape needs four positive ints N,C,H,W; got {text!r}")
    return parts  # type: ignore[return-value]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=_parse_shape, default=(8, 64, 128, 128), help="N,C,H,W (8,64,128,128)")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds per case (15)")
    ap.add_argument("--specs", default=None, help="comma-separated specs (default: all)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--allocator", choices=("default", "tuned", "both"), default="both",
                    help="glibc allocator mode(s) on CPU; 'both' runs 'tuned' in a subprocess (both)")
    ap.add_argument("--markdown", default=None, metavar="PATH", help="also write the tables as Markdown")
    ap.add_argument("--seed", type=int, default=0, help="seed of inputs and parameter values (0)")
    ap.add_argument("--check-only", action="store_true",
                    help="only check every case against its baseline (no timing; one allocator mode)")
    ap.add_argument("--results-json", default=None, help=argparse.SUPPRESS)  # subprocess -> parent
    args = ap.parse_args(argv)
    args.specs_given = args.specs is not None
    given = args.specs.split(",") if args.specs else DEFAULT_SPECS
    args.specs = [s.strip() for s in given if s.strip()]
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    return args


def _run_child(args: argparse.Namespace) -> dict[str, Any]:
    """Run the tuned-allocator measurements in a subprocess of this script and read its results."""
    fd, path = tempfile.mkstemp(suffix=".json", prefix="stylenorm-bench-")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--shape", ",".join(map(str, args.shape)),
           "--repeats", str(args.repeats), "--device", args.device,
           "--allocator", "tuned", "--seed", str(args.seed), "--results-json", path]
    if args.specs_given:  # else the child adapts the default list to the shape as the parent did
        cmd += ["--specs", ",".join(args.specs)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    try:
        subprocess.run(cmd, check=True)
        with open(path) as f:
            return json.load(f)
    finally:
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when any correctness check failed."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    mode = "tuned" if args.allocator == "tuned" else "default"
    if mode == "tuned":
        from stylenorm.runtime import tune_cpu_allocator

        if not tune_cpu_allocator():
            print("[tuned] warning: tune_cpu_allocator() did not apply (no glibc?)", flush=True)
    if args.results_json is None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
              f"shape {tuple(args.shape)}, {args.repeats} repeats", flush=True)
    results = [run_mode(args, mode)]
    if args.results_json is not None:
        with open(args.results_json, "w") as f:
            json.dump(results[0], f)
        return 0
    if args.allocator == "both" and not args.check_only:
        if device.type == "cpu":
            results.append(_run_child(args))
        else:
            print("note: the allocator modes concern CPU memory only; one table for", device.type)
    md = report(args, results)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
        print(f"\nwrote {args.markdown}")
    failed = [r["spec"] for res in results for r in res["rows"] if r["status"].startswith("CHECK FAILED")]
    if failed:
        print("\nCHECK FAILED (not timed): " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
