"""Colour transfer (Reinhard et al. 2001): AdaIN on pixel statistics in the decorrelated lαβ space.

No weights and instant: the content's per-channel mean and std in lαβ are
replaced by the style's. A useful tool of its own and the baseline of the
learned models.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stylenorm.errors import ShapeError
from stylenorm.norm import make_norm, style_moments

# Reinhard et al. 2001: RGB -> LMS, then log10, then an orthogonal decorrelating transform.
_RGB2LMS = torch.tensor([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
_LMS2LAB = torch.diag(torch.tensor([3.0, 6.0, 2.0]).rsqrt()) @ torch.tensor(
    [[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]]
)
_FLOOR = 1.0 / 512  # keeps log10 finite on black pixels


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 3, H, W) lαβ."""
    lms = torch.einsum("ij,njhw->nihw", _RGB2LMS.to(rgb), rgb).clamp_min(_FLOOR)
    return torch.einsum("ij,njhw->nihw", _LMS2LAB.to(rgb), torch.log10(lms))


def lab_to_rgb(lab: Tensor) -> Tensor:
    """(N, 3, H, W) lαβ -> (N, 3, H, W) RGB clamped to [0, 1]."""
    lms = torch.pow(10.0, torch.einsum("ij,njhw->nihw", torch.linalg.inv(_LMS2LAB).to(lab), lab))
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2LMS).to(lab), lms).clamp(0, 1)


class ColorTransfer(torch.nn.Module):
    """Colour transfer: content (N, 3, H, W) takes the colour statistics of style (N or 1, 3, h, w)."""

    def __init__(self) -> None:
        super().__init__()
        self.adain = make_norm("adain", 3, eps=1e-8)

    def forward(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """-> (N, 3, H, W) RGB in [0, 1]; alpha blends from the content (0) to full transfer (1)."""
        for name, t in (("content", content), ("style", style)):
            if t.dim() != 4 or t.shape[1] != 3:
                raise ShapeError(f"{name} must be RGB images (N, 3, H, W); got {tuple(t.shape)}")
        if not 0.0 <= alpha <= 1.0:
            raise ShapeError(f"alpha must be in [0, 1]; got {alpha}")
        lab = rgb_to_lab(content)
        out = self.adain(lab, rgb_to_lab(style))
        return lab_to_rgb(alpha * out + (1 - alpha) * lab)

    def style_stats(self, style: Tensor) -> tuple[Tensor, Tensor]:
        """The statistics the transfer takes of one style image (1, 3, h, w): lαβ (mean, std), each (1, 3)."""
        mod = self.adain.modulation
        return style_moments(rgb_to_lab(style), mod.eps if mod.unbiased else 0.0, mod.unbiased)

    def transfer_stats(
        self, content: Tensor, stats: tuple[Tensor, Tensor], alpha: Tensor | float = 1.0
    ) -> Tensor:
        """Contents (N, 3, H, W), each with its own lαβ statistics (mean, std), each (N, 3), and alpha (a
        number or (N, 1, 1, 1)) -> (N, 3, H, W) RGB: the server's batched pass."""
        lab = rgb_to_lab(content)
        return lab_to_rgb(alpha * self.adain(lab, stats) + (1 - alpha) * lab)
