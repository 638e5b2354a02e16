"""Cross-Iteration Batch Normalization (CBN, Yao et al. 2020) and plain accumulation (CmBN-like).

Batch statistics are averaged over the current iteration and up to ``window − 1``
previous ones. With the weight of the preceding conv the past statistics are first
moved to the current weights by a first-order Taylor expansion (CBN); without it
they are averaged as they are (the accumulation of CmBN / darknet "subdivisions").

:class:`CrossIterBatchStats` is the statistic (``stats(x, scale, shift, weight=None)``);
:class:`CrossIterBatchNorm2d` is the layer that passes the conv weight through::

    conv, norm = nn.Conv2d(64, 128, 3), CrossIterBatchNorm2d(128, window=3)
    y = norm(conv(x), conv.weight)

Built from a spec (``make_norm("cross_iter_batch:3", C)``) the layer is called
``layer(x)`` and therefore does plain accumulation; use :class:`CrossIterBatchNorm2d`
for the Taylor compensation.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from stylenorm.errors import ShapeError
from stylenorm.norm.base import Normalization, check_features, modulate
from stylenorm.norm.modulation import ChannelAffine
from stylenorm.norm.registry import one_int, register_affine_layer, register_stats
from stylenorm.norm.stats import _apply_moments, _per_channel, _RunningStats


class _Past(NamedTuple):
    """One stored iteration: its moments and, when compensating, its weight and their gradients."""

    mean: Tensor  # (C,) μ
    var: Tensor  # (C,) biased variance ν − μ²
    weight: Tensor | None  # the conv weight at that iteration (C, …)
    dmean: Tensor | None  # ∂μ_c/∂W_c, weight-shaped
    dsecond: Tensor | None  # ∂ν_c/∂W_c, weight-shaped


def _stats_dtype(x: Tensor) -> torch.dtype:
    """float32/float64 stay as they are; half and bfloat16 statistics are kept in float32 (as BN's)."""
    return torch.promote_types(x.dtype, torch.float32)


class CrossIterBatchStats(_RunningStats):
    """Batch statistics averaged over the last ``window`` iterations, Taylor-compensated (CBN).

    Training, per channel: μ_t = E[x] and ν_t = E[x²] over (N, H, W) of the
    current batch (differentiable) and the stored, detached μ, ν of up to
    ``window − 1`` previous iterations are averaged: μ̄ = mean of μ,
    σ̄² = mean of ν − μ̄² (biased, clamped at 0; computed in the equivalent,
    cancellation-free form mean(σ²_τ + (μ_τ − μ̄)²)). The output is
    ``(x − μ̄)/sqrt(σ̄² + ε) · scale + shift`` in one pass. ε is inside the
    sqrt, as in BN; the official code (``out_p=False``, its default) divides by
    ``sqrt(σ̄²) + ε`` instead. The first iterations (and those after
    :meth:`reset_history`) use the history that exists, so step 1 is plain BN.

    Taylor compensation: when ``compensate`` and the preceding conv's ``weight``
    (shape (C, …), requiring grad, with x computed from it) is passed to
    :meth:`forward`, each stored iteration also keeps that weight and the
    weight-shaped ∂μ_c/∂W_c, ∂ν_c/∂W_c (two ``autograd.grad`` calls per step).
    Past moments are then moved to the current weight W_t:
    ``μ_τ(W_t) ≈ μ_τ + Σ_row ∂μ_τ/∂W ⊙ (W_t − W_τ)``, likewise ν, and, per
    channel, past iterations whose compensated variance ν − μ² is negative are
    dropped (as the official code does; the current one is always kept). The
    compensation uses W_t detached, so gradients reach x and W only through the
    current iteration. Memory: ``window − 1`` stored iterations × (2 weight-sized
    gradients + 1 weight copy) per layer, i.e. ≈ 3 (k − 1) × the conv's weight.
    Without ``weight`` (or with ``compensate=False``) the past moments are
    averaged unchanged; a conv transpose weight ((C_in, C_out, …)) is not supported.

    Running buffers and eval are exactly ``torch.nn.BatchNorm2d``'s: the running
    mean/var follow torch's momentum rule (``None`` = cumulative average) from
    the current iteration's mean and unbiased variance, not the averaged ones.
    ``window=1`` is ``BatchNorm2d``. The history is not part of the state dict
    and is cleared when a state dict is loaded; it is stored detached on x's
    device in x's dtype (float32 for half/bfloat16 inputs).
    """

    def __init__(
        self,
        num_features: int,
        window: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        compensate: bool = True,
    ) -> None:
        if not isinstance(window, int) or window < 1:
            raise ShapeError(f"cross-iteration BN needs a window k >= 1 iterations; got {window!r}")
        super().__init__(num_features, eps, momentum, True)
        self.window = window
        self.compensate = compensate
        self._history: deque[_Past] = deque(maxlen=window - 1)

    def reset_history(self) -> None:
        """Forget the stored iterations (e.g. between epochs or after loading weights)."""
        self._history.clear()

    def history_moments(self, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The stored iterations' (μ, ν), each (T, C), newest first; compensated to weight (C, …) if given."""
        if not self._history:
            empty = self.running_mean.new_zeros(0, self.num_features)
            return empty, empty.clone()
        mean, var = self._past_moments(weight)
        return mean, var + mean.square()

    def forward(
        self,
        x: Tensor,
        scale: Tensor | None = None,
        shift: Tensor | None = None,
        weight: Tensor | None = None,
    ) -> Tensor:
        """x (N, C, H, W), weight of the conv that made x (C, …) or None -> x̂ · scale + shift."""
        check_features(x, self.num_features, type(self).__name__)
        if weight is not None and (weight.dim() < 1 or weight.shape[0] != self.num_features):
            raise ShapeError(
                f"the conv weight must have {self.num_features} output channels first (C, …); "
                f"got shape {tuple(weight.shape)}"
            )
        if not self.training:
            return self._normalize_by_running(x, scale, shift)
        fused = _per_channel(scale, shift)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if count < 2:
            raise ShapeError(
                f"cross-iteration BN needs more than one value per channel in training; "
                f"got input of shape {tuple(x.shape)}"
            )
        factor = self._next_factor()
        self._convert_history(x)
        if not self._history:  # window 1 or nothing stored yet: exactly BatchNorm2d
            y = F.batch_norm(
                x, self.running_mean, self.running_var,
                scale if fused else None, shift if fused else None, True, factor, self.eps,
            )
            if self.window > 1:
                var_t, mean_t = torch.var_mean(x.to(_stats_dtype(x)), dim=(0, 2, 3), correction=0)
                self._push(mean_t, var_t, weight)
            return y if fused else modulate(y, scale, shift)

        var_t, mean_t = torch.var_mean(x.to(_stats_dtype(x)), dim=(0, 2, 3), correction=0)
        self._update(mean_t.detach(), var_t.detach() * (count / (count - 1)), factor)
        past_mean, past_var = self._past_moments(weight)  # (T, C), detached
        valid = past_var >= 0
        n = valid.sum(0) + 1
        mean = (mean_t + torch.where(valid, past_mean, 0).sum(0)) / n
        spread = torch.where(valid, past_var + (past_mean - mean).square(), 0).sum(0)
        var = ((var_t + (mean_t - mean).square() + spread) / n).clamp_min(0)
        inv_std = torch.rsqrt(var + self.eps)
        self._push(mean_t, var_t, weight)
        return _apply_moments(x, mean.to(x.dtype), inv_std.to(x.dtype), scale, shift)

    def _push(self, mean_t: Tensor, var_t: Tensor, weight: Tensor | None) -> None:
        """Store this iteration's moments (C,) and, when compensating, dμ/dW, dν/dW and W."""
        w = dmean = dsecond = None
        if (
            self.compensate and weight is not None and weight.requires_grad
            and mean_t.requires_grad and torch.is_grad_enabled()
        ):
            second = var_t + mean_t.square()
            dmean, dsecond = (
                torch.autograd.grad(s.sum(), weight, retain_graph=True, allow_unused=True)[0]
                for s in (mean_t, second)
            )
            if dmean is None or dsecond is None:
                raise ShapeError(
                    "cross-iteration BN was given a conv weight that its input does not depend on; "
                    "pass the weight of the conv that produced x"
                )
            w = weight.detach().clone()  # the optimizer updates the parameter in place
        self._history.appendleft(_Past(mean_t.detach(), var_t.detach(), w, dmean, dsecond))

    def _past_moments(self, weight: Tensor | None) -> tuple[Tensor, Tensor]:
        """Stored (μ, σ² = ν − μ²), each (T, C), compensated to weight where possible."""
        use = weight.detach() if self.compensate and weight is not None else None
        means, variances = [], []
        for past in self._history:
            mean, var = past.mean, past.var
            if use is not None and past.weight is not None and past.weight.shape == use.shape:
                delta = use.to(past.weight) - past.weight
                dm = (past.dmean * delta).reshape(self.num_features, -1).sum(1).to(mean)
                dn = (past.dsecond * delta).reshape(self.num_features, -1).sum(1).to(mean)
                # ν' − μ'² with ν' = var + μ² + dn and μ' = μ + dm
                mean, var = mean + dm, var + dn - dm * (2 * mean + dm)
            means.append(mean)
            variances.append(var)
        return torch.stack(means), torch.stack(variances)

    def _convert_history(self, x: Tensor) -> None:
        """Move the stored moments to x's device and statistics dtype (after .to() or a dtype change)."""
        dtype = _stats_dtype(x)
        if not self._history:
            return
        head = self._history[0].mean
        if head.dtype != dtype or head.device != x.device:
            converted = [
                p._replace(
                    mean=p.mean.to(x.device, dtype),
                    var=p.var.to(x.device, dtype),
                    **{
                        k: getattr(p, k).to(x.device)
                        for k in ("weight", "dmean", "dsecond")
                        if getattr(p, k) is not None
                    },
                )
                for p in self._history
            ]
            self._history.clear()
            self._history.extend(converted)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.reset_history()
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", window={self.window}, compensate={self.compensate}"


@register_stats(
    "cross_iter_batch", "cross_iter_batch:k", "Cross-Iteration BN over the last k iterations",
    ("eps", "momentum", "compensate"), max_args=1,
)
def _cross_iter_stats(c: int, args: list[str], spec: str, **o: Any) -> CrossIterBatchStats:
    return CrossIterBatchStats(c, window=one_int(spec, args, "the window k"), **o)


register_affine_layer("cross_iter_batch", True, "Cross-Iteration BatchNorm / CmBN over k iterations")


class CrossIterBatchNorm2d(Normalization):
    """Cross-Iteration BN with a per-channel affine, called ``layer(x, conv.weight)`` (or ``layer(x)``).

    ``CrossIterBatchStats`` × ``ChannelAffine`` (weight 1, bias 0; the official
    code starts the weight at uniform(0, 1)). The state dict has exactly
    ``torch.nn.BatchNorm2d``'s keys, and ``window=1`` is ``BatchNorm2d``.
    """

    def __init__(
        self,
        num_features: int,
        window: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        compensate: bool = True,
        affine: bool = True,
    ) -> None:
        stats = CrossIterBatchStats(num_features, window, eps=eps, momentum=momentum, compensate=compensate)
        super().__init__(stats, ChannelAffine(num_features, affine=affine), num_features=num_features)

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """x (N, C, H, W) made by a conv with weight (C, …) (None: plain accumulation) -> same shape."""
        check_features(x, self.num_features, type(self).__name__)
        scale, shift = self._affine(x, None)
        return self.stats(x, scale, shift, weight=weight)

    def reset_history(self) -> None:
        """Forget the stored iterations (e.g. between epochs or after loading weights)."""
        self.stats.reset_history()
