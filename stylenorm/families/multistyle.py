"""``multistyle``: several named styles in one net, conditional instance norm rows (Dumoulin et al.)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from stylenorm.errors import SpecError
from stylenorm.families.base import MAX_STYLES, Capabilities, Request, UnknownStyle, check_weights
from stylenorm.families.fast import FastFamily
from stylenorm.nets.transformer import TransformerNet
from stylenorm.repository import ModelCard, ModelError

if TYPE_CHECKING:
    from stylenorm.families.base import BatchRow
    from stylenorm.models import LoadedModel


class MultistyleFamily(FastFamily):
    name = "multistyle"
    summary = "named styles, mixed by weights (conditional instance norm)"

    def build(self, card: ModelCard) -> nn.Module:
        args = dict(card.arguments)
        args.setdefault("norm", "cin")
        args.setdefault("num_styles", len(card.styles))
        if args["num_styles"] != len(card.styles):
            raise ModelError(
                f"{card.name}: {args['num_styles']} style rows but {len(card.styles)} style names"
            )
        return TransformerNet(**args)

    def capabilities(self, card: ModelCard) -> Capabilities:
        return Capabilities(
            named_styles=True,
            uploaded_styles=False,
            max_styles=MAX_STYLES,
            min_styles=1,
            weights=True,
            alpha=False,
            preserve_color=True,
            masks=False,
        )

    def condition(self, model: LoadedModel, request: Request) -> Tensor:
        """Style names (+ weights) -> indices (1,) for one style, else mixing weights (1, S)."""
        names, styles = model.card.styles, request.styles
        if not styles:
            raise SpecError(
                f"multistyle model {model.card.name!r} needs a style name: one of {', '.join(names)}"
            )
        weights = check_weights(request.weights, len(styles))
        index = []
        for s in styles:
            if not isinstance(s, str):
                raise SpecError(
                    f"styles of multistyle model {model.card.name!r} are names ({', '.join(names)}); "
                    f"got a {type(s).__name__}"
                )
            if s not in names:
                raise UnknownStyle(
                    f"model {model.card.name!r} has no style {s!r}; valid styles: {', '.join(names)}"
                )
            index.append(names.index(s))
        if len(index) == 1:
            return torch.tensor(index)
        w = weights if weights is not None else [1.0] * len(index)
        row = torch.zeros(1, len(names))
        for i, wi in zip(index, w, strict=True):
            row[0, i] += wi / sum(w)  # a convex mix of the (γ, β) rows; a repeated name adds up
        return row

    def run_batch(self, model: LoadedModel, contents: Tensor, rows: list[BatchRow]) -> Tensor:
        names = model.card.styles
        weights = torch.zeros(len(rows), len(names))
        for i, row in enumerate(rows):
            for name, m in zip(row.names, row.mix, strict=True):
                weights[i, names.index(name)] += m
        return model.module(contents, weights.to(contents.device))

    def warmup_styles(self, model: LoadedModel) -> list[str | Tensor]:
        return [model.card.styles[0]]
