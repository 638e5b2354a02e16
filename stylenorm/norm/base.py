"""The two halves of every feature normalization, and the layer that joins them.

Every feature normalization is ``y = g · (x − μ) / σ + b``. Methods differ in
(1) the elements μ, σ are taken over — a *statistic* — and (2) where g, b come
from — a *modulation*. :class:`Normalization` pairs any statistic with any
modulation, so "SPADE over group statistics" or "CIN over batch statistics" is
one constructor call, not a new class.

Contracts (shapes are NCHW):

* A **statistic** is an ``nn.Module`` called ``stats(x, scale, shift)``. It
  normalizes ``x`` and applies ``y = x̂ · scale + shift``, where each of scale
  and shift is ``None``, per channel ``(C,)``, per sample and channel
  ``(N, C)`` or per pixel ``(N, C, H, W)``. Handing the affine to the
  statistic lets it fuse the affine into one kernel (the fast path of IN, GN,
  BN, CIN and AdaIN).
* A **modulation** is an ``nn.Module`` with a class attribute ``conditional``,
  called ``mod(x)`` or, when conditional, ``mod(x, cond)``, and returning
  ``(scale, shift)`` in one of the shapes above.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from stylenorm.errors import ShapeError

Affine = tuple[Tensor | None, Tensor | None]


def as_broadcast(t: Tensor, x: Tensor) -> Tensor:
    """View a scale/shift of shape (C,), (N, C) or (N, C, H, W) so it broadcasts over x (N, C, H, W)."""
    if t.dim() == 1:
        return t.view(1, -1, 1, 1)
    if t.dim() == 2:
        return t.view(t.shape[0], t.shape[1], 1, 1)
    return t


def modulate(x_hat: Tensor, scale: Tensor | None, shift: Tensor | None) -> Tensor:
    """``x̂ · scale + shift`` in one pass; x̂ (N, C, H, W), scale/shift (C,), (N, C), (N, C, H, W) or None;
    a scale (N, C, C) is a matrix per sample (colouring): ``scale @ x̂ + shift``."""
    if scale is None and shift is None:
        return x_hat
    if scale is not None and scale.dim() == 3:  # a matrix per sample (N, C, C): colouring, y = scale @ x̂
        n, c, h, w = x_hat.shape
        y = (scale @ x_hat.reshape(n, c, h * w).to(scale.dtype)).reshape(n, c, h, w)
        return (y if shift is None else y + as_broadcast(shift.to(y.dtype), y)).to(x_hat.dtype)
    if scale is None:
        return x_hat + as_broadcast(shift, x_hat)
    if shift is None:
        return x_hat * as_broadcast(scale, x_hat)
    return torch.addcmul(as_broadcast(shift, x_hat), x_hat, as_broadcast(scale, x_hat))


def is_per_pixel(t: Tensor | None) -> bool:
    """Whether a scale/shift varies over space (a (N, C, H, W) tensor)."""
    return t is not None and t.dim() == 4


def check_features(x: Tensor, num_features: int, who: str) -> None:
    """Raise a ShapeError unless x is (N, num_features, H, W)."""
    if x.dim() != 4:
        raise ShapeError(
            f"{who} expects a 4-D input (N, C, H, W); got shape {tuple(x.shape)}"
        )
    if x.shape[1] != num_features:
        raise ShapeError(
            f"{who} was built for {num_features} channels; got input with "
            f"{x.shape[1]} channels (shape {tuple(x.shape)})"
        )


class Modulation(nn.Module):
    """Base of the modulations: where the scale g and shift b come from."""

    conditional: ClassVar[bool] = False


class Normalization(nn.Module):
    """``y = modulation(stats(x))``: any statistic paired with any modulation.

    Called ``layer(x)``, or ``layer(x, cond)`` when the modulation is
    conditional. x is (N, C, H, W); the output has x's shape.

    The state dict is flat: the keys of the statistic and of the modulation
    sit side by side with no ``stats.``/``modulation.`` prefix, so
    ``Normalization(BatchStats(C), ChannelAffine(C))`` has exactly the keys of
    ``torch.nn.BatchNorm2d`` and loads its checkpoints unchanged.
    """

    def __init__(
        self, stats: nn.Module, modulation: Modulation | None = None, *, num_features: int
    ) -> None:
        super().__init__()
        self.num_features = num_features
        # modulation first: the state dict then lists weight, bias, running_* like torch's
        self.modulation = modulation
        self.stats = stats
        self._check_disjoint_keys()
        self._register_state_dict_hook(_flatten_parts)
        self._register_load_state_dict_pre_hook(_nest_parts, with_module=True)

    def __getattr__(self, name: str) -> Any:
        # torch code reads bn.weight, bn.running_mean, bn.eps …: look in the parts
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            for part in ("stats", "modulation"):
                sub = modules.get(part)
                if sub is not None and hasattr(sub, name):
                    return getattr(sub, name)
            raise

    @property
    def conditional(self) -> bool:
        """Whether the layer must be called with a condition: ``layer(x, cond)``."""
        return self.modulation is not None and self.modulation.conditional

    def forward(self, x: Tensor, cond: Any = None) -> Tensor:
        """Normalize x (N, C, H, W) and modulate it; cond as the modulation requires."""
        check_features(x, self.num_features, type(self).__name__)
        scale, shift = self._affine(x, cond)
        return self.stats(x, scale, shift)

    def _affine(self, x: Tensor, cond: Any) -> Affine:
        if self.modulation is None:
            if cond is not None:
                raise ShapeError(f"{self._label()} takes no condition; call it as layer(x)")
            return None, None
        if self.modulation.conditional:
            if cond is None:
                raise ShapeError(f"{self._label()} is conditional; call it as layer(x, cond)")
            return self.modulation(x, cond)
        if cond is not None:
            raise ShapeError(f"{self._label()} takes no condition; call it as layer(x)")
        return self.modulation(x)

    def _label(self) -> str:
        mod = type(self.modulation).__name__ if self.modulation is not None else "none"
        return f"{type(self).__name__}({type(self.stats).__name__} × {mod})"

    def _parts(self) -> dict[str, nn.Module]:
        parts = {"modulation": self.modulation} if self.modulation is not None else {}
        parts["stats"] = self.stats
        return parts

    def _flat_to_nested(self) -> dict[str, str]:
        mapping = {}
        for part_name, part in self._parts().items():
            for key in part.state_dict(keep_vars=True):
                mapping[key] = f"{part_name}.{key}"
        return mapping

    def _check_disjoint_keys(self) -> None:
        seen: dict[str, str] = {}
        for part_name, part in self._parts().items():
            for key in part.state_dict(keep_vars=True):
                if key in seen:
                    raise ValueError(
                        f"state-dict key {key!r} is used by both {seen[key]} and {part_name}"
                    )
                seen[key] = part_name


def _flatten_parts(module: Normalization, state_dict: dict, prefix: str, _meta: Any) -> None:
    for part_name in ("modulation", "stats"):
        head = f"{prefix}{part_name}."
        for key in [k for k in state_dict if k.startswith(head)]:
            state_dict[prefix + key[len(head):]] = state_dict.pop(key)
    # torch's BatchNorm2d stores its version here; keep loaders of old files working
    meta = getattr(state_dict, "_metadata", None)
    if meta is not None:
        for part_name in ("stats", "modulation"):
            meta.pop(f"{prefix}{part_name}", None)


def _nest_parts(
    module: Normalization,
    state_dict: dict,
    prefix: str,
    _local_metadata: Any,
    _strict: bool,
    _missing: list,
    _unexpected: list,
    _errors: list,
) -> None:
    mapping = module._flat_to_nested()
    for flat, nested in mapping.items():
        if prefix + flat in state_dict:
            state_dict[prefix + nested] = state_dict.pop(prefix + flat)
    # BatchNorm checkpoints older than torch 0.4.1 lack the batch counter
    counter = "num_batches_tracked"
    if counter in mapping and prefix + mapping[counter] not in state_dict:
        running = prefix + mapping.get("running_mean", "")
        if running in state_dict:
            state_dict[prefix + mapping[counter]] = torch.tensor(0, dtype=torch.long)
