"""One callable example per norm spec: the options it needs and a condition of the right kind."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.norm import make_norm

# spec -> (options, condition maker (x -> cond) or None)
CASES: dict[str, tuple[dict, Callable[[Tensor], object] | None]] = {
    "none": ({}, None),
    "batch": ({}, None),
    "sync_batch": ({}, None),
    "batch_renorm": ({}, None),
    "cross_iter_batch:2": ({}, None),
    "instance": ({"affine": True}, None),
    "layer": ({}, None),
    "group:2": ({}, None),
    "zca:2": ({}, None),
    "iternorm:2": ({"iterations": 8}, None),
    "instance_whiten:2": ({"affine": True}, None),
    "switchable": ({}, None),
    "lrn:3": ({}, None),
    "ibn:0.5": ({}, None),
    "frn": ({}, None),
    "pono": ({}, None),
    "rms": ({}, None),
    "evo_b0": ({}, None),
    "evo_s0:2": ({}, None),
    "cin": ({"num_styles": 3}, lambda x: torch.arange(x.shape[0]) % 3),
    "cbn": ({"num_classes": 3}, lambda x: torch.arange(x.shape[0]) % 3),
    "cbn:instance": ({"cond_dim": 5}, lambda x: torch.randn(x.shape[0], 5, dtype=x.dtype)),
    "adain": ({}, lambda x: torch.randn(x.shape[0], x.shape[1], 3, 5, dtype=x.dtype)),
    "wct": ({}, lambda x: torch.randn(x.shape[0], x.shape[1], 3, 5, dtype=x.dtype)),
    "spade:instance:3x3": ({"label_nc": 3, "hidden": 8}, lambda x: _segmap(x, 3)),
    "spade:batch:3x3": ({"label_nc": 3, "hidden": 8}, lambda x: _segmap(x, 3)),
    "clade": ({"label_nc": 3}, lambda x: _segmap(x, 3)),
    "film": ({"cond_dim": 5}, lambda x: torch.randn(x.shape[0], 5, dtype=x.dtype)),
}


def _segmap(x: Tensor, label_nc: int) -> Tensor:
    labels = torch.randint(0, label_nc, (x.shape[0], x.shape[2] // 2 or 1, x.shape[3] // 2 or 1))
    return F.one_hot(labels, label_nc).permute(0, 3, 1, 2).to(x.dtype)


def build(spec: str, channels: int) -> tuple[nn.Module, Callable[[Tensor], object] | None]:
    """The layer for a spec with the options its example needs, and its condition maker."""
    options, cond = CASES[spec]
    return make_norm(spec, channels, **options), cond


def call(layer: nn.Module, x: Tensor, cond: object) -> Tensor:
    """layer(x) or layer(x, cond); a PONO tuple result gives its first element."""
    y = layer(x) if cond is None else layer(x, cond)
    return y[0] if isinstance(y, tuple) else y
