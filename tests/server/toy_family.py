"""A toy model family, written the way a new one is: one module with a Family subclass.

``negative``: a learned per-channel affine map of the pixels, y = w·x + b (the shipped weights make a
photographic negative, 1 − x). Batched, no styles, optional alpha.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stylenorm.families import BatchRow, Capabilities, Family, Request
from stylenorm.families.base import refuse
from stylenorm.models import LoadedModel
from stylenorm.repository import ModelCard


class Negative(nn.Module):
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(-torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x + self.bias


class NegativeFamily(Family):
    name = "negative"
    kind = "stylize"
    summary = "the photographic negative (a toy)"
    batched = True

    def build(self, card: ModelCard) -> nn.Module:
        return Negative(**card.arguments)

    def capabilities(self, card: ModelCard) -> Capabilities:
        return Capabilities(
            named_styles=False,
            uploaded_styles=False,
            max_styles=0,
            min_styles=0,
            weights=False,
            alpha=True,
            preserve_color=False,
            masks=False,
        )

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        refuse(self.name, styles=request.styles, masks=request.masks)
        x = request.content.to(device)
        return request.alpha * model.module(x) + (1 - request.alpha) * x

    def run_batch(self, model: LoadedModel, contents: Tensor, rows: list[BatchRow]) -> Tensor:
        alpha = torch.tensor([r.alpha for r in rows], device=contents.device).view(-1, 1, 1, 1)
        return alpha * model.module(contents) + (1 - alpha) * contents
