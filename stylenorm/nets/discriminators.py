"""Discriminators: SPADE's multi-scale PatchGAN and the SNGAN projection discriminator.

* :class:`NLayerDiscriminator` / :class:`MultiscaleDiscriminator` follow
  NVlabs/SPADE (keys ``discriminator_<i>.model<k>…``): the input is
  concat(one-hot label map, image), every intermediate feature is returned for
  feature matching, the last entry is the patch logits.
* :class:`ProjectionDiscriminator` is the SNGAN ResNet discriminator with the
  projection term of Miyato & Koyama (2018): D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩.

Spectral norm is torch's parametrization (see :mod:`stylenorm.nets.spade` for
how its keys map to the official ``weight_orig``/``weight_u``/``weight_v``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.nets.spade import init_weights, reset_weight
from stylenorm.norm import make_norm, norm_entry, spectral_norm

__all__ = [
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "ProjectionDiscriminator",
    "check_class_ids",
    "downsample",
]

_LRELU = 0.2


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module


def _normed_conv(conv: nn.Conv2d, norm: str, spectral: bool) -> nn.Module:
    """The official ``get_nonspade_norm_layer``: spectral conv, then (bias dropped) the norm, if any."""
    if norm == "none":
        return _sn(conv, spectral)
    if norm_entry(norm).conditional:
        raise SpecError(
            f"discriminator norms must be unconditional (instance, batch, group:G …); got {norm!r}"
        )
    # a bias right before a normalization is removed by its mean: drop it, as the official does
    conv = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False
    )
    return nn.Sequential(_sn(conv, spectral), make_norm(norm, conv.out_channels))


def downsample(x: Tensor) -> Tensor:
    """The official scale step between discriminators: avg-pool 3×3, stride 2, pad 1, padding not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: x (N, input_nc, H, W) -> [feature_0, …, feature_{n-1}, logits (N, 1, h, w)].

    model0 is a plain 4×4 stride-2 conv (with bias, no norm) and lrelu(0.2);
    model1 … model{n-1} are (spectral) convs + ``norm`` (widths ×2, capped at
    512; stride 2 except the last, stride 1) and lrelu; model{n} is a plain
    4×4 conv to one channel. Padding 2 everywhere, as the official.
    """

    def __init__(
        self, input_nc: int, ndf: int = 64, n_layers: int = 4, norm: str = "instance", spectral: bool = True
    ) -> None:
        super().__init__()
        if input_nc < 1 or ndf < 1 or n_layers < 1:
            raise SpecError(f"input_nc, ndf and n_layers must be positive; got {input_nc}, {ndf}, {n_layers}")
        self.input_nc, self.n_layers = input_nc, n_layers
        kw, pad = 4, 2
        nf = ndf
        self.model0 = nn.Sequential(nn.Conv2d(input_nc, nf, kw, stride=2, padding=pad), nn.LeakyReLU(_LRELU))
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = nn.Conv2d(nf_prev, nf, kw, stride=stride, padding=pad)
            self.add_module(
                f"model{n}", nn.Sequential(_normed_conv(conv, norm, spectral), nn.LeakyReLU(_LRELU))
            )
        self.add_module(f"model{n_layers}", nn.Sequential(nn.Conv2d(nf, 1, kw, stride=1, padding=pad)))
        init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (N, input_nc, H, W) -> every layer's output; the last is the patch logits (N, 1, h, w)."""
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ShapeError(
                f"discriminator expects (N, {self.input_nc}, H, W) = concat(label map, image); "
                f"got {tuple(x.shape)}"
            )
        outputs = []
        for n in range(self.n_layers + 1):
            x = getattr(self, f"model{n}")(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on successively avg-pooled copies: x -> [[features…, logits] per scale].

    ``input_nc`` = semantic_nc + 3 (the input is concat(one-hot label map,
    image in [−1, 1])). Submodules are ``discriminator_0`` … as the official.
    """

    def __init__(
        self,
        input_nc: int,
        num_D: int = 2,
        ndf: int = 64,
        n_layers: int = 4,
        norm: str = "instance",
        spectral: bool = True,
    ) -> None:
        super().__init__()
        if num_D < 1:
            raise SpecError(f"num_D must be at least 1; got {num_D}")
        self.num_D, self.input_nc = num_D, input_nc
        for i in range(num_D):
            self.add_module(
                f"discriminator_{i}", NLayerDiscriminator(input_nc, ndf, n_layers, norm, spectral)
            )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """x (N, input_nc, H, W) -> per scale the list of features, the last being logits (N, 1, h, w)."""
        results = []
        for i in range(self.num_D):
            results.append(getattr(self, f"discriminator_{i}")(x))
            if i + 1 < self.num_D:
                x = downsample(x)
        return results

    def discriminate(
        self, segmap: Tensor, fake: Tensor, real: Tensor
    ) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
        """(pred_fake, pred_real) for segmap (N, S, H, W), fake/real (N, 3, H, W), in one batch.

        Fake and real go through D together, as the official does, so batch
        statistics in D (if any) are shared rather than disparate.
        """
        if fake.shape != real.shape or fake.shape[0] != segmap.shape[0] or fake.shape[2:] != segmap.shape[2:]:
            raise ShapeError(
                f"segmap {tuple(segmap.shape)}, fake {tuple(fake.shape)} and real {tuple(real.shape)} "
                "must share batch size and spatial size"
            )
        both = torch.cat([torch.cat([segmap, fake], 1), torch.cat([segmap, real], 1)], 0)
        n = fake.shape[0]
        pred = self(both)
        return [[t[:n] for t in scale] for scale in pred], [[t[n:] for t in scale] for scale in pred]


class _DBlock(nn.Module):
    """SNGAN discriminator block: [relu] → conv3×3 → relu → conv3×3 → [avgpool2], plus a shortcut."""

    def __init__(self, fin: int, fout: int, down: bool, first: bool, spectral: bool) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.c1 = _sn(nn.Conv2d(fin, fout, 3, padding=1), spectral)
        self.c2 = _sn(nn.Conv2d(fout, fout, 3, padding=1), spectral)
        self.learned_shortcut = fin != fout or down
        if self.learned_shortcut:
            self.c_sc = _sn(nn.Conv2d(fin, fout, 1), spectral)
        for conv, gain in ((self.c1, math.sqrt(2)), (self.c2, math.sqrt(2))):
            _xavier(conv, gain)
        if self.learned_shortcut:
            _xavier(self.c_sc, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, fin, H, W) -> (N, fout, H/2 or H, W/2 or W)."""
        # the first block sees the image: no activation before its first conv
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        sc = x
        if self.learned_shortcut:
            # the first block pools before its 1×1 conv (cheaper, as SNGAN's OptimizedBlock)
            if self.first:
                sc = self.c_sc(F.avg_pool2d(x, 2) if self.down else x)
            else:
                sc = self.c_sc(x)
                if self.down:
                    sc = F.avg_pool2d(sc, 2)
        return h + sc


def _xavier(module: nn.Module, gain: float) -> None:
    reset_weight(module, lambda w: nn.init.xavier_uniform_(w, gain=gain))


# widths (multiples of ndf) and downsampling of each block, after SNGAN's published ResNet discriminators
_D_ARCH = {
    32: ((1, True), (1, True), (1, False), (1, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
}


class ProjectionDiscriminator(nn.Module):
    """SNGAN projection discriminator: (x (N, 3, S, S) in [−1, 1], y (N,)) -> logits (N,).

    φ(x) = global sum pool of relu(ResNet(x)); D = l(φ) + ⟨embed(y), φ⟩, with
    spectral norm on every conv, the linear l and the class embedding.
    ``image_size`` 32, 64 or 128 picks the block list.
    """

    def __init__(self, num_classes: int, ndf: int = 64, image_size: int = 32, spectral: bool = True) -> None:
        super().__init__()
        if image_size not in _D_ARCH:
            raise SpecError(f"image_size must be one of {sorted(_D_ARCH)}; got {image_size}")
        if num_classes < 1 or ndf < 1:
            raise SpecError(f"num_classes and ndf must be positive; got {num_classes}, {ndf}")
        self.num_classes, self.image_size = num_classes, image_size
        blocks, c_in = [], 3
        for i, (mult, down) in enumerate(_D_ARCH[image_size]):
            blocks.append(_DBlock(c_in, ndf * mult, down, first=i == 0, spectral=spectral))
            c_in = ndf * mult
        self.blocks = nn.Sequential(*blocks)
        self.l_out = _sn(nn.Linear(c_in, 1), spectral)
        self.embed = _sn(nn.Embedding(num_classes, c_in), spectral)
        _xavier(self.l_out, 1.0)
        _xavier(self.embed, 1.0)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x (N, 3, S, S), y class ids (N,) long -> logits (N,)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError(f"ProjectionDiscriminator expects images (N, 3, H, W); got {tuple(x.shape)}")
        check_class_ids(y, x.shape[0], self.num_classes)
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.l_out(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


def check_class_ids(y: Tensor, n: int, num_classes: int) -> None:
    """ShapeError unless y is an integer tensor (n,) of values in 0 … num_classes − 1."""
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
        raise ShapeError(f"class ids must be an integer tensor (N,); got {got}")
    if y.shape[0] != n:
        raise ShapeError(f"got {y.shape[0]} class ids for a batch of {n}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ShapeError(
            f"class id out of range: got values in [{int(y.min())}, {int(y.max())}], "
            f"valid are 0..{num_classes - 1}"
        )
