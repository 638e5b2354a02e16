"""``cgan``: class-conditional generation (conditional batch norm in the generator)."""

from __future__ import annotations

from torch import Tensor, nn

from stylenorm.families.base import Family, check_classes
from stylenorm.families.spade import generator_weights
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.repository import ModelCard


class CganFamily(Family):
    name = "cgan"
    kind = "generate"
    summary = "a class name -> images of it"

    def build(self, card: ModelCard) -> nn.Module:
        g = ClassConditionalGenerator(**card.arguments)
        check_classes(card, g.num_classes, "num_classes")
        return g

    def weights_to_save(self, card: ModelCard, module: nn.Module) -> dict[str, Tensor]:
        return generator_weights(module)
