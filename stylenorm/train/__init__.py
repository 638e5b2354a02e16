"""Training: one trainer (AMP, DDP, checkpoints, exact resume, logs) and six recipes.

>>> from stylenorm.train import make_config, train
>>> cfg = make_config("fast", {"content": "coco/", "style": "candy.jpg", "out": "models/candy"})
>>> train(cfg)                                                   # doctest: +SKIP

Recipes: ``fast``, ``multistyle``, ``adain``, ``wct`` (:mod:`.style`), ``spade``, ``cgan``
(:mod:`.gan`), registered in :mod:`.recipes`; what a recipe is: :mod:`.base`.

or on the command line: ``stylenorm train fast --content coco/ --style candy.jpg --out models/candy``.
Names are imported on first use, so ``stylenorm`` commands that do not train stay quick to start.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "stylenorm.train.checkpoint": ("Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"),
    "stylenorm.train.config": (
        "RECIPE_CONFIGS", "AdaINConfig", "ConfigError", "FastConfig", "MultistyleConfig", "TrainConfig",
        "WCTConfig", "make_config",
    ),
    "stylenorm.train.base": ("Phase", "Recipe", "Update"),
    "stylenorm.train.engine": ("TrainResult", "TrainingError", "train"),
    "stylenorm.train.gan": ("CGANRecipe", "SpadeRecipe"),
    "stylenorm.train.recipes": ("RECIPES", "build_recipe"),
    "stylenorm.train.style": ("AdaINRecipe", "FastRecipe", "MultistyleRecipe", "WCTRecipe"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'stylenorm.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
