"""The style-transfer recipes: ``fast``, ``multistyle``, ``adain`` and ``wct``, one update each.

* ``fast`` (Johnson et al. 2016 with instance norm, as pytorch/examples
  fast_neural_style): TransformerNet, one style image, VGG-16 loss net with
  style taps relu1_2, relu2_2, relu3_3, relu4_3 (Gram loss) and content at
  relu2_2; weights 1e5 / 1e10.
* ``multistyle`` (Dumoulin et al. 2017): the same net with a ``cin`` style
  table; each sample of a batch gets a random style; the style Grams are
  computed once per style.
* ``adain`` (Huang & Belongie 2017): only the decoder of an AdaINNet learns;
  content loss MSE(enc(g(t)), t) at the encoder's last layer, mean/std style
  loss over relu1_1 … up to it; weights 1 / 10; optionally SANet's identity
  loss MSE(g(enc(c)), c) on the pixels.
* ``wct`` (Li et al. 2017): one decoder per encoder level learns to invert
  the encoder (pixel + feature reconstruction); no style is trained.

Each recipe builds its encoder first, so missing VGG weights are reported
(MissingWeightsError, naming the file) before any data is read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF
from torch import Tensor, nn

from stylenorm.data import DataError, ImageFolder, find_images, load_training_image
from stylenorm.losses.style import (
    content_loss,
    gram_matrix,
    gram_style_loss,
    mean_std_loss,
    per_sample_gram_loss,
    total_variation,
)
from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder, load_vgg_weights
from stylenorm.nets.vgg import encoder_provenance
from stylenorm.nets.wct import LEVELS as WCT_LEVELS
from stylenorm.nets.wct import WCTNet
from stylenorm.repository import ModelCard, load_weights, read_card
from stylenorm.train.base import Recipe, Update
from stylenorm.train.config import (
    GRAM_TAPS,
    AdaINConfig,
    FastConfig,
    MultistyleConfig,
    TrainConfig,
    WCTConfig,
)

log = logging.getLogger(__name__)

GRAM_CONTENT = "relu2_2"
PREVIEW = 4  # samples per sample-grid row
BALANCE_IMAGES = 8  # content images (the dataset's first) that --loss-balance start measures on
_IMAGE_CONTRACT = "RGB float in [0, 1], (N, 3, H, W)"


def build_encoder(cfg: TrainConfig, depth: int, last: str, device: torch.device) -> VGGEncoder:
    """The frozen VGG the recipe's losses use, with its weights loaded (MissingWeightsError if absent)."""
    encoder = VGGEncoder(depth=depth, last=last, fmt=cfg.encoder, seed=cfg.encoder_seed)
    if cfg.encoder == "random":
        log.warning(
            "training with the random encoder (seed %d): works offline, but expect lower quality than "
            "with pretrained VGG weights",
            cfg.encoder_seed,
        )
    load_vgg_weights(encoder, cfg.encoder_weights)
    return encoder.to(device).eval()


def encoder_depth(encoder: str, depth: int) -> int:
    """The VGG depth a recipe uses with this encoder format: ``depth``, but 16 for hed (a VGG-16 only)."""
    return 16 if encoder == "hed" else depth


def reference_contents(ds: ImageFolder, device: torch.device, n: int = BALANCE_IMAGES) -> Tensor:
    """The dataset's first n images, (n, 3, S, S), each with its index as crop seed: the same every run."""
    return torch.stack([ds[(i, i)][0] for i in range(min(n, len(ds)))]).to(device)


def _thumbnail(image: Tensor, size: int) -> Tensor:
    """(1, 3, h, w) -> (1, 3, size, size): shorter side to size, centre crop (for sample grids)."""
    image = TF.resize(image, size, antialias=True)
    return TF.center_crop(image, [size, size])


def _dataset_summary(ds: ImageFolder) -> dict[str, Any]:
    return {
        "path": str(ds.root),
        "images": len(ds),
        "skipped": len(ds.skipped),
        "skipped_files": [str(p) for p, _reason in ds.skipped[:20]],
    }


def init_from_model(net: nn.Module, folder: Path, style: str | None = None) -> None:
    """Load a saved model's weights into net, across one-style and multi-style nets.

    A one-style (C,) norm affine fills every row of a multi-style (S, C) table; a multi-style model's
    row ``style`` (a name from its card) becomes a one-style net's affine. Every tensor of net must be
    found with a fitting shape, so a mismatched model is a clear error, not a half-initialised net.
    """
    card = read_card(folder)
    source = load_weights(folder, card)
    row = None
    if style is not None:
        if style not in card.styles:
            raise DataError(
                f"--init-from {folder} has no style {style!r} (its styles: {', '.join(card.styles)})"
            )
        row = card.styles.index(style)
    state = net.state_dict()
    problems = []
    for key, target in state.items():
        value = source.get(key)
        if value is None:
            problems.append(f"{key} missing")
        elif value.shape == target.shape:
            target.copy_(value)
        elif target.dim() == 2 and value.shape == target.shape[1:]:
            target.copy_(value.expand_as(target))
        elif value.dim() == 2 and value.shape[1:] == target.shape and row is not None:
            target.copy_(value[row])
        elif value.dim() == 2 and value.shape[1:] == target.shape:
            problems.append(f"{key} is a table of {value.shape[0]} styles: name the row with --init-style")
        else:
            problems.append(f"{key}: {tuple(value.shape)} does not fit {tuple(target.shape)}")
    if problems:
        raise DataError(f"--init-from {folder} does not fit this net: {'; '.join(problems[:5])}")
    log.info("initialised from %s (%d tensors)", folder, len(state))


def init_decoder(decoder: nn.Module, folder: Path, encoder: VGGEncoder) -> None:
    """Load the decoder of a saved adain model, or a wct model's decoder at ``encoder.last``.

    The source must invert the same encoder (weights and cut): a decoder of another encoder would start
    the run from noise with the look of a trained one, so a mismatch is a clear error.
    """
    card = read_card(folder)
    source_encoder = card.arguments.get("encoder", {})
    if card.architecture == "adain":
        prefix = "decoder."
        level = source_encoder.get("last")
    elif card.architecture == "wct":
        level = encoder.last
        if level not in card.arguments.get("levels", []):
            raise DataError(
                f"--init-from {folder}: the wct model has no decoder at {level} "
                f"(its levels: {', '.join(card.arguments.get('levels', []))})"
            )
        prefix = f"decoders.by_level.{level}."
    else:
        raise DataError(
            f"--init-from {folder} is a {card.architecture} model; adain starts from an adain or wct model"
        )
    mine = {"fmt": encoder.fmt, "depth": encoder.depth, "last": encoder.last}
    theirs = {"fmt": source_encoder.get("fmt"), "depth": source_encoder.get("depth"), "last": level}
    if mine != theirs:
        raise DataError(f"--init-from {folder} decodes another encoder ({theirs}); this run's is {mine}")
    state = {k[len(prefix) :]: v for k, v in load_weights(folder, card).items() if k.startswith(prefix)}
    try:
        decoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise DataError(f"--init-from {folder} does not fit this decoder: {exc}") from exc
    log.info("decoder initialised from %s (%s at %s)", folder, card.architecture, level)


def _balance_record(mode: str, scales: dict[str, Tensor]) -> dict[str, Any]:
    """The card's record of --loss-balance: the mode and the divisors it measured."""
    if mode == "none":
        return {"mode": mode}
    return {
        "mode": mode,
        "reference_images": BALANCE_IMAGES,
        "divisors": {k: [round(float(x), 6) for x in v.flatten()] for k, v in scales.items()},
    }


def _expand_styles(entries: list[Path]) -> list[Path]:
    """Style files in table order: files as given, folders as their sorted images."""
    paths: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            scan = find_images(entry, "style folder")
            for path, reason in scan.skipped:
                log.warning("skipping unreadable style image %s: %s", path, reason)
            paths += scan.images
        else:
            paths.append(entry)
    names = [p.stem for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"style names (file stems) must be unique; {', '.join(dupes)} appear more than once")
    return paths


class _GramRecipe(Recipe):
    """fast and multistyle: a TransformerNet trained against Gram targets of a VGG loss net."""

    architecture = "fast"

    def __init__(
        self, cfg: FastConfig | MultistyleConfig, style_paths: list[Path], device: torch.device
    ) -> None:
        self.config = cfg
        self.depth = 19 if cfg.encoder == "normalised" else 16  # the AdaIN VGG exists as VGG-19 only
        self.encoder = build_encoder(cfg, self.depth, "relu4_3", device)
        self.datasets = {"content": ImageFolder(cfg.content, cfg.image_size, "center", what="content folder")}
        self.style_paths = style_paths
        grams: dict[str, list[Tensor]] = {t: [] for t in GRAM_TAPS}
        thumbs = []
        with torch.no_grad():
            for path in style_paths:
                style = load_training_image(path, cfg.style_size).to(device)
                for tap, feat in self.encoder(style, GRAM_TAPS).items():
                    grams[tap].append(gram_matrix(feat))
                thumbs.append(_thumbnail(style, cfg.image_size))
        self.style_grams = {t: torch.cat(g) for t, g in grams.items()}  # (S, C, C) per tap
        self.style_thumbs = torch.cat(thumbs)  # (S, 3, size, size)
        self.layer_weights = cfg.layer_weights()
        self.scales = self._balance(device)
        self.model = self._net().to(device)
        if cfg.init_from is not None:
            init_from_model(self.model, cfg.init_from, cfg.init_style)
        self.net = self.model  # the trainer puts its DDP wrapper here under torchrun
        self.modules = {"net": self.model}
        self.updates = [Update("net", self.model, self.loss, cfg.lr)]

    def _balance(self, device: torch.device) -> dict[str, Tensor]:
        """What each term is divided by: {tap: (S,) per style, "content": ()}; all ones without balancing.

        ``--loss-balance start``: a style layer's term by its Gram loss between the reference contents
        and that style (per style, so a faint style counts as much as a loud one), the content term by
        the mean square of the contents' features (the loss of an output with none of them).
        """
        n_styles = len(self.style_paths)
        ones = {t: torch.ones(n_styles, device=device) for t in GRAM_TAPS}
        if self.config.loss_balance == "none":
            return {**ones, "content": torch.ones((), device=device)}
        with torch.no_grad():
            feats = self.encoder(reference_contents(self.datasets["content"], device), GRAM_TAPS)
            scales = {
                t: torch.stack(
                    [gram_style_loss(feats[t], self.style_grams[t][s : s + 1]) for s in range(n_styles)]
                )
                for t in GRAM_TAPS
            }
            scales["content"] = feats[GRAM_CONTENT].float().square().mean()
        log.info(
            "loss balance (start): content %.3g; style per layer (mean over styles) %s",
            float(scales["content"]),
            ", ".join(f"{t} {float(v.mean()):.3g}" for t, v in scales.items() if t != "content"),
        )
        return scales

    def _net(self) -> TransformerNet:
        return TransformerNet(**self._arguments())

    def _styles_for(self, batch: dict[str, Tensor], n: int) -> Tensor | None:
        return None

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Content (relu2_2 MSE) + style (Gram MSE, summed over taps) [+ TV], each weighted."""
        cfg = self.config
        x = batch["content"]
        styles = self._styles_for(batch, x.shape[0])
        y = self.net(x) if styles is None else self.net(x, styles)
        feats = self.encoder(y, GRAM_TAPS)
        with torch.no_grad():
            target = self.encoder(x, (GRAM_CONTENT,))[GRAM_CONTENT]
        rows = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if styles is None else styles
        style = sum(
            w * (per_sample_gram_loss(feats[t], self.style_grams[t][rows]) / self.scales[t][rows]).mean()
            for t, w in self.layer_weights.items()
        )
        terms = {
            "content": cfg.content_weight
            * content_loss(feats[GRAM_CONTENT], target)
            / self.scales["content"],
            "style": cfg.style_weight * style,
        }
        if cfg.tv_weight > 0:
            terms["tv"] = cfg.tv_weight * total_variation(y)
        k = min(PREVIEW, x.shape[0])
        index = torch.zeros(k, dtype=torch.long) if styles is None else styles[:k].cpu()
        thumbs = self.style_thumbs[index.to(self.style_thumbs.device)]
        self._preview = (x[:k].detach(), thumbs, y[:k].detach())
        return sum(terms.values()), terms  # type: ignore[return-value]

    def card(self) -> ModelCard:
        """Architecture, constructor arguments, style names (file stems, table order), contract."""
        cfg = self.config
        styles = [p.stem for p in self.style_paths]
        return ModelCard(
            name=cfg.model_name,
            architecture=self.architecture,
            arguments=self._arguments(),
            styles=styles,
            contract={"input": _IMAGE_CONTRACT, "output": "same", **self._style_contract()},
            description=cfg.description or self._description(styles),
        )

    def _arguments(self) -> dict[str, Any]:
        return {"norm": self.config.norm, "output": self.config.output}

    def _style_contract(self) -> dict[str, Any]:
        return {}

    def _description(self, styles: list[str]) -> str:
        norm = self.config.norm
        return f"Fast style transfer (Johnson et al. 2016, {norm} norm) in the style of {styles[0]!r}."

    def provenance(self) -> dict[str, Any]:
        """Encoder, datasets and style files."""
        cfg = self.config
        return {
            "encoder": {
                "kind": cfg.encoder,
                "depth": self.depth,
                "style_layers": list(GRAM_TAPS),
                "style_layer_weights": list(self.layer_weights.values()),
                "content_layer": GRAM_CONTENT,
                **encoder_provenance(cfg.encoder, self.depth, cfg.encoder_weights, cfg.encoder_seed),
            },
            "loss_balance": _balance_record(cfg.loss_balance, self.scales),
            "data": {"content": _dataset_summary(self.datasets["content"])},
            "style_files": [str(p) for p in self.style_paths],
            "init_from": None if cfg.init_from is None else str(cfg.init_from),
            "init_style": cfg.init_style,
            "style_size": cfg.style_size or "original",
        }


class FastRecipe(_GramRecipe):
    """Johnson et al. with the ``--norm`` of choice (instance by default): one style image."""

    def __init__(self, cfg: FastConfig, device: torch.device) -> None:
        if not cfg.style.is_file():
            raise DataError(f"style image {cfg.style} not found")
        super().__init__(cfg, [cfg.style], device)


class MultistyleRecipe(_GramRecipe):
    """Dumoulin et al.: a ``cin`` TransformerNet; each sample of a batch gets a random style."""

    architecture = "multistyle"

    def __init__(self, cfg: MultistyleConfig, device: torch.device) -> None:
        super().__init__(cfg, _expand_styles(cfg.style), device)

    def _styles_for(self, batch: dict[str, Tensor], n: int) -> Tensor:
        given = batch.get("style_index")  # fixed choices (tests, evaluation); else drawn
        if given is None:
            given = torch.randint(len(self.style_paths), (n,))  # the global RNG: checkpointed
        return given.to(self.style_grams[GRAM_TAPS[0]].device)

    def _arguments(self) -> dict[str, Any]:
        return {**super()._arguments(), "num_styles": len(self.style_paths)}

    def _style_contract(self) -> dict[str, Any]:
        return {"style": "index (N,) into styles, or mixing weights (N, S)"}

    def _description(self, styles: list[str]) -> str:
        return f"Multi-style transfer (Dumoulin et al. 2017, {self.config.norm}) with {len(styles)} styles."


def arbitrary_style_card(
    cfg: AdaINConfig | WCTConfig,
    architecture: str,
    encoder: VGGEncoder,
    arguments: dict[str, Any],
    description: str,
) -> ModelCard:
    """The card of an arbitrary-style model (adain, wct): its encoder spec beside its own arguments, no
    style names (any style image)."""
    spec = {"fmt": encoder.fmt, "depth": encoder.depth, "last": encoder.last, "seed": cfg.encoder_seed}
    return ModelCard(
        name=cfg.model_name,
        architecture=architecture,
        arguments={"encoder": spec, **arguments},
        styles=[],
        contract={"input": _IMAGE_CONTRACT, "output": "same", "style": f"style image, {_IMAGE_CONTRACT}"},
        description=cfg.description or description,
    )


class AdaINRecipe(Recipe):
    """Huang & Belongie: the decoder learns to invert AdaIN(enc(content), enc(style))."""

    def __init__(self, cfg: AdaINConfig, device: torch.device) -> None:
        self.config = cfg
        self.depth = encoder_depth(cfg.encoder, 19)  # VGG-19 as the AdaIN paper; hed is a VGG-16
        encoder = build_encoder(cfg, self.depth, cfg.encoder_layer, device)
        self.model = AdaINNet(encoder, eps=cfg.eps).to(device)
        if cfg.init_from is not None:
            init_decoder(self.model.decoder, cfg.init_from, encoder)
        self.last = cfg.encoder_layer
        self.taps = cfg.style_taps
        self.layer_weights = cfg.layer_weights()
        self.net = self.model.decoder  # the trainer puts its DDP wrapper here under torchrun
        self.modules = {"net": self.model.decoder}
        self.updates = [Update("net", self.model.decoder, self.loss, cfg.lr)]
        self.datasets = {
            name: ImageFolder(folder, cfg.image_size, "random", cfg.load_size, what=f"{name} folder")
            for name, folder in (("content", cfg.content), ("style", cfg.style))
        }
        self.scales = self._balance(device)

    def _balance(self, device: torch.device) -> dict[str, Tensor]:
        """What each term is divided by: {tap: (), "content": ()}; all ones without balancing.

        ``--loss-balance start``: a style layer's term by its mean/std loss between the reference contents
        and the reference styles (every pair), the content term by the mean square of AdaIN's target t.
        """
        one = torch.ones((), device=device)
        if self.config.loss_balance == "none":
            return {**{t: one for t in self.taps}, "content": one}
        model = self.model
        with torch.no_grad():
            contents = model.encoder(reference_contents(self.datasets["content"], device), self.taps)
            styles = model.encoder(reference_contents(self.datasets["style"], device), self.taps)
            n = len(styles[self.last])
            scales = {
                t: torch.stack([mean_std_loss(contents[t], styles[t][i : i + 1]) for i in range(n)]).mean()
                for t in self.taps
            }
            k = min(n, len(contents[self.last]))
            target = model.transfer(contents[self.last][:k], styles[self.last][:k])
            scales["content"] = target.float().square().mean()
        log.info(
            "loss balance (start): content %.3g; style per layer %s",
            float(scales["content"]),
            ", ".join(f"{t} {float(scales[t]):.3g}" for t in self.taps),
        )
        return scales

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """content MSE(enc(g(t)), t) at the last layer + Σ_taps mean/std loss, each weighted."""
        cfg, model = self.config, self.model
        content, style = batch["content"], batch["style"]
        with torch.no_grad():
            style_feats = model.encoder(style, self.taps)
            content_feat = model.encode(content)
            t = model.transfer(content_feat, style_feats[self.last])
        identity = cfg.identity_weight > 0
        decoded = self.net(torch.cat([t, content_feat]) if identity else t)  # one decoder pass for both
        output = decoded[: len(t)]
        feats = model.encoder(output, self.taps)
        style_loss = sum(
            w * mean_std_loss(feats[k], style_feats[k]) / self.scales[k]
            for k, w in self.layer_weights.items()
        )
        terms = {
            "content": cfg.content_weight * content_loss(feats[self.last], t) / self.scales["content"],
            "style": cfg.style_weight * style_loss,
        }
        if identity:
            terms["identity"] = cfg.identity_weight * (decoded[len(t) :] - content).square().mean()
        if cfg.tv_weight > 0:
            terms["tv"] = cfg.tv_weight * total_variation(output)
        k = min(PREVIEW, content.shape[0])
        self._preview = (content[:k].detach(), style[:k].detach(), output[:k].detach())
        return sum(terms.values()), terms  # type: ignore[return-value]

    def card(self) -> ModelCard:
        """An ``adain`` card: encoder spec and eps (arbitrary styles, so no style names)."""
        cfg, encoder = self.config, self.model.encoder
        description = (
            f"Arbitrary style transfer (AdaIN, Huang & Belongie 2017), VGG-{encoder.depth} {cfg.encoder} "
            f"encoder cut at {self.last}."
        )
        return arbitrary_style_card(cfg, "adain", encoder, {"eps": cfg.eps}, description)

    def provenance(self) -> dict[str, Any]:
        """Encoder and both datasets."""
        cfg = self.config
        return {
            "encoder": {
                "kind": cfg.encoder,
                "depth": self.depth,
                "style_layers": list(self.taps),
                "style_layer_weights": list(self.layer_weights.values()),
                "content_layer": self.last,
                **encoder_provenance(cfg.encoder, self.depth, cfg.encoder_weights, cfg.encoder_seed),
            },
            "loss_balance": _balance_record(cfg.loss_balance, self.scales),
            "data": {name: _dataset_summary(ds) for name, ds in self.datasets.items()},
            "load_size": cfg.load_size,
            "init_from": None if cfg.init_from is None else str(cfg.init_from),
        }


class WCTRecipe(Recipe):
    """Li et al. 2017: one decoder per level learns to invert the encoder (pixel + feature loss)."""

    def __init__(self, cfg: WCTConfig, device: torch.device) -> None:
        self.config = cfg
        self.depth = 16  # the hed VGG-16, or torchvision's VGG-16
        self.levels = tuple(sorted(set(cfg.levels), key=WCT_LEVELS.index))
        encoder = build_encoder(cfg, self.depth, self.levels[-1], device)
        self.model = WCTNet(encoder, self.levels, eps=cfg.eps).to(device)
        self.net = self.model.decoders  # the trainer puts its DDP wrapper here under torchrun
        self.modules = {"net": self.model.decoders}
        self.updates = [Update("net", self.model.decoders, self.loss, cfg.lr)]
        content = ImageFolder(cfg.content, cfg.image_size, "random", cfg.load_size, what="content folder")
        self.datasets = {"content": content}
        with torch.no_grad():  # each level's feature term is divided by its features' mean square
            feats = encoder(reference_contents(self.datasets["content"], device), self.levels)
            self.scales = {level: f.float().square().mean() for level, f in feats.items()}

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Σ over levels: pixel MSE(g_l(f_l(x)), x) + feature MSE(f_l(g_l(f_l(x))), f_l(x)) / scale_l."""
        cfg, encoder = self.config, self.model.encoder
        content = batch["content"]
        with torch.no_grad():
            feats = encoder(content, self.levels)
        decoded = self.net(feats)
        terms: dict[str, Tensor] = {}
        for level in self.levels:
            out = decoded[level]
            again = encoder(out, (level,))[level]
            terms[f"pixel_{level}"] = cfg.pixel_weight * (out - content).square().mean()
            terms[f"feature_{level}"] = (
                cfg.content_weight * (again - feats[level]).square().mean() / self.scales[level]
            )
        k = min(PREVIEW, content.shape[0])
        first, last = decoded[self.levels[0]], decoded[self.levels[-1]]
        # grid rows: contents, their reconstruction at the shallowest level, and at the deepest
        self._preview = (content[:k].detach(), first[:k].detach(), last[:k].detach())
        return sum(terms.values()), terms  # type: ignore[return-value]

    def card(self) -> ModelCard:
        """A ``wct`` card: the encoder spec, the levels, eps."""
        cfg, encoder = self.config, self.model.encoder
        description = (
            f"Arbitrary style transfer by whitening and colouring (WCT, Li et al. 2017), VGG-{encoder.depth} "
            f"{cfg.encoder} encoder, decoders at {', '.join(self.levels)}."
        )
        arguments = {"levels": list(self.levels), "eps": cfg.eps}
        return arbitrary_style_card(cfg, "wct", encoder, arguments, description)

    def provenance(self) -> dict[str, Any]:
        """Encoder, levels and the data."""
        cfg = self.config
        return {
            "encoder": {
                "kind": cfg.encoder,
                "depth": self.depth,
                "levels": list(self.levels),
                **encoder_provenance(cfg.encoder, self.depth, cfg.encoder_weights, cfg.encoder_seed),
            },
            "data": {name: _dataset_summary(ds) for name, ds in self.datasets.items()},
            "load_size": cfg.load_size,
        }


__all__ = [
    "GRAM_CONTENT",
    "GRAM_TAPS",
    "AdaINRecipe",
    "FastRecipe",
    "MultistyleRecipe",
    "WCTRecipe",
]
