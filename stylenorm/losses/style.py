"""Losses of style-transfer training: content, style (Gram and mean/std), total variation.

Small pure functions of feature maps (N, C, H, W). Every loss is computed in
float32 at least (features from a bf16/fp16 autocast region are upcast), so
Gram matrices and squared errors keep their precision under AMP.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stylenorm.errors import ShapeError
from stylenorm.norm import style_moments


def _float(x: Tensor) -> Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check4(x: Tensor, what: str) -> None:
    if x.dim() != 4:
        raise ShapeError(f"{what} must be (N, C, H, W); got shape {tuple(x.shape)}")


def _mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error; b broadcasts over a's batch (a style target (1, …) against (N, …))."""
    return (a - b).square().mean()


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Feature reconstruction loss: features, target (N, C, H, W) -> scalar mean((features − target)²)."""
    _check4(features, "features")
    if features.shape != target.shape:
        raise ShapeError(f"content target {tuple(target.shape)} ≠ features {tuple(features.shape)}")
    return _mse(_float(features), _float(target))


def gram_matrix(features: Tensor) -> Tensor:
    """Per-sample Gram matrix G = F·Fᵀ / (C·H·W): features (N, C, H, W) -> (N, C, C)."""
    _check4(features, "features")
    n, c, h, w = features.shape
    f = _float(features).reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def gram_style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Gram style loss: features (N, C, H, W), target_gram (N or 1, C, C) -> scalar MSE of the Grams."""
    return per_sample_gram_loss(features, target_gram).mean()


def per_sample_gram_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Gram style loss per sample: features (N, C, H, W), target_gram (N or 1, C, C) -> (N,) MSE each.

    ``gram_style_loss`` is its mean; this form lets a caller weight each sample (per-style balancing).
    """
    gram = gram_matrix(features)
    n, c, _ = gram.shape
    t = target_gram
    if t.dim() != 3 or t.shape[1:] != gram.shape[1:] or t.shape[0] not in (1, n):
        raise ShapeError(f"target Gram must be (N or 1, {c}, {c}); got {tuple(target_gram.shape)}")
    return (gram - _float(t)).square().mean(dim=(1, 2))


def mean_std(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over (H, W), std = sqrt(biased var + eps): (N, C, H, W) -> two (N, C)."""
    return style_moments(_float(features), eps, unbiased=False)


def mean_std_loss(features: Tensor, target: Tensor | tuple[Tensor, Tensor], eps: float = 1e-5) -> Tensor:
    """AdaIN's style loss: MSE of per-channel means + MSE of per-channel stds.

    features (N, C, H, W); target: feature map (N or 1, C, h, w) of any size,
    or its precomputed (mean, std), each (N or 1, C). Returns a scalar.
    """
    mean, std = mean_std(features, eps)
    t_mean, t_std = target if isinstance(target, tuple) else mean_std(target, eps)
    if t_mean.shape[-1] != mean.shape[-1] or t_mean.shape[0] not in (1, mean.shape[0]):
        raise ShapeError(f"style target has shape {tuple(t_mean.shape)}; expected (N or 1, {mean.shape[-1]})")
    return _mse(mean, _float(t_mean)) + _mse(std, _float(t_std))


def total_variation(images: Tensor) -> Tensor:
    """Anisotropic L1 total variation: images (N, C, H, W) -> scalar.

    mean|x[…, i+1, j] − x[…, i, j]| + mean|x[…, i, j+1] − x[…, i, j]|: means, not
    sums, so the weight does not depend on the image size.
    """
    _check4(images, "images")
    x = _float(images)
    tv = x.new_zeros(())
    if x.shape[2] > 1:
        tv = tv + (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
    if x.shape[3] > 1:
        tv = tv + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    return tv


__all__ = [
    "content_loss",
    "gram_matrix",
    "gram_style_loss",
    "mean_std",
    "mean_std_loss",
    "per_sample_gram_loss",
    "total_variation",
]
