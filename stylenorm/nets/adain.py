"""Arbitrary style transfer with AdaIN (Huang & Belongie 2017).

A frozen VGG-19 encoder (cut at relu4_1 by default; relu3_1 or any relu as
an option), AdaIN on its features, and a decoder that mirrors the encoder.
For relu4_1 the decoder's layout and keys are pytorch-AdaIN's ``decoder.pth``
(``decoder.<index>.*``). Beyond the originals: float weights for style
interpolation, spatial control with any number of masks, colour
preservation, cached style statistics, output the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.nets.vgg import VGGEncoder, layer_names
from stylenorm.norm import make_norm, style_moments

StyleStats = tuple[Tensor, Tensor]  # (mean, std), each (1, C)


BORDER_MARGIN = 32  # pixels mirrored around the content (a multiple of every encoder's stride, 8)


def crop_margin(y: Tensor, margin: int, size: tuple[int, int]) -> Tensor:
    """The (H, W) = size picture inside a decoded (N, 3, H + …, W + …) that was padded by margin."""
    return y[:, :, margin : margin + size[0], margin : margin + size[1]]


def pad_mirrored(x: Tensor, margin: int, multiple: int) -> tuple[Tensor, int, int]:
    """x mirrored by ``margin`` on every side, then at the bottom/right to a multiple of ``multiple``
    -> (padded, H, W); :func:`crop_margin` takes the (H, W) picture back out (replicated instead of
    mirrored where a side is too short to mirror)."""
    h, w = x.shape[2:]
    m = margin
    ph, pw = (-(h + 2 * m)) % multiple, (-(w + 2 * m)) % multiple
    if m or ph or pw:
        mode = "reflect" if min(h, w) > m + max(ph, pw) else "replicate"
        x = F.pad(x, (m, m + pw, m, m + ph), mode=mode)
    return x, h, w


def decoder_for(encoder: VGGEncoder) -> nn.Sequential:
    """The decoder mirroring ``encoder`` (reflection pad + conv + ReLU, nearest upsampling)."""
    return mirrored_decoder(encoder.depth, encoder.last)


def mirrored_decoder(depth: int, last: str) -> nn.Sequential:
    """The decoder mirroring a VGG-``depth`` cut at ``last`` (reflection pad + conv + ReLU, nearest
    upsampling)."""
    convs = [n for n in layer_names(depth) if n.startswith("conv")]
    convs = convs[: convs.index("conv" + last[4:]) + 1]
    widths = {n: (64, 128, 256, 512, 512)[int(n[4]) - 1] for n in convs}
    layers: list[nn.Module] = []
    for i in range(len(convs) - 1, -1, -1):
        name = convs[i]
        c_in = widths[name]
        c_out = widths[convs[i - 1]] if i > 0 else 3
        if i > 0 and convs[i - 1][4] != name[4]:  # the block boundary: a pool in the encoder
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.ReLU()]
            layers.append(nn.Upsample(scale_factor=2))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out if i > 0 else 3, 3)]
            if i > 0:
                layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def coral(source: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """Recolour source (3, H, W) so its colour mean and covariance match target's (CORAL)."""
    src = source.reshape(3, -1).double()
    tgt = target.reshape(3, -1).double()
    src_mean, tgt_mean = src.mean(1, keepdim=True), tgt.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=src.dtype, device=src.device)
    cov_s = torch.cov(src) + eps * eye
    cov_t = torch.cov(tgt) + eps * eye

    def sqrtm(m: Tensor, power: float) -> Tensor:
        vals, vecs = torch.linalg.eigh(m)
        return vecs @ torch.diag(vals.clamp_min(1e-12) ** power) @ vecs.T

    mapped = sqrtm(cov_t, 0.5) @ sqrtm(cov_s, -0.5) @ (src - src_mean) + tgt_mean
    return mapped.reshape(source.shape).to(source.dtype).clamp(0, 1)


def _masked_moments(feat: Tensor, mask: Tensor, eps: float) -> StyleStats:
    """Mean and std of feat (1, C, H, W) over the pixels where mask (H, W) is set."""
    w = mask.to(feat.dtype)
    total = w.sum().clamp_min(1.0)
    mean = (feat * w).sum((2, 3)) / total
    var = ((feat - mean[:, :, None, None]).square() * w).sum((2, 3)) / total
    return mean, torch.sqrt(var + eps)


class AdaINNet(nn.Module):
    """Encoder → AdaIN → decoder; ``stylize(content, styles, …)`` is the whole feature set.

    Images are RGB in [0, 1], (N, 3, H, W); the output has the content's size.
    """

    def __init__(self, encoder: VGGEncoder, eps: float = 1e-5, unbiased: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder_for(encoder)
        # unbiased=False: the official AdaIN; True: pytorch-AdaIN's convention (for its imported decoders)
        self.adain = make_norm("adain", encoder.out_channels, eps=eps, unbiased=unbiased)
        self.eps, self.unbiased = eps, unbiased
        self.multiple = 2 ** sum(n.startswith("pool") for n in encoder.names if n)
        # the content is mirrored this far beyond each border before encoding and cropped after decoding:
        # the encoder's zero padding (and the decoder's view of it) then falls outside the picture, where
        # it drew a coloured fringe along every edge (seen at 512 px on adain-open; gone with the margin)
        self.margin = BORDER_MARGIN

    def encode(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> features at the encoder's last layer."""
        return self.encoder(x)[self.encoder.last]

    def style_stats(self, style: Tensor) -> StyleStats:
        """Cacheable statistics of one style image (1, 3, h, w) -> (mean, std), each (1, C)."""
        feat = self.encode(style)
        return style_moments(feat, self.eps if self.unbiased else 0.0, self.unbiased)

    def _pad(self, x: Tensor) -> tuple[Tensor, int, int]:
        """x mirrored by ``margin`` on every side, then at the bottom/right to a multiple of the encoder's
        stride -> (padded, H, W); :meth:`decode` with size (H, W) crops the picture back out."""
        return pad_mirrored(x, self.margin, self.multiple)

    def decode(self, features: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Features -> image (N, 3, H, W); with size (from :meth:`_pad`), the picture without the margin."""
        y = self.decoder(features)
        return y if size is None else crop_margin(y, self.margin, size)

    def transfer(self, content_feat: Tensor, stats: StyleStats | Tensor) -> Tensor:
        """AdaIN of content features with style (mean, std): official convention (biased, no NaN)."""
        return self.adain(content_feat, stats)

    def forward(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """Training/simple path: content (N, 3, H, W), style (N, 3, h, w) -> (N, 3, H, W)."""
        x, h, w = self._pad(content)
        feat = self.encode(x)
        t = self.transfer(feat, self.encode(style))
        return self.decode(alpha * t + (1 - alpha) * feat, (h, w))

    def stylize_batch(self, content: Tensor, stats: StyleStats, alpha: Tensor | float = 1.0) -> Tensor:
        """A batch of contents (N, 3, H, W), each with its own style statistics (mean, std), each (N, C),
        and alpha (a number, or (N, 1, 1, 1)) -> (N, 3, H, W): the server's batched pass."""
        x, h, w = self._pad(content)
        feat = self.encode(x)
        t = self.transfer(feat, (stats[0].to(feat.dtype), stats[1].to(feat.dtype)))
        return self.decode(alpha * t + (1 - alpha) * feat, (h, w))

    def stylize(
        self,
        content: Tensor,
        styles: list[Tensor | StyleStats],
        weights: list[float] | None = None,
        alpha: float = 1.0,
        masks: list[Tensor] | None = None,
        preserve_color: bool = False,
    ) -> Tensor:
        """One content image (1, 3, H, W) with K styles (images (1, 3, h, w) or cached stats).

        ``weights`` mix the styles (normalized to sum 1); ``masks`` (K masks
        (H, W) in [0, 1]) give each style its region instead; ``alpha`` trades
        content (0) for style (1); ``preserve_color`` recolours each style
        image to the content's colours first (style images only).
        """
        if content.dim() != 4 or content.shape[:2] != (1, 3):
            raise ShapeError(f"content must be one RGB image (1, 3, H, W); got {tuple(content.shape)}")
        if not styles:
            raise ShapeError("need at least one style")
        if not 0.0 <= alpha <= 1.0:
            raise ShapeError(f"alpha must be in [0, 1]; got {alpha}")
        k = len(styles)
        bad_weights = weights is not None and (
            len(weights) != k or any(wt < 0 for wt in weights) or sum(weights) <= 0
        )
        if bad_weights:
            raise ShapeError(f"need {k} non-negative style weights with a positive sum; got {weights}")
        if masks is not None and len(masks) != k:
            raise ShapeError(f"need one mask per style: {k} styles, {len(masks)} masks")
        stats: list[StyleStats] = []
        for s in styles:
            if isinstance(s, Tensor):
                if s.dim() != 4 or s.shape[:2] != (1, 3):
                    raise ShapeError(f"style images must be (1, 3, h, w); got {tuple(s.shape)}")
                if preserve_color:
                    s = coral(s[0], content[0]).unsqueeze(0)
                s = self.style_stats(s)
            stats.append(s)
        x, h, w = self._pad(content)
        feat = self.encode(x)
        if masks is None:
            total = float(sum(weights)) if weights is not None else float(k)
            mix = [wt / total for wt in weights] if weights is not None else [1.0 / k] * k
            t = sum(m * self.transfer(feat, st) for m, st in zip(mix, stats, strict=True))
        else:
            t = self._masked_transfer(feat, stats, masks, (h, w), x.shape[2:])
        return self.decode(alpha * t + (1 - alpha) * feat, (h, w))

    def _masked_transfer(
        self, feat: Tensor, stats: list[StyleStats], masks: list[Tensor], size: tuple, padded: tuple
    ) -> Tensor:
        grid = []
        for m in masks:
            if m.dim() != 2 or tuple(m.shape) != tuple(size):
                raise ShapeError(
                    f"each mask must be (H, W) = {tuple(size)} like the content; got {tuple(m.shape)}"
                )
            left = self.margin
            pad = (left, padded[1] - size[1] - left, left, padded[0] - size[0] - left)
            m = F.pad(m[None, None].float(), pad, mode="replicate")
            grid.append(F.interpolate(m, size=feat.shape[2:], mode="nearest")[0, 0])
        weights = torch.stack(grid)
        weights = weights / weights.sum(0, keepdim=True).clamp_min(1e-8)  # overlapping masks share
        t = torch.zeros_like(feat)
        for wk, (mean, std) in zip(weights, stats, strict=True):
            if wk.max() <= 0:
                continue
            c_mean, c_std = _masked_moments(feat, wk > 0, self.eps)
            norm = (feat - c_mean[:, :, None, None]) / c_std[:, :, None, None]
            t = t + wk * (norm * std[:, :, None, None] + mean[:, :, None, None])
        return t
