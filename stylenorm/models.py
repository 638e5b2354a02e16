"""Build and load the models of the repository: a card's architecture + arguments -> nn.Module.

The card's architecture names a family (:mod:`stylenorm.families`), which builds the module; training
(which writes model folders), ``stylenorm stylize`` and the server all load models the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stylenorm.families import FAMILIES, family_of
from stylenorm.families.adain import encoder_from
from stylenorm.repository import (
    ModelCard,
    ModelError,
    check_name,
    load_weights,
    read_card,
    scan,
)
from stylenorm.repository import (
    models_dir as resolve_models_dir,
)


def build(card: ModelCard) -> nn.Module:
    """A freshly initialized module for the card's architecture and arguments."""
    family = family_of(card)
    family.capabilities(card)  # a contract it cannot serve (a default_alpha out of range) fails here
    try:
        return family.build(card)
    except TypeError as exc:  # an argument the constructor does not take
        raise ModelError(f"{card.name}: bad arguments {card.arguments}: {exc}") from exc


def weights_to_save(card: ModelCard, model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a model folder stores, as its family says: all of them by default; less a seeded
    random encoder (rebuilt on load); for GANs the generator (its moving average when there is one)."""
    return family_of(card).weights_to_save(card, model)


@dataclass
class LoadedModel:
    """A model from the repository, ready for inference."""

    card: ModelCard
    module: nn.Module
    folder: Path


def resolve(name_or_path: str | Path, models_dir: str | Path | None = None) -> Path:
    """A model folder from a path, or a model name looked up in models_dir (default: the resolved one)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = check_name(str(name_or_path))
    where = resolve_models_dir(models_dir)
    found, broken = scan(where)
    if name in found:
        return found[name]
    if name in broken:
        raise ModelError(f"model {name!r} is broken: {broken[name]}")
    raise ModelError(f"no model named {name!r} in {where}; available: {', '.join(found) or 'none'}")


def load(
    name_or_path: str | Path, models_dir: str | Path | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Read a model folder, check its weights' checksum, build the module in eval mode on device."""
    folder = resolve(name_or_path, models_dir)
    card = read_card(folder)
    module = build(card)
    state = load_weights(folder, card)
    expected = weights_to_save(card, module)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{folder}: weights do not fit a {card.architecture} model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise ModelError(f"{folder}: weights do not fit the card's arguments: {exc}") from exc
    module.to(device=device, dtype=torch.float32).eval()
    return LoadedModel(card, module, folder)


__all__ = ["FAMILIES", "LoadedModel", "build", "encoder_from", "load", "resolve", "weights_to_save"]
