"""One configuration schema for training, behind both the CLI flags and config files.

Each recipe has a pydantic model (:class:`FastConfig`, :class:`MultistyleConfig`,
:class:`AdaINConfig`) with the anchors' defaults. ``stylenorm train <recipe>``
builds its flags from these models, reads ``--config file.toml|.json`` (flat
keys, the flag names with ``_`` or ``-``; relative paths are relative to the
file), lets the flags given override the file, and validates the result:
every problem becomes one :class:`ConfigError` that names the flag/key.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stylenorm.errors import SpecError, StylenormError
from stylenorm.norm import make_norm, norm_entry
from stylenorm.repository import ModelError, check_name


class ConfigError(StylenormError, ValueError):
    """A training setting is missing, unknown or out of range; the message names it."""


def _recipe_norm(spec: str, conditional: bool) -> str:
    """spec if TransformerNet can use it in this recipe (cin-like for multistyle, unconditional for fast)."""
    try:
        entry = norm_entry(spec)
        if conditional and "num_styles" not in entry.options:
            raise ValueError(f"multistyle needs a style-table norm such as 'cin' or 'cin:group:8': {spec!r}")
        if not conditional and entry.conditional:
            raise ValueError(
                f"norm {spec!r} is conditional; fast trains one style with an unconditional norm such as "
                "'instance' (use multistyle for cin)"
            )
        make_norm(spec, 8, **({"num_styles": 2} if conditional else {}))  # checks the spec's arguments
    except SpecError as exc:
        raise ValueError(str(exc)) from exc
    return spec


class TrainConfig(BaseModel):
    """Settings shared by every recipe (sizes in pixels, steps in optimizer steps)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    recipe: str
    content: Path = Field(description="folder of content images (searched recursively)")
    out: Path = Field(description="model folder to write, e.g. models/candy")
    name: str | None = Field(None, description="model name in the card (default: the --out folder's name)")
    run_dir: Path | None = Field(
        None, description="where logs, sample grids and checkpoints go (default: runs/<name>)"
    )
    steps: int = Field(40_000, gt=0, description="total optimizer steps")
    batch_size: int = Field(4, gt=0, description="images per step and process")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    lr_decay: float = Field(0.0, ge=0, description="lr_i = lr / (1 + lr_decay·i)")
    image_size: int = Field(256, ge=16, description="training crop size S (S×S)")
    content_weight: float = Field(1e5, ge=0, description="weight of the content loss")
    style_weight: float = Field(1e10, ge=0, description="weight of the style loss")
    tv_weight: float = Field(0.0, ge=0, description="weight of the total-variation loss (0 = off)")
    encoder: Literal["torchvision", "normalised", "random"] = Field(
        "torchvision",
        description="loss-network weights: torchvision (ImageNet), normalised (AdaIN's VGG-19) "
        "or random (seeded; works offline, lower quality)"
    )
    encoder_weights: Path | None = Field(
        None, description="VGG weights file (default for torchvision: the torch hub cache)"
    )
    encoder_seed: int = Field(0, ge=0, description="seed of the random encoder")
    device: str | None = Field(None, description="cpu, cuda, cuda:1 … (default: cuda if available, else cpu)")
    amp: Literal["bf16", "fp16", "none"] = Field("none", description="autocast dtype")
    channels_last: bool = Field(False, description="channels-last memory format for the nets and batches")
    seed: int = Field(42, ge=0, description="seed of initialization, sampling and crops")
    workers: int = Field(4, ge=0, description="DataLoader worker processes (0 = load in the main process)")
    log_every: int = Field(10, gt=0, description="steps between loss-log rows")
    sample_every: int = Field(1000, gt=0, description="steps between sample grids")
    checkpoint_every: int = Field(2000, gt=0, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, gt=0, description="newest checkpoints kept")
    resume: str | None = Field(
        None, description="checkpoint file to resume from; 'latest' (or the flag alone): the run dir's newest"
    )
    description: str = Field("", description="free text for the model card")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_name(value)
            except ModelError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                torch.device(value)
            except (RuntimeError, ValueError) as exc:
                raise ValueError(f"not a torch device: {value!r} (use cpu, cuda or cuda:N)") from exc
        return value

    @model_validator(mode="after")
    def _encoder_weights(self) -> TrainConfig:
        if self.encoder == "random" and self.encoder_weights is not None:
            raise ValueError(
                "--encoder random takes no --encoder-weights (its weights come from --encoder-seed)"
            )
        return self

    @model_validator(mode="after")
    def _default_name(self) -> TrainConfig:
        if self.name is None:
            folder = self.out.resolve().name
            try:
                check_name(folder)
            except ModelError as exc:
                raise ValueError(
                    f"--out folder name {folder!r} is not a valid model name; give --name ({exc})"
                ) from exc
            self.name = folder
        return self

    @property
    def model_name(self) -> str:
        """The model's name (given, or the out folder's)."""
        assert self.name is not None
        return self.name

    @property
    def runs(self) -> Path:
        """The run folder: logs, samples, checkpoints (kept out of the model folder, which is for serving)."""
        return self.run_dir if self.run_dir is not None else Path("runs") / self.model_name


class FastConfig(TrainConfig):
    """Johnson et al. with instance norm (pytorch/examples fast_neural_style defaults)."""

    recipe: Literal["fast"] = "fast"
    style: Path = Field(description="the style image")
    style_size: int | None = Field(
        None, ge=16, description="resize the style image's shorter side (default: as is)"
    )
    norm: str = Field("instance", description="norm spec of the transformer net (instance, batch, group:8 …)")

    @field_validator("norm")
    @classmethod
    def _norm(cls, value: str) -> str:
        return _recipe_norm(value, conditional=False)


class MultistyleConfig(TrainConfig):
    """Dumoulin et al.: one net, a CIN style table; each sample gets a random style."""

    recipe: Literal["multistyle"] = "multistyle"
    style: list[Path] = Field(min_length=1, description="style images or folders of them (repeat the flag)")
    style_size: int | None = Field(
        None, ge=16, description="resize the style images' shorter side (default: as is)"
    )
    norm: str = Field("cin", description="conditional norm spec (cin, cin:group:8 …)")

    @field_validator("style", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value

    @field_validator("norm")
    @classmethod
    def _norm(cls, value: str) -> str:
        return _recipe_norm(value, conditional=True)


class AdaINConfig(TrainConfig):
    """Huang & Belongie: decoder-only training with the AdaIN repository's defaults."""

    recipe: Literal["adain"] = "adain"
    style: Path = Field(description="folder of style images (searched recursively)")
    steps: int = Field(160_000, gt=0, description="total optimizer steps")
    batch_size: int = Field(8, gt=0, description="content/style pairs per step and process")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate")
    lr_decay: float = Field(5e-5, ge=0, description="lr_i = lr / (1 + lr_decay·i)")
    load_size: int = Field(512, ge=16, description="shorter side before the random crop (aspect kept)")
    content_weight: float = Field(1.0, ge=0, description="weight of the content loss")
    style_weight: float = Field(10.0, ge=0, description="weight of the style loss")
    encoder: Literal["torchvision", "normalised", "random"] = Field(
        "normalised", description="encoder weights: normalised (AdaIN's vgg_normalised.pth), torchvision "
        "(ImageNet VGG-19) or random (seeded; works offline, lower quality)"
    )
    encoder_layer: Literal["relu4_1", "relu3_1"] = Field(
        "relu4_1", description="where the encoder is cut (the decoder mirrors it)"
    )
    eps: float = Field(1e-5, gt=0, description="AdaIN epsilon")

    @model_validator(mode="after")
    def _sizes(self) -> AdaINConfig:
        multiple = 8 if self.encoder_layer == "relu4_1" else 4
        if self.image_size % multiple:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of {multiple} for an encoder cut at "
                f"{self.encoder_layer}"
            )
        if self.load_size < self.image_size:
            raise ValueError(f"load_size {self.load_size} must be ≥ image_size {self.image_size}")
        return self


RECIPE_CONFIGS: dict[str, type[TrainConfig]] = {
    "fast": FastConfig,
    "multistyle": MultistyleConfig,
    "adain": AdaINConfig,
}


def flag(key: str) -> str:
    """The CLI flag of a config key: ``batch_size`` -> ``--batch-size``."""
    return "--" + key.replace("_", "-")


def _format(exc: ValidationError, source: str, recipe: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, str)]  # the setting's name (list positions dropped)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            known = ", ".join(sorted(set(RECIPE_CONFIGS[recipe].model_fields) - {"recipe"}))
            lines.append(f"unknown setting {key!r} for {recipe} in {source}; known: {known}")
            continue
        if err["type"] == "missing":
            lines.append(f"{flag(loc[0])} is required" if loc else msg)
            continue
        if not loc:  # a check across settings: its message names them
            lines.append(msg)
            continue
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{flag(loc[0])} ({loc[0]} in a config file): {msg}{shown}")
    return "invalid training settings: " + "; ".join(lines)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A flat settings dict from a .toml or .json file; relative paths are made relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"config file {path}: settings are flat keys; {key!r} is a table")
        out[key.replace("-", "_")] = value
    for key in ("content", "out", "run_dir", "encoder_weights", "style"):
        if key in out:
            out[key] = _relative_to(out[key], path.parent)
    if out.get("resume") not in (None, "latest"):
        out["resume"] = _relative_to(out["resume"], path.parent)
    return out


def _relative_to(value: Any, base: Path) -> Any:
    if isinstance(value, list):
        return [_relative_to(v, base) for v in value]
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


def make_config(
    recipe: str, overrides: Mapping[str, Any] | None = None, config_file: str | Path | None = None
) -> TrainConfig:
    """The validated settings of recipe: the file's values (if any) overridden by ``overrides``."""
    if recipe not in RECIPE_CONFIGS:
        raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPE_CONFIGS)}")
    values: dict[str, Any] = read_config_file(config_file) if config_file is not None else {}
    if values.get("recipe", recipe) != recipe:
        raise ConfigError(f"config file {config_file} is for recipe {values['recipe']!r}, not {recipe!r}")
    values.update(overrides or {})
    values["recipe"] = recipe
    source = f"config file {config_file}" if config_file is not None else "the settings"
    try:
        return RECIPE_CONFIGS[recipe].model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source, recipe)) from None


__all__ = [
    "RECIPE_CONFIGS",
    "AdaINConfig",
    "ConfigError",
    "FastConfig",
    "MultistyleConfig",
    "TrainConfig",
    "flag",
    "make_config",
    "read_config_file",
]
