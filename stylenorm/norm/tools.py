"""Tools over whole models: swap every normalization layer, re-estimate BN statistics.

* :func:`convert_norms` replaces every normalization layer of a model by a
  spec (``convert_norms(resnet, "group:32")``), keeping the affine, running
  statistics and hyperparameters that the new layer can hold.
* :func:`adapt_batch_norm` is AdaBN (Li et al. 2016): every BN layer's running
  mean and variance are re-estimated on new data *exactly* — pooled over all
  samples in float64 — without touching a weight or switching dropout on.
  ``torch.optim.swa_utils.update_bn`` instead averages per-batch variances
  (not the pooled variance) and runs the model in train mode (dropout on).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm.base import Normalization
from stylenorm.norm.layers import PositionalNorm
from stylenorm.norm.registry import make_norm, norm_entry
from stylenorm.norm.stats import BatchStats

__all__ = ["adapt_batch_norm", "convert_norms"]

# torch layers convert_norms recognises (nn.LayerNorm is left alone on purpose: on
# NCHW it normalizes the trailing dims, not channels, so there is no C to carry over)
_TORCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm2d)


# ----------------------------------------------------------------------------- convert_norms


def convert_norms(model: nn.Module, spec: str, **options: Any) -> nn.Module:
    """Replace every normalization layer (C channels, inputs (N, C, H, W)) by ``make_norm(spec, C)``.

    Recognised: ``nn.BatchNorm2d``, ``nn.SyncBatchNorm``, ``nn.GroupNorm``,
    ``nn.InstanceNorm2d`` and non-conditional stylenorm :class:`Normalization`
    layers. Left untouched: ``nn.LayerNorm`` (it normalizes the trailing dims,
    so its shape semantics differ), ``BatchNorm1d``/``3d``, conditional stylenorm
    layers (their call sites pass a condition), a ``PositionalNorm`` with
    ``return_stats=True`` (its call sites expect a tuple) and anything else.
    Layers are not searched inside: an :class:`IBN`'s two halves are converted
    as separate layers.

    What is kept from each old layer:

    * every state-dict entry whose key exists in the new layer with the same
      shape (affine ``weight``/``bias`` always; ``running_mean``/``running_var``/
      ``num_batches_tracked`` when both layers have them), with the
      ``requires_grad`` flag of kept parameters;
    * the hyperparameters ``eps``, ``momentum``, ``affine`` and ``bias`` when
      the spec accepts them and ``options`` does not set them (options win);
    * device, dtype and the training flag.

    All new layers are built before the first one is swapped in, so a bad spec
    leaves the model unchanged. A layer shared at several places gets one
    shared replacement. Hooks registered on old layers are not carried over.

    Returns the model, converted in place — or the new layer when the model
    itself is a normalization layer. A conditional spec raises
    :class:`SpecError`, since the model would not pass it a condition.
    """
    accepted = _target_options(spec)
    if _is_convertible(model):
        return _replacement(model, spec, accepted, options)
    sites: list[tuple[nn.Module, str, nn.Module]] = []
    _collect(model, sites, set())
    new: dict[int, nn.Module] = {}
    for _, _, old in sites:
        if id(old) not in new:
            new[id(old)] = _replacement(old, spec, accepted, options)
    for parent, name, old in sites:
        setattr(parent, name, new[id(old)])
    return model


def _target_options(spec: str) -> tuple[str, ...]:
    """The options a non-conditional layer spec accepts; SpecError for conditional or unknown ones."""
    entry = norm_entry(spec)
    if entry.conditional:
        raise SpecError(
            f"cannot convert a model's norms to the conditional spec {spec!r}: its layers are "
            f"called layer(x, cond) and the model passes no condition; use a non-conditional "
            f"spec such as 'batch', 'group:32' or 'instance'"
        )
    return entry.options


def _is_convertible(module: nn.Module) -> bool:
    if isinstance(module, Normalization):
        if isinstance(module, PositionalNorm) and module.return_stats:
            return False
        return not module.conditional
    return isinstance(module, _TORCH_NORMS)


def _collect(module: nn.Module, sites: list[tuple[nn.Module, str, nn.Module]], seen: set[int]) -> None:
    """Every (parent, attribute name, norm layer) below module, depth first."""
    if id(module) in seen:
        return
    seen.add(id(module))
    for name, child in module._modules.items():
        if child is None:
            continue
        if _is_convertible(child):
            sites.append((module, name, child))
        elif not isinstance(child, Normalization):  # conditional layers: untouched, inside too
            _collect(child, sites, seen)


def _tensor_attr(module: nn.Module, name: str) -> Tensor | None:
    value = getattr(module, name, None)
    return value if isinstance(value, Tensor) else None


def _carried_options(old: nn.Module, accepted: tuple[str, ...]) -> dict[str, Any]:
    """The old layer's eps, momentum, affine and bias, for the options the new spec accepts."""
    out: dict[str, Any] = {}
    eps = getattr(old, "eps", None)
    if "eps" in accepted and isinstance(eps, int | float) and not isinstance(eps, bool):
        out["eps"] = float(eps)
    if "momentum" in accepted and hasattr(old, "momentum"):
        momentum = old.momentum
        if momentum is None or (isinstance(momentum, int | float) and not isinstance(momentum, bool)):
            out["momentum"] = momentum
    if "affine" in accepted:
        out["affine"] = _tensor_attr(old, "weight") is not None
        if "bias" in accepted and out["affine"]:
            out["bias"] = _tensor_attr(old, "bias") is not None
    return out


def _placement(module: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of a module's first floating tensor (None, None if it has none)."""
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.device, t.dtype
    for t in module.buffers():
        return t.device, None
    return None, None


def _replacement(old: nn.Module, spec: str, accepted: tuple[str, ...], options: dict[str, Any]) -> nn.Module:
    """The new layer for old: built from spec, on old's device/dtype, with old's state where it fits."""
    channels = old.num_channels if isinstance(old, nn.GroupNorm) else old.num_features
    new = make_norm(spec, int(channels), **{**_carried_options(old, accepted), **options})
    if getattr(new, "conditional", False):
        raise SpecError(f"spec {spec!r} builds a conditional layer; convert_norms needs a plain one")
    device, dtype = _placement(old)
    if device is not None:
        new.to(device=device, dtype=dtype)
    old_state = old.state_dict(keep_vars=True)
    new_state = new.state_dict(keep_vars=True)
    kept = {
        key: value.detach()
        for key, value in old_state.items()
        if key in new_state and new_state[key].shape == value.shape
    }
    new.load_state_dict(kept, strict=False)
    for key in kept:
        if isinstance(old_state[key], nn.Parameter) and isinstance(new_state[key], nn.Parameter):
            new_state[key].requires_grad_(old_state[key].requires_grad)
    new.train(old.training)
    return new


# ----------------------------------------------------------------------------- adapt_batch_norm


def adapt_batch_norm(model: nn.Module, data: Iterable, sequential: bool = True) -> nn.Module:
    """AdaBN: set every BN layer's running mean/var to the exact pooled statistics of its inputs on data.

    ``data`` yields batches: a Tensor (N, C, H, W) (any shape the model
    takes), a tuple/list whose first element is that tensor, or a dict with key
    ``"image"`` or ``"input"``; each is moved to the model's device. For every
    BN-type layer (torch ``_BatchNorm`` with running statistics, stylenorm
    :class:`Normalization` over :class:`BatchStats` — also conditional ones)
    the per-channel count n, mean and M2 = Σ(x − mean)² of its inputs over
    *all* samples are accumulated in float64 (per-batch moments combined with
    Chan's parallel update, so no Σx² cancellation), then
    ``running_mean = mean`` and ``running_var = M2 / (n − 1)`` (unbiased, as
    BN stores it). A layer called several times per forward pools all calls.

    The model runs in eval mode under ``torch.no_grad``: no weight, affine or
    ``num_batches_tracked`` changes and dropout stays off. Every module's
    training flag is restored afterwards, and on an error every running
    statistic is restored too.

    ``sequential=True`` (exact): a later layer's inputs depend on how earlier
    layers normalize, so the layers are adapted one at a time in the order
    they are first called, each pass over the data running with the earlier
    layers already adapted — L passes over data for L layers. A one-shot
    iterator (e.g. a generator) is therefore first materialized into a list;
    pass a re-iterable (a list, a DataLoader without random augmentation) to
    avoid holding it in memory. ``sequential=False`` (one pass, L× cheaper):
    every layer's statistics come from inputs produced with the *old*
    statistics of the earlier layers, which is exact only for the first layer.

    Layers never called on the data keep their statistics (with a warning).
    Raises :class:`ShapeError` when data is empty, a batch is not one of the
    forms above, or a layer saw fewer than two values per channel. Returns
    the model (adapted in place). Statistics are per process: under DDP each
    rank adapts on its own shard.
    """
    layers = [m for m in model.modules() if _is_batch_like(m)]
    if not layers:
        return model
    if sequential and isinstance(data, Iterator):
        data = list(data)
    saved = {id(m): (_running(m)[0].clone(), _running(m)[1].clone()) for m in layers}
    flags = [(m, m.training) for m in model.modules()]
    device = _device_of(model)
    try:
        model.eval()
        with torch.no_grad():
            moments, order, batches = _pass(model, data, layers, device)
            if batches == 0:
                raise ShapeError("adapt_batch_norm got no batches: data is empty")
            never = len(layers) - len(order)
            if never:
                warnings.warn(
                    f"{never} batch-norm layer(s) were never called on the data; "
                    f"their running statistics are unchanged",
                    stacklevel=2,
                )
            if not sequential:
                for layer in order:
                    _commit(layer, moments[id(layer)])
                return model
            _commit(order[0], moments[id(order[0])])
            for layer in order[1:]:
                moments, _, _ = _pass(model, data, [layer], device)
                if id(layer) not in moments:
                    raise ShapeError(
                        "adapt_batch_norm: data yielded nothing on a second pass; sequential=True "
                        "iterates data once per layer, so pass a re-iterable (list, DataLoader)"
                    )
                _commit(layer, moments[id(layer)])
    except BaseException:
        for m in layers:
            mean, var = _running(m)
            mean.copy_(saved[id(m)][0])
            var.copy_(saved[id(m)][1])
        raise
    finally:
        for m, training in flags:
            m.training = training
    return model


def _is_batch_like(module: nn.Module) -> bool:
    if isinstance(module, _BatchNorm):
        return module.running_mean is not None and module.running_var is not None
    if isinstance(module, Normalization):
        stats = module.stats
        return isinstance(stats, BatchStats) and stats.running_mean is not None
    return False


def _running(module: nn.Module) -> tuple[Tensor, Tensor]:
    owner = module.stats if isinstance(module, Normalization) else module
    return owner.running_mean, owner.running_var


def _device_of(model: nn.Module) -> torch.device | None:
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return None


def _input_of(batch: Any) -> Tensor:
    """The input tensor of one element of data: a Tensor, (x, ...) or {"image"/"input": x}."""
    x = batch
    if isinstance(batch, tuple | list):
        if not batch:
            raise ShapeError("adapt_batch_norm got an empty tuple/list as a batch; expected (x, ...)")
        x = batch[0]
    elif isinstance(batch, dict):
        keys = [k for k in ("image", "input") if k in batch]
        if not keys:
            raise ShapeError(
                f"adapt_batch_norm got a dict batch without an 'image' or 'input' key "
                f"(keys: {sorted(map(str, batch))})"
            )
        x = batch[keys[0]]
    if not isinstance(x, Tensor):
        raise ShapeError(
            "each element of data must be a Tensor, a tuple/list starting with the input Tensor, "
            f"or a dict with key 'image' or 'input'; got {type(x).__name__}"
        )
    return x


class _Moments:
    """Per-channel count, mean and M2 of a stream of (N, C, ...) tensors, in float64."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ShapeError(f"a batch-norm layer got an input of shape {tuple(x.shape)}; need (N, C, ...)")
        nb = x.numel() // x.shape[1] if x.shape[1] else 0
        if nb == 0:
            return
        dims = [0, *range(2, x.dim())]
        var_b, mean_b = torch.var_mean(x.detach().to(torch.float64), dim=dims, correction=0)
        m2_b = var_b * nb
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mean_b, m2_b
            return
        total = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + m2_b + delta.square() * (self.n * nb / total)
        self.n = total


def _pass(
    model: nn.Module, data: Iterable, watched: list[nn.Module], device: torch.device | None
) -> tuple[dict[int, _Moments], list[nn.Module], int]:
    """Run model over data once, gathering the inputs' moments of the watched layers.

    Returns the moments by layer id, the watched layers in the order first called, and the batch count.
    """
    moments: dict[int, _Moments] = {}
    order: list[nn.Module] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs.get("x", kwargs.get("input"))
        if not isinstance(x, Tensor):
            return
        if id(module) not in moments:
            moments[id(module)] = _Moments()
            order.append(module)
        moments[id(module)].update(x)

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in watched]
    batches = 0
    try:
        for batch in data:
            x = _input_of(batch)
            if device is not None and x.device != device:
                x = x.to(device)
            model(x)
            batches += 1
    finally:
        for h in handles:
            h.remove()
    return moments, order, batches


def _commit(layer: nn.Module, m: _Moments) -> None:
    """Write pooled mean and unbiased variance into layer's running buffers."""
    if m.n < 2 or m.mean is None or m.m2 is None:
        raise ShapeError(
            f"adapt_batch_norm needs more than one value per channel for {type(layer).__name__}; "
            f"its inputs held {m.n}"
        )
    mean, var = _running(layer)
    mean.copy_(m.mean.to(mean.dtype))
    var.copy_((m.m2 / (m.n - 1)).to(var.dtype))
