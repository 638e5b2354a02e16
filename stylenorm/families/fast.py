"""``fast``: one style baked into a feed-forward net (Johnson et al.; TransformerNet + instance norm)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

from stylenorm.families.base import Capabilities, Family, Request, preserve_colors, refuse
from stylenorm.nets.tiling import transformer_tiled
from stylenorm.nets.transformer import TransformerNet
from stylenorm.repository import ModelCard

if TYPE_CHECKING:
    from stylenorm.families.base import BatchRow
    from stylenorm.models import LoadedModel


class FastFamily(Family):
    name = "fast"
    kind = "stylize"
    summary = "one style per model, baked into the weights"
    batched = True
    exportable = True
    takes_names: ClassVar[bool] = False

    def build(self, card: ModelCard) -> nn.Module:
        return TransformerNet(**card.arguments)

    def capabilities(self, card: ModelCard) -> Capabilities:
        return Capabilities(
            named_styles=False,
            uploaded_styles=False,
            max_styles=0,
            min_styles=0,
            weights=False,
            alpha=False,
            preserve_color=True,
            masks=False,
        )

    def condition(self, model: LoadedModel, request: Request) -> Tensor | None:
        """What the net takes beside the image (fast: nothing)."""
        refuse(self.name, styles=request.styles, style_weights=request.weights)
        return None

    def run(self, model: LoadedModel, request: Request, device: torch.device) -> Tensor:
        net, content = model.module, request.content
        assert isinstance(net, TransformerNet)
        alpha = None if request.alpha == 1.0 else request.alpha
        refuse(self.name, alpha=alpha, masks=request.masks)
        cond = self.condition(model, request)
        if request.tile is not None:  # the full activations stay where the content is
            out = transformer_tiled(net, content, cond, request.tile, device)
        else:
            out = net(content.to(device), None if cond is None else cond.to(device)).to(content.device)
        return preserve_colors(out.float(), content) if request.preserve_color else out

    def run_batch(self, model: LoadedModel, contents: Tensor, rows: list[BatchRow]) -> Tensor:
        return model.module(contents)

    def export_onnx(self, module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
        from stylenorm.interop.export import export_transformer

        return export_transformer(module, path, opset, props)

    def check_onnx(self, module: nn.Module, paths: list[Path], sample: tuple[Tensor, ...]) -> float:
        from stylenorm.interop.export import check_transformer

        return check_transformer(module, paths, sample)
