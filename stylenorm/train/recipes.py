"""The training recipes by name: one line per recipe (its settings: :mod:`stylenorm.train.config`)."""

from __future__ import annotations

from typing import Any

import torch

from stylenorm.train.base import Recipe
from stylenorm.train.gan import CGANRecipe, SpadeRecipe
from stylenorm.train.style import AdaINRecipe, FastRecipe, MultistyleRecipe, WCTRecipe

RECIPES: dict[str, type[Recipe]] = {
    "fast": FastRecipe,
    "multistyle": MultistyleRecipe,
    "adain": AdaINRecipe,
    "wct": WCTRecipe,
    "spade": SpadeRecipe,
    "cgan": CGANRecipe,
}


def build_recipe(cfg: Any, device: torch.device) -> Recipe:
    """The recipe object for ``cfg.recipe``, built on device."""
    return RECIPES[cfg.recipe](cfg, device)


__all__ = ["RECIPES", "build_recipe"]
