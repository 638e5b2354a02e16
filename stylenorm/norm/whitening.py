"""Whitening: zero mean and identity covariance, not only unit variance per channel.

With ``X`` the centred features of one group (``d`` channels × ``m`` elements) and
``Σ = XXᵀ/m + εI``, a whitening statistic returns ``x̂ = Σ^{-1/2} (x − μ)`` (ZCA: the whitened
features stay closest to the input). Where the statistics are taken:

* :class:`BatchWhitening` — over (N, H, W) per channel group, with running mean and running whitening
  matrix for eval: Decorrelated BN (Huang et al. 2018, ``method="eigh"``) and IterNorm (Huang et al.
  2019, ``method="newton"``).
* :class:`InstanceWhitening` — over (H, W) per sample and group: what WCT whitens content with.

``Σ^{-1/2}`` comes from an eigendecomposition (``eigh``: exact; not in half precision, not in ONNX, and
ill-conditioned on GPUs) or from Newton–Schulz iterations (``newton``: matmuls only). IterNorm's
iteration on the trace-normalised ``Σ_N = Σ/tr Σ`` is ``P₀ = I, P_k = ½(3P − P³Σ_N)``, and
``Σ^{-1/2} ≈ P_T / √tr Σ``; it is run here in its coupled, numerically stable form (below). It
converges for every SPD Σ, but slowly along small eigenvalues, so T iterations whiten only
approximately: :func:`whitening_error` measures it (the tests state the tolerance per method).
On VGG-16 features (relu1_1…relu4_1 of a photo, condition numbers 8e3–3e6) 30 iterations reach
float32's floor (|Σ^{-1/2} Σ Σ^{-1/2} − I| ≤ 3e-4); 20 leave up to 0.18 on relu2_1. The covariance and the
iterations run in float32 at least (float64 stays float64), whatever the autocast dtype.

Colouring (:class:`StyleCovariance`, WCT's modulation) maps whitened features to a style's mean and
covariance: ``y = Σ_s^{1/2} x̂ + μ_s``; AdaIN is its diagonal special case. ``Σ_s^{1/2}`` comes from
the coupled Newton–Schulz iteration (Higham 2008: ``Y₀ = A/tr A, Z₀ = I, T = ½(3I − ZY), Y ← YT,
Z ← TZ``; ``Y → (A/tr A)^{1/2}``) or from ``eigh``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm.base import Affine, Modulation, Normalization, modulate
from stylenorm.norm.registry import one_int, register_affine_layer, register_norm, register_stats

Method = Literal["newton", "eigh"]
METHODS = ("newton", "eigh")


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _exact(x: Tensor) -> torch.autocast:
    """Autocast off: the covariance and the iterations stay in float32 (an autocast region would run
    their matmuls in bf16/fp16, where Newton–Schulz diverges)."""
    return torch.autocast(x.device.type, enabled=False)


def covariance(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """x (..., d, m) -> (mean (..., d, 1), Σ = XXᵀ/m + εI (..., d, d)), in float32 at least."""
    x = x.to(_compute_dtype(x))
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    sigma = xc @ xc.transpose(-1, -2) / x.shape[-1]
    eye = torch.eye(x.shape[-2], dtype=x.dtype, device=x.device)
    return mean, sigma + eps * eye


def inverse_sqrt(sigma: Tensor, method: Method = "newton", iterations: int = 5) -> Tensor:
    """Σ^{-1/2} of SPD matrices (..., d, d): exact (eigh) or Newton–Schulz (T iterations).

    IterNorm writes the iteration as ``P_k = ½(3P − P³Σ_N)``; in exact arithmetic that is the Z of the
    coupled iteration used here, which stays stable: IterNorm's own form diverges after ~15 iterations
    in float64 (rounding errors grow), the coupled one keeps converging.
    """
    return sqrt_and_inverse_sqrt(sigma, method, iterations)[1]


def sqrt_and_inverse_sqrt(
    sigma: Tensor, method: Method = "newton", iterations: int = 30
) -> tuple[Tensor, Tensor]:
    """(Σ^{1/2}, Σ^{-1/2}) of SPD matrices (..., d, d): exact (eigh) or the coupled Newton–Schulz."""
    if method == "eigh":
        lam, vec = torch.linalg.eigh(sigma)
        lam = lam.clamp_min(torch.finfo(lam.dtype).tiny)
        vt = vec.transpose(-1, -2)
        return (vec * lam.sqrt().unsqueeze(-2)) @ vt, (vec * lam.rsqrt().unsqueeze(-2)) @ vt
    trace = sigma.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    eye = torch.eye(sigma.shape[-1], dtype=sigma.dtype, device=sigma.device)
    y, z = sigma / trace, eye.expand_as(sigma)
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt(), z / trace.sqrt()


def whitening_error(whitened: Tensor) -> float:
    """max |cov(x̂) − I| over groups of whitened features (..., d, m): how far from white."""
    xc = whitened - whitened.mean(-1, keepdim=True)
    cov = xc @ xc.transpose(-1, -2) / whitened.shape[-1]
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return float((cov - eye).abs().amax())


def _groups(num_features: int, group_size: int, who: str) -> int:
    if not isinstance(group_size, int) or group_size < 1:
        raise SpecError(f"{who}: the group size must be a positive integer; got {group_size!r}")
    if num_features % group_size:
        raise SpecError(
            f"{who}: {num_features} channels do not split into groups of {group_size}; pick a divisor "
            f"of {num_features}"
        )
    return num_features // group_size


def _check_method(method: str, iterations: int, who: str) -> None:
    if method not in METHODS:
        raise SpecError(f"{who}: method must be one of {', '.join(METHODS)}; got {method!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise SpecError(f"{who}: iterations must be a positive integer; got {iterations!r}")


def whiten_instances(x: Tensor, group_size: int, eps: float, method: Method, iterations: int) -> Tensor:
    """x (N, C, H, W) -> Σ^{-1/2}(x − μ) per sample and group of ``group_size`` channels, over (H, W)."""
    n, c, h, w = x.shape
    if h * w < group_size:
        raise ShapeError(
            f"instance whitening of groups of {group_size} channels needs at least that many "
            f"elements per map; got {h}×{w} = {h * w}: use a larger image or smaller groups"
        )
    xg = x.reshape(n, c // group_size, group_size, h * w)
    with _exact(x):
        mean, sigma = covariance(xg, eps)
        wm = inverse_sqrt(sigma, method, iterations)
        return (wm @ (xg.to(wm.dtype) - mean)).reshape(n, c, h, w).to(x.dtype)


class InstanceWhitening(nn.Module):
    """Per sample and channel group over (H, W): x̂ = Σ^{-1/2}(x − μ); then ``scale``/``shift``.

    ``scale`` may also be a matrix (N, C, C): the colouring of :class:`StyleCovariance`. Needs at
    least ``group_size`` elements per map (H·W), else Σ would be singular: a ShapeError says so.
    """

    def __init__(
        self,
        num_features: int,
        group_size: int | None = None,
        eps: float = 1e-5,
        method: Method = "newton",
        iterations: int = 30,
    ) -> None:
        super().__init__()
        self.group_size = num_features if group_size is None else group_size
        self.groups = _groups(num_features, self.group_size, "instance whitening")
        _check_method(method, iterations, "instance whitening")
        self.num_features, self.eps, self.method, self.iterations = num_features, eps, method, iterations

    def whiten(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> x̂ (N, C, H, W), whitened per sample and group."""
        return whiten_instances(x, self.group_size, self.eps, self.method, self.iterations)

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        return modulate(self.whiten(x), scale, shift)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, group_size={self.group_size}, eps={self.eps}, method={self.method}, "
            f"iterations={self.iterations}"
        )


@register_stats(
    "instance_whiten", "instance_whiten:G", "whitening per sample over (H, W), groups of G channels "
    "(default: all; WCT's): Newton–Schulz, or method='eigh' exact", ("eps", "method", "iterations"),
    max_args=1,
)
def _instance_whiten_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return InstanceWhitening(c, one_int(spec, args, "the group size", c), **o)


register_affine_layer("instance_whiten", False, "instance whitening (affine off by default, like instance)")


class BatchWhitening(nn.Module):
    """Per channel group over (N, H, W) with running statistics: DBN (eigh) and IterNorm (newton).

    In training, x̂ = Σ_B^{-1/2}(x − μ_B) and the running mean and running whitening matrix move by
    ``momentum`` (IterNorm's convention: the matrix itself is averaged); in eval both are used as they
    are. Needs at least ``group_size`` elements per channel over the batch (N·H·W).
    """

    def __init__(
        self,
        num_features: int,
        group_size: int = 16,
        eps: float = 1e-5,
        momentum: float = 0.1,
        method: Method = "newton",
        iterations: int = 5,
    ) -> None:
        super().__init__()
        self.group_size = group_size
        self.groups = _groups(num_features, group_size, "batch whitening")
        _check_method(method, iterations, "batch whitening")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.method, self.iterations = method, iterations
        self.register_buffer("running_mean", torch.zeros(self.groups, group_size, 1))
        self.register_buffer("running_whitening", torch.eye(group_size).repeat(self.groups, 1, 1))

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        n, c, h, w = x.shape
        xg = x.transpose(0, 1).reshape(self.groups, self.group_size, n * h * w)
        with _exact(x):
            out = self._whiten(xg)
        return modulate(out.reshape(c, n, h, w).transpose(0, 1).to(x.dtype), scale, shift)

    def _whiten(self, xg: Tensor) -> Tensor:
        if self.training:
            if xg.shape[-1] < self.group_size:
                raise ShapeError(
                    f"batch whitening of groups of {self.group_size} channels needs at least that many "
                    f"elements per channel over the batch; got N·H·W = {xg.shape[-1]}"
                )
            mean, sigma = covariance(xg, self.eps)
            wm = inverse_sqrt(sigma, self.method, self.iterations)
            with torch.no_grad():
                m = self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
                self.running_whitening.lerp_(wm.to(self.running_whitening.dtype), m)
        else:
            mean = self.running_mean.to(_compute_dtype(xg))
            wm = self.running_whitening.to(_compute_dtype(xg))
        return wm @ (xg.to(wm.dtype) - mean)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, group_size={self.group_size}, eps={self.eps}, momentum={self.momentum}, "
            f"method={self.method}, iterations={self.iterations}"
        )


@register_stats(
    "zca", "zca:G", "Decorrelated BN statistics: ZCA whitening over (N, H, W) per group of G channels "
    "(eigendecomposition; default G 16), running mean and whitening matrix", ("eps", "momentum"), max_args=1,
)
def _zca_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return BatchWhitening(c, one_int(spec, args, "the group size", min(16, c)), method="eigh", **o)


@register_stats(
    "iternorm", "iternorm:G", "IterNorm statistics: whitening over (N, H, W) per group of G channels by "
    "Newton–Schulz iterations (default G 64, iterations=5; no eigendecomposition)",
    ("eps", "momentum", "iterations"), max_args=1,
)
def _iternorm_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return BatchWhitening(c, one_int(spec, args, "the group size", min(64, c)), method="newton", **o)


register_affine_layer("zca", True, "Decorrelated BatchNorm (ZCA whitening, eigh) with per-channel affine")
register_affine_layer("iternorm", True, "IterNorm (Newton–Schulz whitening) with per-channel affine")


def style_covariance(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """A style's colouring statistics: features (N, C, h, w) -> (mean (N, C), Σ (N, C, C))."""
    if features.dim() != 4:
        raise ShapeError(f"style features must be (N, C, H, W); got shape {tuple(features.shape)}")
    n, c = features.shape[:2]
    mean, sigma = covariance(features.reshape(n, c, -1), eps)
    return mean[..., 0], sigma


class StyleCovariance(Modulation):
    """WCT's colouring: scale = Σ_s^{1/2} (a (N, C, C) matrix), shift = μ_s, of the style.

    ``cond``: the style's feature map (N or 1, C, h, w), or cached ``(mean (N|1, C), Σ (N|1, C, C))``
    from :func:`style_covariance`.
    """

    conditional = True

    def __init__(
        self, num_features: int, eps: float = 1e-5, method: Method = "newton", iterations: int = 30
    ) -> None:
        super().__init__()
        _check_method(method, iterations, "colouring")
        self.num_features, self.eps, self.method, self.iterations = num_features, eps, method, iterations

    def forward(self, x: Tensor, cond: Tensor | tuple[Tensor, Tensor]) -> Affine:
        n, c = x.shape[:2]
        if isinstance(cond, Tensor):
            if cond.dim() != 4 or cond.shape[1] != c or cond.shape[0] not in (1, n):
                raise ShapeError(
                    f"style features must be (N or 1, {c}, h, w) for content {tuple(x.shape)}; "
                    f"got {tuple(cond.shape)}"
                )
            with _exact(cond):
                mean, sigma = style_covariance(cond, self.eps)
        elif isinstance(cond, tuple | list) and len(cond) == 2:
            mean, sigma = cond
            if mean.dim() != 2 or mean.shape[1] != c or sigma.shape[-2:] != (c, c) or sigma.dim() != 3:
                raise ShapeError(
                    f"cached colouring statistics must be mean (N or 1, {c}) and Σ (N or 1, {c}, {c}); got "
                    f"{tuple(mean.shape)} and {tuple(sigma.shape)}"
                )
        else:
            raise ShapeError("the colouring condition must be style features or a (mean, Σ) pair")
        with _exact(sigma):
            root, _ = sqrt_and_inverse_sqrt(sigma.to(_compute_dtype(sigma)), self.method, self.iterations)
        return root.expand(n, c, c), mean.expand(n, c)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, method={self.method}, iterations={self.iterations}"


@register_norm(
    "wct", "wct", "whitening and colouring (WCT): the content whitened per sample, coloured with the "
    "style's mean and covariance", ("eps", "method", "iterations"), conditional=True,
)
def _wct(
    c: int, args: list[str], spec: str, eps: float = 1e-5, method: Method = "newton", iterations: int = 30
) -> nn.Module:
    whiten = InstanceWhitening(c, c, eps, method, iterations)
    return Normalization(whiten, StyleCovariance(c, eps, method, iterations), num_features=c)


__all__ = [
    "METHODS",
    "BatchWhitening",
    "InstanceWhitening",
    "StyleCovariance",
    "covariance",
    "inverse_sqrt",
    "sqrt_and_inverse_sqrt",
    "style_covariance",
    "whitening_error",
]
