"""Modulations: where the scale g and shift b of ``y = g·x̂ + b`` come from.

Each returns ``(scale, shift)`` of shape (C,), (N, C) or (N, C, H, W) (or
None) for :class:`~stylenorm.norm.base.Normalization` to hand to its statistic.
The spatial ones (SPADE, CLADE) live in :mod:`stylenorm.norm.spade`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm.base import Affine, Modulation, Normalization
from stylenorm.norm.registry import STAT_OPTIONS, inner_stats, make_stats, register_norm, require_option


class ChannelAffine(Modulation):
    """A learned per-channel affine: weight (C,) = 1, bias (C,) = 0 (torch's names)."""

    def __init__(self, num_features: int, affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine and bias else None

    def forward(self, x: Tensor) -> Affine:
        """-> (weight (C,) or None, bias (C,) or None)."""
        return self.weight, self.bias

    def extra_repr(self) -> str:
        return f"{self.num_features}, affine={self.weight is not None}, bias={self.bias is not None}"


class EmbeddingAffine(Modulation):
    """A (γ, β) row per style or class, picked by index or mixed by weights (CIN, class CBN).

    ``cond`` is either integer indices (N,) or float mixing weights (N, K); with
    weights the result is ``Σ_k w_k (γ_k, β_k)`` — a convex combination when
    each row sums to 1. Tables ``weight``, ``bias`` are (K, C), starting at
    γ = 1, β = 0.
    """

    conditional = True

    def __init__(self, num_embeddings: int, num_features: int, what: str = "style") -> None:
        super().__init__()
        if num_embeddings < 1:
            raise ShapeError(f"need at least one {what}; got {num_embeddings}")
        self.num_embeddings = num_embeddings
        self.num_features = num_features
        self.what = what
        self.weight = nn.Parameter(torch.ones(num_embeddings, num_features))
        self.bias = nn.Parameter(torch.zeros(num_embeddings, num_features))

    def forward(self, x: Tensor, cond: Tensor) -> Affine:
        """cond (N,) indices or (N, K) weights -> (scale (N, C), shift (N, C))."""
        k, n = self.num_embeddings, x.shape[0]
        if not isinstance(cond, Tensor):
            raise ShapeError(f"{self.what} condition must be a tensor of indices or weights")
        if cond.dim() == 1 and not cond.is_floating_point():
            if cond.shape[0] != n:
                raise ShapeError(f"got {cond.shape[0]} {self.what} indices for a batch of {n}")
            if not torch.compiler.is_compiling() and cond.numel() and (
                int(cond.min()) < 0 or int(cond.max()) >= k
            ):
                raise ShapeError(
                    f"{self.what} index out of range: got values in "
                    f"[{int(cond.min())}, {int(cond.max())}], valid are 0..{k - 1}"
                )
            return self.weight[cond], self.bias[cond]
        if cond.dim() == 2 and cond.is_floating_point():
            if cond.shape != (n, k):
                raise ShapeError(
                    f"{self.what} mixing weights must be (N, {k}) = ({n}, {k}); "
                    f"got {tuple(cond.shape)}"
                )
            w = cond.to(self.weight.dtype)
            return w @ self.weight, w @ self.bias
        raise ShapeError(
            f"{self.what} condition must be integer indices (N,) or float weights (N, {k}); "
            f"got {cond.dtype} tensor of shape {tuple(cond.shape)}"
        )

    def extra_repr(self) -> str:
        return f"{self.num_embeddings} {self.what}s, {self.num_features}"


@register_norm(
    "cin", "cin[:<stats>]", "Conditional Instance Norm: a (γ, β) row per style, mixable",
    ("num_styles", *STAT_OPTIONS), max_args=8, conditional=True,
)
def _cin(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    k = require_option(spec, o, "num_styles", f"'{spec}', 64, num_styles=8")
    stats = inner_stats(spec, ":".join(args) or "instance", c, o)
    return Normalization(stats, EmbeddingAffine(k, c, "style"), num_features=c)


class VectorAffine(Modulation):
    """γ = weight + Δγ(e), β = bias + Δβ(e) from a condition vector e (CBN of de Vries, FiLM).

    Δ is a linear map of e, or an MLP with one ReLU hidden layer of width
    ``hidden``. Its last layer starts at zero, so the layer starts as a plain
    affine (γ = 1, β = 0) and learns to condition.
    """

    conditional = True

    def __init__(self, cond_dim: int, num_features: int, hidden: int | None = None) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        out = nn.Linear(hidden if hidden else cond_dim, 2 * num_features)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        layers: list[nn.Module] = [nn.Linear(cond_dim, hidden), nn.ReLU()] if hidden else []
        self.delta = nn.Sequential(*layers, out)

    def forward(self, x: Tensor, cond: Tensor) -> Affine:
        """cond (N, cond_dim) -> (scale (N, C), shift (N, C))."""
        n = x.shape[0]
        if not isinstance(cond, Tensor) or cond.dim() != 2 or cond.shape != (n, self.cond_dim):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise ShapeError(f"condition vectors must be (N, cond_dim) = ({n}, {self.cond_dim}); got {got}")
        d_gamma, d_beta = self.delta(cond.to(self.weight.dtype)).chunk(2, dim=1)
        return self.weight + d_gamma, self.bias + d_beta


@register_norm(
    "cbn", "cbn[:<stats>]", "Conditional BatchNorm: per class (num_classes) or from a vector (cond_dim)",
    ("num_classes", "cond_dim", "hidden", *STAT_OPTIONS), max_args=8, conditional=True,
)
def _cbn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    classes, cond_dim, hidden = o.pop("num_classes", None), o.pop("cond_dim", None), o.pop("hidden", None)
    if (classes is None) == (cond_dim is None):
        raise SpecError(
            f"{spec!r} needs exactly one of num_classes=… (a table per class) or "
            f"cond_dim=… (an MLP of a condition vector)"
        )
    if classes is not None and hidden is not None:
        raise SpecError(f"{spec!r}: hidden applies to cond_dim only")
    mod = EmbeddingAffine(classes, c, "class") if classes is not None else VectorAffine(cond_dim, c, hidden)
    stats = inner_stats(spec, ":".join(args) or "batch", c, o)
    return Normalization(stats, mod, num_features=c)


@register_norm(
    "film", "film", "FiLM: γ, β from a condition vector (no normalization)", ("cond_dim", "hidden"),
    conditional=True,
)
def _film(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    cond_dim = require_option(spec, o, "cond_dim", f"'{spec}', 64, cond_dim=128")
    return Normalization(make_stats("none", c), VectorAffine(cond_dim, c, o.get("hidden")), num_features=c)


def style_moments(features: Tensor, eps: float = 0.0, unbiased: bool = False) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over (H, W): features (N, C, H, W) -> two (N, C) tensors.

    ``std = sqrt(var + eps)``; a 1×1 map has variance 0 (never NaN, also when unbiased).
    """
    if features.dim() != 4:
        raise ShapeError(f"style features must be (N, C, H, W); got shape {tuple(features.shape)}")
    m = features.shape[2] * features.shape[3]
    var, mean = torch.var_mean(features, dim=(2, 3), correction=1 if unbiased and m > 1 else 0)
    return mean, torch.sqrt(var + eps)


class StyleStatistics(Modulation):
    """AdaIN's modulation: γ = σ(style), β = μ(style), per sample and channel.

    ``cond`` is the style feature map (N or 1, C, h, w) — any h, w — or
    precomputed moments ``(mean, std)`` each (N or 1, C), e.g. cached from
    :func:`style_moments`. Conventions: ``unbiased=False`` is the official
    AdaIN (style std biased, no ε); ``unbiased=True`` the popular PyTorch port
    (unbiased variance + ε).
    """

    conditional = True

    def __init__(self, num_features: int, eps: float = 1e-5, unbiased: bool = False) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.unbiased = unbiased

    def forward(self, x: Tensor, cond: Tensor | tuple[Tensor, Tensor]) -> Affine:
        """-> (std (N, C), mean (N, C)) of the style."""
        n, c = x.shape[:2]
        if isinstance(cond, Tensor):
            if cond.dim() != 4 or cond.shape[1] != c or cond.shape[0] not in (1, n):
                raise ShapeError(
                    f"AdaIN style features must be (N or 1, {c}, h, w) for content "
                    f"{tuple(x.shape)}; got {tuple(cond.shape)}"
                )
            mean, std = style_moments(cond, self.eps if self.unbiased else 0.0, self.unbiased)
        elif isinstance(cond, tuple | list) and len(cond) == 2:
            mean, std = (t.reshape(t.shape[0], -1) if t.dim() > 2 else t for t in cond)
            for name, t in (("mean", mean), ("std", std)):
                if t.dim() != 2 or t.shape[1] != c or t.shape[0] not in (1, n):
                    raise ShapeError(
                        f"AdaIN style {name} must be (N or 1, {c}); got {tuple(t.shape)}"
                    )
        else:
            raise ShapeError("AdaIN condition must be style features or a (mean, std) pair")
        return std.expand(n, c), mean.expand(n, c)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, unbiased={self.unbiased}"


@register_norm(
    "adain", "adain", "Adaptive Instance Norm: γ, β = σ, μ of the style features", ("eps", "unbiased"),
    conditional=True,
)
def _adain(c: int, args: list[str], spec: str, eps: float = 1e-5, unbiased: bool = False) -> nn.Module:
    stats = make_stats("instance", c, eps=eps, unbiased=unbiased)
    return Normalization(stats, StyleStatistics(c, eps, unbiased), num_features=c)
