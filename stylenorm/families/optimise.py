"""``optimise``: no trained net; the pixels are optimised against a pretrained VGG's content and style
losses (Gatys et al. 2016). Slow (seconds to minutes), so the server runs it as polled jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from stylenorm.families.adain import encoder_from, without_random_encoder
from stylenorm.families.base import (
    Capabilities,
    Family,
    Request,
    any_style,
    check_weights,
    preserve_colors,
    refuse,
    style_images,
)
from stylenorm.repository import ModelCard

if TYPE_CHECKING:
    from stylenorm.models import LoadedModel

MAX_OPTIMISE_STYLES = 8  # each style adds a Gram target per layer to every iteration


class OptimiseFamily(Family):
    name = "optimise"
    kind = "optimise"
    summary = "any style by optimising the pixels (Gatys et al.): slow, the quality reference"
    needs_gradients = True
    tiles = False

    def build(self, card: ModelCard) -> nn.Module:
        from stylenorm.nets.optimise import OptimisationModel

        return OptimisationModel(encoder_from(card.arguments))

    def weights_to_save(self, card: ModelCard, module: nn.Module) -> dict[str, Tensor]:
        return without_random_encoder(module)

    def capabilities(self, card: ModelCard) -> Capabilities:
        return any_style(card, max_styles=MAX_OPTIMISE_STYLES, alpha=False, masks=True)

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        from stylenorm.nets.optimise import OptimisationModel, optimise

        net, content = model.module, request.content
        assert isinstance(net, OptimisationModel)
        refuse(self.name, alpha=None if request.alpha == 1.0 else request.alpha, tile=request.tile)
        images = style_images(model, self.name, request.styles, "style")
        weights = check_weights(request.weights, len(images))
        masks = request.masks
        if masks is not None:
            masks = [m.reshape(1, 1, *m.shape[-2:]).float() for m in masks]
        out = optimise(net, content, images, weights, masks, request.optimise, request.progress)
        out = out.to(content.device)
        return preserve_colors(out, content) if request.preserve_color else out
