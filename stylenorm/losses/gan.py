"""Losses of GAN training, as SPADE (and SNGAN) define them: hinge, feature matching, KL, VGG.

Discriminator outputs may be given as a logits tensor, as one
:class:`~stylenorm.nets.discriminators.NLayerDiscriminator` output (a list of
features whose last entry is the logits) or as a
:class:`~stylenorm.nets.discriminators.MultiscaleDiscriminator` output (a list
of such lists, one per scale). Multi-scale losses are averaged over scales, as
the official ``GANLoss``.

Each function returns the unweighted loss; the official weights are
:data:`LAMBDA_FEAT` (10), :data:`LAMBDA_VGG` (10) and :data:`LAMBDA_KLD` (0.05),
applied by the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.nets.vgg import VGGEncoder, layer_names

__all__ = [
    "LAMBDA_FEAT",
    "LAMBDA_KLD",
    "LAMBDA_VGG",
    "VGG_LAYERS",
    "VGG_WEIGHTS",
    "VGGLoss",
    "feature_matching_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "kl_divergence",
]

LAMBDA_FEAT = 10.0
LAMBDA_VGG = 10.0
LAMBDA_KLD = 0.05
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

Prediction = Tensor | Sequence[Tensor] | Sequence[Sequence[Tensor]]


def _logits(pred: Prediction) -> list[Tensor]:
    """The logits of each scale: a tensor, the last of a feature list, or the last of each list."""
    if isinstance(pred, Tensor):
        return [pred]
    if not isinstance(pred, Sequence) or not pred:
        raise ShapeError(
            f"a discriminator output must be a tensor or a non-empty list; got {type(pred).__name__}"
        )
    if all(isinstance(p, Tensor) for p in pred):
        return [pred[-1]]
    if all(isinstance(p, Sequence) and p and isinstance(p[-1], Tensor) for p in pred):
        return [p[-1] for p in pred]
    raise ShapeError("a discriminator output must be a tensor, a list of tensors or a list of such lists")


def _float(x: Tensor) -> Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def hinge_d_loss(real: Prediction, fake: Prediction) -> Tensor:
    """D's hinge loss: mean(relu(1 − D(real))) + mean(relu(1 + D(fake))), each averaged over scales."""
    real_l, fake_l = _logits(real), _logits(fake)
    if len(real_l) != len(fake_l):
        raise ShapeError(f"{len(real_l)} real scales but {len(fake_l)} fake scales")
    loss_real = sum(F.relu(1 - _float(r)).mean() for r in real_l) / len(real_l)
    loss_fake = sum(F.relu(1 + _float(f)).mean() for f in fake_l) / len(fake_l)
    return loss_real + loss_fake


def hinge_g_loss(fake: Prediction) -> Tensor:
    """G's hinge loss: −mean(D(fake)), averaged over scales."""
    fake_l = _logits(fake)
    return sum(-_float(f).mean() for f in fake_l) / len(fake_l)


def feature_matching_loss(fake: Sequence[Sequence[Tensor]], real: Sequence[Sequence[Tensor]]) -> Tensor:
    """Σ_scales Σ_layers L1(fake_feat, real_feat.detach()) / num_D over every feature but the logits.

    ``fake``/``real`` are multi-scale discriminator outputs (lists per scale of
    (N, C, h, w) features, the last being the logits, which is left out).
    """
    if isinstance(fake, Tensor) or isinstance(real, Tensor) or len(fake) != len(real) or not fake:
        raise ShapeError("feature matching needs two multi-scale outputs (lists per scale) of equal length")
    total = torch.zeros((), device=fake[0][0].device)
    for f_scale, r_scale in zip(fake, real, strict=True):
        if len(f_scale) != len(r_scale) or len(f_scale) < 2:
            raise ShapeError("each scale needs the same number (≥ 2) of fake and real features")
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            total = total + F.l1_loss(_float(f), _float(r).detach())
    return total / len(fake)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, e^logvar) ‖ N(0, I)) = −½ Σ (1 + logvar − μ² − e^logvar), summed over batch and z."""
    if mu.shape != logvar.shape:
        raise ShapeError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
    mu, logvar = _float(mu), _float(logvar)
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class VGGLoss(nn.Module):
    """Perceptual loss Σ_i w_i·L1(VGG_i(x), VGG_i(y)) over relu1_1 … relu5_1 with w = 1/32, 1/16, 1/8, 1/4, 1.

    The caller passes the encoder (pretrained via ``load_vgg_weights``, or
    ``fmt="random"``); it must reach every layer in ``layers``. x and y are
    images in [−1, 1] (the generator's range), (N, 3, H, W); they are mapped
    to [0, 1] for the encoder, which applies the input normalization its
    weights expect (ImageNet mean/std; hed: its Caffe preprocessing; the
    official feeds [−1, 1] into VGG unnormalized). Any VGG depth that reaches
    ``layers`` works (the ``hed`` encoder is a VGG-16). The target y is detached.
    """

    def __init__(
        self,
        encoder: VGGEncoder,
        layers: Sequence[str] = VGG_LAYERS,
        weights: Sequence[float] = VGG_WEIGHTS,
    ) -> None:
        super().__init__()
        if len(layers) != len(weights) or not layers:
            raise SpecError(
                f"VGGLoss needs one weight per layer; got {len(layers)} layers, {len(weights)} weights"
            )
        reach = layer_names(encoder.depth)
        reach = reach[: reach.index(encoder.last) + 1]
        missing = [name for name in layers if name not in reach]
        if missing:
            raise SpecError(
                f"the VGG encoder is cut at {encoder.last} and lacks {missing}; build it with "
                f"VGGEncoder(depth=19, last={layers[-1]!r})"
            )
        self.encoder = encoder
        self.layers, self.weights = tuple(layers), tuple(float(w) for w in weights)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x, y (N, 3, H, W) in [−1, 1] -> scalar weighted L1 distance of their VGG features."""
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError(
                f"VGGLoss needs two RGB batches of one shape; got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        fx = self.encoder((x + 1) / 2, self.layers)
        with torch.no_grad():
            fy = self.encoder((y + 1) / 2, self.layers)
        return sum(
            w * F.l1_loss(_float(fx[k]), _float(fy[k]))
            for k, w in zip(self.layers, self.weights, strict=True)
        )
