"""``adain``: arbitrary styles through adaptive instance norm on VGG features (Huang & Belongie 2017)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.families.base import (
    Capabilities,
    Request,
    StatisticsFamily,
    any_style,
    check_image,
    check_weights,
    resolve_names,
)
from stylenorm.nets.adain import AdaINNet, StyleStats, coral
from stylenorm.nets.tiling import DEFAULT_TILE, adain_stylize_tiled, tiled_style_stats
from stylenorm.nets.vgg import VGGEncoder
from stylenorm.repository import ModelCard

if TYPE_CHECKING:
    from stylenorm.models import LoadedModel


def encoder_from(arguments: dict[str, Any]) -> VGGEncoder:
    """The VGG encoder a card describes: {'encoder': {'fmt', 'depth', 'last', 'seed'}}."""
    spec = dict(arguments.get("encoder", {}))
    fmt = spec.get("fmt", "normalised")
    return VGGEncoder(
        depth=spec.get("depth", 16 if fmt == "hed" else 19),
        last=spec.get("last", "relu4_1"),
        fmt=fmt,
        seed=spec.get("seed", 0),
    )


def without_random_encoder(module: nn.Module) -> dict[str, Tensor]:
    """A state dict less a seeded random encoder's weights (rebuilt from its seed on load)."""
    state = module.state_dict()
    encoder = getattr(module, "encoder", None)
    if isinstance(encoder, VGGEncoder) and encoder.fmt == "random":
        state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    return state


class AdaINFamily(StatisticsFamily):
    name = "adain"
    kind = "stylize"
    summary = "arbitrary styles (uploads or the gallery), mixed by weights or masks, alpha"
    takes_statistics = True
    exportable = True

    def build(self, card: ModelCard) -> nn.Module:
        args = card.arguments
        return AdaINNet(encoder_from(args), eps=args.get("eps", 1e-5), unbiased=args.get("unbiased", False))

    def weights_to_save(self, card: ModelCard, module: nn.Module) -> dict[str, Tensor]:
        return without_random_encoder(module)

    def capabilities(self, card: ModelCard) -> Capabilities:
        return any_style(card, alpha=True, masks=True)

    def apply_stats(self, module: nn.Module, contents: Tensor, stats: StyleStats, alpha: Tensor) -> Tensor:
        assert isinstance(module, AdaINNet)
        return module.stylize_batch(contents, stats, alpha)

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        net, content, tile = model.module, request.content, request.tile
        assert isinstance(net, AdaINNet)
        styles = resolve_names(model, request.styles)
        if not styles:
            raise SpecError(f"adain model {model.card.name!r} needs at least one style image")
        weights = check_weights(request.weights, len(styles))
        masks = request.masks
        if masks is not None:
            masks = list(masks)
            if weights is not None:
                raise SpecError(
                    "give style weights or masks, not both: masks already decide each style's share"
                )
            if len(masks) != len(styles):
                raise ShapeError(f"need one mask per style: {len(styles)} styles, {len(masks)} masks")
            size = tuple(content.shape[2:])
            for i, m in enumerate(masks):
                if not isinstance(m, Tensor) or m.dim() != 2 or tuple(m.shape) != size:
                    got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                    raise ShapeError(f"mask {i + 1} must be (H, W) = {size} like the content; got {got}")
        host = content.device if tile is not None else device
        prepared: list[StyleStats] = []
        for i, s in enumerate(styles):
            if isinstance(s, Tensor):
                s = check_image(s, f"style image {i + 1}").float()
                limit = request.max_untiled_pixels
                big = limit is not None and s.shape[2] * s.shape[3] > limit
                style_tile = tile if tile is not None else (DEFAULT_TILE if big else None)
                if request.preserve_color:
                    # colour preservation done here so large styles can be encoded in tiles; the
                    # recoloured style depends on this content, so it is not cached
                    s = coral(s[0].to(content.device), content[0]).unsqueeze(0)
                    prepared.append(self._stats(model, net, s, style_tile, device, None))
                else:
                    prepared.append(self._stats(model, net, s, style_tile, device, request.cache))
            elif isinstance(s, tuple | list) and len(s) == 2 and all(isinstance(t, Tensor) for t in s):
                if request.preserve_color:
                    raise SpecError(
                        "preserve_color recolours style images; it cannot apply to cached statistics"
                    )
                prepared.append((s[0], s[1]))
            else:
                raise SpecError(
                    f"adain styles are images (1, 3, h, w) or cached (mean, std); style {i + 1} is a "
                    f"{type(s).__name__}" + (" (multistyle models take names)" if isinstance(s, str) else "")
                )
        # statistics (cached ones too) may sit on any device
        stats: list[Tensor | StyleStats] = [(mean.to(host), std.to(host)) for mean, std in prepared]
        alpha = request.alpha
        if tile is not None:
            return adain_stylize_tiled(net, content, stats, weights, alpha, masks, False, tile, device)
        masks_dev = None if masks is None else [m.to(device) for m in masks]
        return net.stylize(content.to(device), stats, weights, alpha, masks_dev, False)

    def export_onnx(self, module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
        from stylenorm.interop.export import export_adain

        return export_adain(module, path, opset, props)

    def check_onnx(self, module: nn.Module, paths: list[Path], sample: tuple[Tensor, ...]) -> float:
        from stylenorm.interop.export import check_adain

        return check_adain(module, paths, sample)

    @staticmethod
    def _stats(
        model: LoadedModel, net: AdaINNet, style: Tensor, tile: int | None, device: torch.device, cache: Any
    ) -> StyleStats:
        """(mean, std) of one style image: from the cache, else encoded (in tiles when tile is set)."""

        def compute() -> StyleStats:
            if tile is not None:  # the style stays on its device, tiles go to the model's
                return tiled_style_stats(net, style, tile, device)
            return net.style_stats(style.to(device))

        if cache is None:
            return compute()
        return cache.get_or_compute(model.card.name, cache.key_of(style), compute)
