"""A class-conditional ResNet generator (SNGAN / BigGAN style) built on class-conditional norms.

Every residual block normalizes with ``make_norm(norm, C, num_classes=K)``
(by default ``"cbn"``: batch statistics, one (γ, β) row per class, γ = 1 and
β = 0 at the start) called with the class ids, so the class enters the network
only through the normalization, as in the projection-discriminator GANs of
Miyato & Koyama (2018) and BigGAN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.nets.discriminators import check_class_ids
from stylenorm.nets.spade import reset_weight
from stylenorm.norm import make_norm, norm_entry, spectral_norm

__all__ = ["ClassConditionalGenerator", "GBlock"]

# input/output widths (multiples of ngf) per block, after BigGAN's published arch tables
_G_ARCH = {
    32: ((4, 4), (4, 4), (4, 4)),
    64: ((16, 16), (16, 8), (8, 4), (4, 2)),
    128: ((16, 16), (16, 8), (8, 4), (4, 2), (2, 1)),
}


def _class_norm(spec: str, channels: int, num_classes: int) -> nn.Module:
    """A class-conditional norm from a spec, whatever its option for the number of classes is called."""
    options = norm_entry(spec).options
    if "num_classes" in options:
        return make_norm(spec, channels, num_classes=num_classes)
    if "num_styles" in options:  # cin: one row per class works the same way
        return make_norm(spec, channels, num_styles=num_classes)
    raise SpecError(
        f"ClassConditionalGenerator needs a class-conditional norm (cbn, cbn:<stats>, cin …); got {spec!r}"
    )


def _final_norm_spec(spec: str) -> str:
    """The unconditional norm before the output conv: the statistic of the conditional spec."""
    name, _, rest = spec.partition(":")
    if rest:
        return rest
    return "batch" if name == "cbn" else "instance"


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module


class GBlock(nn.Module):
    """Up-block: cnorm → relu → ×2 nearest → conv3×3 → cnorm → relu → conv3×3, plus ×2 → 1×1 conv shortcut.

    x (N, fin, H, W), y (N,) -> (N, fout, 2H, 2W).
    """

    def __init__(self, fin: int, fout: int, norm: str, num_classes: int, spectral: bool = False) -> None:
        super().__init__()
        self.b1 = _class_norm(norm, fin, num_classes)
        self.c1 = _sn(nn.Conv2d(fin, fout, 3, padding=1), spectral)
        self.b2 = _class_norm(norm, fout, num_classes)
        self.c2 = _sn(nn.Conv2d(fout, fout, 3, padding=1), spectral)
        self.c_sc = _sn(nn.Conv2d(fin, fout, 1), spectral)
        for conv, gain in ((self.c1, math.sqrt(2)), (self.c2, math.sqrt(2)), (self.c_sc, 1.0)):
            reset_weight(conv, lambda w, g=gain: nn.init.xavier_uniform_(w, gain=g))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x (N, fin, H, W), y (N,) class ids -> (N, fout, 2H, 2W)."""
        h = F.interpolate(F.relu(self.b1(x, y)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(self.b2(self.c1(h), y)))
        return h + self.c_sc(F.interpolate(x, scale_factor=2, mode="nearest"))


class ClassConditionalGenerator(nn.Module):
    """(z (N, z_dim), y (N,) long) -> images (N, 3, S, S), tanh in [−1, 1], S = image_size.

    z → Linear → (4·… ngf, 4, 4) → up-blocks with class-conditional norms to S
    → norm → relu → conv3×3 → tanh. ``image_size`` 32, 64 or 128 picks
    BigGAN's width table; ``spectral`` puts spectral norm on the convs and the
    linear (BigGAN does, SNGAN's generator does not).
    """

    def __init__(
        self,
        num_classes: int,
        z_dim: int = 128,
        ngf: int = 64,
        image_size: int = 32,
        norm: str = "cbn",
        spectral: bool = False,
    ) -> None:
        super().__init__()
        if image_size not in _G_ARCH:
            raise SpecError(f"image_size must be one of {sorted(_G_ARCH)}; got {image_size}")
        if num_classes < 1 or z_dim < 1 or ngf < 1:
            raise SpecError(f"num_classes, z_dim and ngf must be positive; got {num_classes}, {z_dim}, {ngf}")
        self.num_classes, self.z_dim, self.image_size, self.norm_spec = num_classes, z_dim, image_size, norm
        arch = _G_ARCH[image_size]
        self.c0 = arch[0][0] * ngf
        self.linear = _sn(nn.Linear(z_dim, self.c0 * 16), spectral)
        self.blocks = nn.ModuleList(GBlock(i * ngf, o * ngf, norm, num_classes, spectral) for i, o in arch)
        c_last = arch[-1][1] * ngf
        self.out_norm = make_norm(_final_norm_spec(norm), c_last)
        self.conv_out = _sn(nn.Conv2d(c_last, 3, 3, padding=1), spectral)
        for m in (self.linear, self.conv_out):
            reset_weight(m, nn.init.xavier_uniform_)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """z (N, z_dim), y (N,) class ids in 0 … num_classes − 1 -> (N, 3, S, S) in [−1, 1]."""
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ShapeError(f"z must be (N, {self.z_dim}); got {got}")
        check_class_ids(y, z.shape[0], self.num_classes)
        h = self.linear(z).view(z.shape[0], self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.conv_out(F.relu(self.out_norm(h))))
