"""``stylenorm train fast|multistyle|adain|spade|cgan``: flags generated from the config schema.

Every setting of :mod:`stylenorm.train.config` is a flag (``batch_size`` ->
``--batch-size``); ``--config file.toml|.json`` supplies the same keys and
the flags given on the command line override it. Under torchrun::

    torchrun --nproc_per_node 2 -m stylenorm.train.cli fast --content DIR --style IMG --out models/NAME
"""

from __future__ import annotations

import argparse
import shlex
import sys
import types
import typing
from typing import Any

from stylenorm.train.config import RECIPE_CONFIGS, RunConfig, flag, make_config

_HELP = {
    "fast": "one style per model: TransformerNet + instance norm (Johnson et al.; pytorch/examples defaults)",
    "multistyle": "several styles in one net with a CIN style table (Dumoulin et al.)",
    "adain": "arbitrary styles: train an AdaIN decoder (Huang & Belongie)",
    "wct": "arbitrary styles by whitening and colouring: train decoders that invert the encoder (Li et al.)",
    "spade": "semantic image synthesis: label map -> image (SPADE/CLADE generator, multiscale D)",
    "cgan": "class-conditional generation: CBN generator + projection discriminator (SNGAN)",
}


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _choices(annotation: Any) -> tuple[str, ...] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return None


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _default_text(field: Any) -> str:
    if field.is_required():
        return " (required)"
    if field.default is None:  # the description says what happens
        return ""
    return f" (default: {field.default})"


def add_recipe_flags(parser: argparse.ArgumentParser, config: type[RunConfig]) -> None:
    """One flag per setting of config (all default to 'not given', so a config file can supply them)."""
    parser.add_argument("--config", metavar="FILE", help="settings file (.toml or .json); flags override it")
    fields = sorted(config.model_fields.items(), key=lambda kv: not kv[1].is_required())  # required first
    for key, field in fields:
        if key == "recipe":
            continue
        annotation = field.annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None: the X
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        help_text = f"{field.description}{_default_text(field)}"
        kwargs: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": help_text}
        if key == "resume":
            kwargs.update(nargs="?", const="latest", metavar="CHECKPOINT")
        elif _is_bool(annotation):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif _is_list(annotation):
            kwargs.update(action="append", metavar=key.upper())
        elif (choices := _choices(annotation)) is not None:
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
        else:
            kwargs["metavar"] = key.upper()
        parser.add_argument(flag(key), **kwargs)


def add_parser(subparsers: Any) -> None:
    """Register ``train`` with one sub-subcommand per recipe (each runs :func:`run`)."""
    train = subparsers.add_parser(
        "train", help="train a style-transfer or synthesis model into a model folder",
        description="Train a style-transfer, semantic-synthesis or class-conditional model. "
        "Several GPUs or machines: launch with torchrun.",
    )
    recipes = train.add_subparsers(dest="recipe", required=True, metavar="{" + ",".join(RECIPE_CONFIGS) + "}")
    for name, config in RECIPE_CONFIGS.items():
        p = recipes.add_parser(name, help=_HELP[name], description=config.__doc__)
        add_recipe_flags(p, config)
        p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The validated config of a parsed ``stylenorm train <recipe>`` command line."""
    fields = RECIPE_CONFIGS[args.recipe].model_fields
    given = {k: v for k, v in vars(args).items() if k in fields and k != "recipe"}
    return make_config(args.recipe, given, getattr(args, "config", None))


def run(args: argparse.Namespace) -> int:
    """Validate the settings, train, write the model folder; 0 on success."""
    from stylenorm.runtime import tune_cpu_allocator

    cfg = config_from_args(args)
    tune_cpu_allocator()
    from stylenorm.train.engine import train

    result = train(cfg, command=shlex.join(sys.argv))
    if result.card is not None:
        losses = result.card.provenance.get("final_losses", {})
        shown = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if not k.startswith(("lr", "images")))
        print(f"wrote {result.folder} ({result.step} steps; {shown}); logs in {cfg.runs}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m stylenorm.train.cli <recipe> …`` (for torchrun) = ``stylenorm train <recipe> …``."""
    from stylenorm.cli import main as stylenorm_main

    return stylenorm_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
