"""Build and load the models of the repository: a card's architecture + arguments -> nn.Module.

One place maps architecture names to constructors, so training (which writes
model folders), ``stylenorm stylize`` and the server all load models the
same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylenorm.color import ColorTransfer
from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.nets.spade import SPADEGenerator
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


def _fast(card: ModelCard) -> nn.Module:
    return TransformerNet(**card.arguments)


def _multistyle(card: ModelCard) -> nn.Module:
    args = dict(card.arguments)
    args.setdefault("norm", "cin")
    args.setdefault("num_styles", len(card.styles))
    if args["num_styles"] != len(card.styles):
        raise ModelError(f"{card.name}: {args['num_styles']} style rows but {len(card.styles)} style names")
    return TransformerNet(**args)


def encoder_from(arguments: dict[str, Any]) -> VGGEncoder:
    """The VGG encoder an AdaIN or optimise card describes: {'encoder': {'fmt', 'depth', 'last', 'seed'}}."""
    spec = dict(arguments.get("encoder", {}))
    fmt = spec.get("fmt", "normalised")
    return VGGEncoder(
        depth=spec.get("depth", 16 if fmt == "hed" else 19),
        last=spec.get("last", "relu4_1"),
        fmt=fmt,
        seed=spec.get("seed", 0),
    )


def _adain(card: ModelCard) -> nn.Module:
    args = card.arguments
    return AdaINNet(encoder_from(args), eps=args.get("eps", 1e-5), unbiased=args.get("unbiased", False))


def _optimise(card: ModelCard) -> nn.Module:
    from stylenorm.optimise import OptimisationModel

    return OptimisationModel(encoder_from(card.arguments))


def _color(card: ModelCard) -> nn.Module:
    return ColorTransfer()


def _check_classes(card: ModelCard, n: int, what: str) -> None:
    """The contract's class names (and palette) must fit the generator's n classes."""
    classes = card.contract.get("classes")
    if classes is not None and len(classes) != n:
        raise ModelError(f"{card.name}: {len(classes)} class names in the contract but {what} {n}")
    palette = card.contract.get("palette")
    if palette is not None:
        if len(palette) != n:
            raise ModelError(f"{card.name}: {len(palette)} palette colours but {what} {n}")
        packed = [tuple(c) for c in palette]
        if len(set(packed)) != n or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in packed):
            raise ModelError(f"{card.name}: the palette needs {n} distinct [r, g, b] colours in 0..255")


def _spade(card: ModelCard) -> nn.Module:
    g = SPADEGenerator(**card.arguments)
    _check_classes(card, g.label_nc, "label_nc")
    return g


def _cgan(card: ModelCard) -> nn.Module:
    g = ClassConditionalGenerator(**card.arguments)
    _check_classes(card, g.num_classes, "num_classes")
    return g


BUILDERS: dict[str, Callable[[ModelCard], nn.Module]] = {
    "fast": _fast,
    "multistyle": _multistyle,
    "adain": _adain,
    "optimise": _optimise,
    "color": _color,
    "spade": _spade,
    "cgan": _cgan,
}
GAN_ARCHITECTURES = ("spade", "cgan")


def build(card: ModelCard) -> nn.Module:
    """A freshly initialized module for the card's architecture and arguments."""
    if card.architecture not in BUILDERS:
        raise ModelError(
            f"{card.name}: unknown architecture {card.architecture!r}; known: {', '.join(BUILDERS)}"
        )
    try:
        return BUILDERS[card.architecture](card)
    except TypeError as exc:  # an argument the constructor does not take
        raise ModelError(f"{card.name}: bad arguments {card.arguments}: {exc}") from exc


def weights_to_save(card: ModelCard, model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a model folder stores: all of them, less a seeded random encoder (rebuilt on load).

    GAN models store the generator only: from a training pair (a module with
    ``generator``, ``discriminator`` and optionally ``ema`` attributes) the
    moving average when there is one, else the generator; never the discriminator.
    """
    if card.architecture in GAN_ARCHITECTURES:
        for attribute in ("ema", "generator"):
            part = getattr(model, attribute, None)
            if isinstance(part, nn.Module):
                return part.state_dict()
        return model.state_dict()
    state = model.state_dict()
    encoder = getattr(model, "encoder", None)
    if (
        card.architecture in ("adain", "optimise")
        and isinstance(encoder, VGGEncoder)
        and encoder.fmt == "random"
    ):
        state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    return state


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


__all__ = ["BUILDERS", "LoadedModel", "build", "encoder_from", "load", "resolve", "weights_to_save"]
