"""``color``: colour transfer, AdaIN on pixel statistics in lαβ (Reinhard et al. 2001); no weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from stylenorm.errors import SpecError
from stylenorm.families.base import (
    Capabilities,
    Request,
    StatisticsFamily,
    check_image,
    refuse,
    resolve_names,
)
from stylenorm.nets.color import ColorTransfer
from stylenorm.repository import ModelCard

if TYPE_CHECKING:
    from stylenorm.models import LoadedModel
    from stylenorm.nets.adain import StyleStats


class ColorFamily(StatisticsFamily):
    name = "color"
    kind = "stylize"
    summary = "the colours of one style image (no network)"
    tiles = False  # pixelwise with global statistics: tiles would change nothing
    reduced_precision = False  # log10 of tiny values
    channels_last = False  # pixelwise: 1.07-1.11× the contiguous time (bench/e2e.py)

    def build(self, card: ModelCard) -> nn.Module:
        return ColorTransfer()

    def capabilities(self, card: ModelCard) -> Capabilities:
        return Capabilities(
            named_styles=bool(card.styles),
            uploaded_styles=True,
            max_styles=1,
            min_styles=1,
            weights=False,
            alpha=True,
            preserve_color=False,
            masks=False,
            gallery=True,
        )

    def apply_stats(self, module: nn.Module, contents: Tensor, stats: StyleStats, alpha: Tensor) -> Tensor:
        assert isinstance(module, ColorTransfer)
        return module.transfer_stats(contents, stats, alpha)

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        refuse(
            self.name,
            style_weights=request.weights,
            masks=request.masks,
            preserve_color=request.preserve_color,
        )
        styles = resolve_names(model, request.styles)
        if len(styles) != 1 or not isinstance(styles[0], Tensor):
            raise SpecError(f"color models take exactly one style image; got {len(styles)} style(s)")
        style = check_image(styles[0], "style image")
        return model.module(request.content.to(device), style.to(device), request.alpha)
