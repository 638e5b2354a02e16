"""``spade``: images synthesized from semantic label maps (Park et al. 2019, GauGAN)."""

from __future__ import annotations

from torch import Tensor, nn

from stylenorm.families.base import Family, check_classes
from stylenorm.nets.spade import SPADEGenerator
from stylenorm.repository import ModelCard


def generator_weights(module: nn.Module) -> dict[str, Tensor]:
    """What a GAN model folder stores: from a training pair (``generator``, ``discriminator``, maybe
    ``ema``) the moving average when there is one, else the generator; never the discriminator."""
    for attribute in ("ema", "generator"):
        part = getattr(module, attribute, None)
        if isinstance(part, nn.Module):
            return part.state_dict()
    return module.state_dict()


class SpadeFamily(Family):
    name = "spade"
    kind = "synthesize"
    summary = "label map (+ optional style image) -> image"

    def build(self, card: ModelCard) -> nn.Module:
        g = SPADEGenerator(**card.arguments)
        check_classes(card, g.label_nc, "label_nc")
        return g

    def weights_to_save(self, card: ModelCard, module: nn.Module) -> dict[str, Tensor]:
        return generator_weights(module)
