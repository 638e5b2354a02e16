"""``wct``: universal style transfer by whitening and colouring (Li et al. 2017): any style, no style
training, decoders that only invert the encoder; SVD-free (Newton–Schulz) by default."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from stylenorm.errors import SpecError
from stylenorm.families.adain import encoder_from, without_random_encoder
from stylenorm.families.base import (
    Capabilities,
    Family,
    Request,
    any_style,
    check_weights,
    gallery_or_pattern,
    on_device,
    preserve_colors,
    refuse,
    style_images,
)
from stylenorm.nets.wct import LEVELS, Colouring, WCTNet
from stylenorm.repository import ModelCard

if TYPE_CHECKING:
    from stylenorm.models import LoadedModel


class WCTFamily(Family):
    name = "wct"
    kind = "stylize"
    summary = "arbitrary styles by whitening and colouring (WCT): uploads or the gallery, weights, alpha"
    tiles = False  # the whitening takes the statistics of the whole image
    style_statistics = True  # a style reduces to its colouring statistics per level (style_stats)
    takes_statistics = True  # run() takes them, cached, in place of images
    exportable = True
    # Newton–Schulz in float32 amplifies the runtimes' different rounding along Σ's small eigenvalues
    onnx_tolerance = 1e-2

    def build(self, card: ModelCard) -> nn.Module:
        args = card.arguments
        return WCTNet(
            encoder_from(args),
            args.get("levels", LEVELS),
            eps=args.get("eps", 1e-5),
            method=args.get("method", "newton"),
            iterations=args.get("iterations", 30),
        )

    def weights_to_save(self, card: ModelCard, module: nn.Module) -> dict[str, Tensor]:
        return without_random_encoder(module)

    def capabilities(self, card: ModelCard) -> Capabilities:
        return any_style(card, alpha=True, masks=True)

    def style_stats(self, model: LoadedModel, image: Tensor) -> Colouring:  # type: ignore[override]
        """One style image's colouring statistics at every level: the server caches them per style."""
        net = model.module
        assert isinstance(net, WCTNet)
        return net.style_stats(image)

    def warmup_styles(self, model: LoadedModel) -> list[str | Tensor]:
        return gallery_or_pattern(model)

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        net, content = model.module, request.content
        assert isinstance(net, WCTNet)
        refuse(self.name, tile=request.tile)
        given = list(request.styles)  # images, gallery names, or cached colouring statistics (dicts)
        pictures = [s for s in given if not isinstance(s, dict)]
        images = iter(style_images(model, self.name, pictures) if pictures or not given else [])
        styles: list[Tensor | Colouring] = [s if isinstance(s, dict) else next(images) for s in given]
        weights = check_weights(request.weights, len(styles))
        masks = request.masks
        if masks is not None:
            size = tuple(content.shape[2:])
            if weights is not None or len(masks) != len(styles):
                raise SpecError(f"give one mask per style ({len(styles)}) and no weights with masks")
            if any(not isinstance(m, Tensor) or tuple(m.shape) != size for m in masks):
                raise SpecError(f"each mask must be (H, W) = {size} like the content")
            masks = [m.to(device) for m in masks]
        styles_dev = [on_device(s, device) for s in styles]
        out = net.stylize(content.to(device), styles_dev, weights, request.alpha, masks)
        out = out.to(content.device)
        return preserve_colors(out.float().clamp(0, 1), content) if request.preserve_color else out

    def export_onnx(self, module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
        from stylenorm.interop.export import export_wct

        return export_wct(module, path, opset, props)

    def check_onnx(self, module: nn.Module, paths: list[Path], sample: tuple[Tensor, ...]) -> float:
        from stylenorm.interop.export import check_wct

        return check_wct(module, paths, sample)
