"""Weight-side normalizations: weight norm, spectral norm, cosine normalization.

``weight_norm`` and ``spectral_norm`` are thin wrappers over torch's
parametrizations, so state dicts are exactly torch's. ``weight_norm`` adds the
data-dependent initialization of Salimans & Kingma (2016), which torch lacks.
``CosineLinear`` / ``CosineConv2d`` implement Cosine Normalization (Luo et al. 2017).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair
from torch.nn.utils import parametrizations

from stylenorm.errors import ShapeError, SpecError

__all__ = ["CosineConv2d", "CosineLinear", "spectral_norm", "weight_norm"]

# Salimans & Kingma draw the direction v from N(0, 0.05²) before the data-dependent init.
_DDI_V_STD = 0.05


def _output_axis(module: nn.Module) -> int:
    """Axis of the module's weight that indexes output units (1 for ConvTranspose, else 0)."""
    return 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0


def weight_norm(
    module: nn.Module, name: str = "weight", dim: int | None = 0, init_data: Tensor | None = None
) -> nn.Module:
    """Weight-normalize ``module.<name>`` as w = g·v/‖v‖ via torch's parametrization; optional data init.

    The norm is over every axis of the weight except ``dim`` (``dim=None``: one scalar
    norm). State-dict keys are torch's: ``parametrizations.<name>.original0`` (g, e.g.
    (C_out, 1, 1, 1) for Conv2d, (out, 1) for Linear) and ``original1`` (v, the weight's
    shape). Without ``init_data`` the effective weight is unchanged (g = ‖w‖). Like torch,
    ``dim`` defaults to 0 for every module; ConvTranspose modules store their weight as
    (C_in, C_out/groups, ...), so they want ``dim=1`` for per-output-unit norms.

    With ``init_data`` (a batch of inputs, e.g. (N, C_in, H, W) for Conv2d or (..., in)
    for Linear) the paper's data-dependent init runs: v ~ N(0, 0.05²), t = module(x) with
    g = 1 and a zero bias, then per output unit g = 1/σ[t] and bias = −μ[t]/σ[t], where
    μ and σ (biased, correction=0) are over every output axis except the channel axis
    (1 for conv outputs, the last one for Linear). Afterwards ``module(init_data)`` has
    per-unit mean 0 and std 1. This needs a bias (``ShapeError`` otherwise) and ``dim``
    equal to the weight's output axis (``SpecError`` otherwise); v is drawn from torch's
    global RNG, so seed it for reproducibility.
    """
    if init_data is not None:
        # Validate before registering anything so a failed init leaves the module untouched.
        bias = getattr(module, "bias", None)
        if not isinstance(bias, Tensor):
            raise ShapeError(
                f"weight_norm data-dependent init sets the bias to −μ/σ, but {type(module).__name__} "
                "has no bias; build it with bias=True or call weight_norm without init_data"
            )
        out_axis = _output_axis(module)
        if dim != out_axis:
            raise SpecError(
                f"weight_norm data-dependent init needs one g per output unit, i.e. dim={out_axis} for "
                f"{type(module).__name__}, got dim={dim}"
            )
    parametrizations.weight_norm(module, name=name, dim=dim)
    if init_data is not None:
        _data_dependent_init(module, name, init_data)
    return module


@torch.no_grad()
def _data_dependent_init(module: nn.Module, name: str, x: Tensor) -> None:
    """Salimans & Kingma init of (g, v, bias) so that module(x) is standardized per output unit."""
    param = module.parametrizations[name]
    g, v = param.original0, param.original1
    bias = module.bias
    v.copy_(torch.randn_like(v) * _DDI_V_STD)
    g.fill_(1.0)
    bias.zero_()
    t = module(x)
    channel_axis = -1 if isinstance(module, nn.Linear) else 1
    if t.dim() < 2 and channel_axis == 1:
        raise ShapeError(f"weight_norm init_data must be batched; module output has shape {tuple(t.shape)}")
    units = t.shape[channel_axis]
    if units != bias.numel() or units != g.numel():
        raise ShapeError(
            f"weight_norm init: output has {units} units on axis {channel_axis}, but bias has "
            f"{bias.numel()} and g has {g.numel()} entries (grouped ConvTranspose is not supported)"
        )
    t = t.movedim(channel_axis, 0).reshape(units, -1)
    if t.shape[1] < 2:
        raise ShapeError(
            f"weight_norm init_data gives {t.shape[1]} value per output unit; the std needs at least 2"
        )
    var, mean = torch.var_mean(t, dim=1, correction=0)
    std = var.sqrt()
    # A constant unit rarely gives std exactly 0 (the mean rounds), so compare the spread with
    # the rounding noise of the unit's magnitude instead; 1/σ would otherwise be ~1e16.
    noise = 16 * torch.finfo(t.dtype).eps * t.abs().amax(dim=1)
    if not bool(torch.isfinite(std).all()) or bool((std <= noise).any()):
        raise ShapeError(
            "weight_norm init_data gives a zero (or non-finite) output std for some unit; "
            "use a larger or more varied init batch"
        )
    # With g = 1 the output is t; scaling g by 1/σ scales each unit's output by 1/σ.
    g.copy_((g.reshape(-1) / std).reshape(g.shape))
    bias.copy_(-mean / std)


def spectral_norm(
    module: nn.Module,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
) -> nn.Module:
    """Spectral-normalize ``module.<name>`` as W/σ(W) via torch's parametrization; W viewed as (out, rest).

    Keys are torch's: ``parametrizations.<name>.original`` (W) and the buffers
    ``parametrizations.<name>.0._u`` (out,) / ``._v`` (rest,), which get 15 power
    iterations at registration. ``dim`` defaults to 0, or 1 for ConvTranspose.

    Behaviour to know (all torch's): power iterations run in train mode only, and in
    train mode *every* access of ``module.<name>`` runs ``n_power_iterations`` in place,
    so two accesses in one step are two updates; wrap such code in
    ``torch.nn.utils.parametrize.cached()`` to compute the weight once. In eval mode u and
    v are frozen and σ = uᵀWv is recomputed from the current W. A 1-D weight is just
    L2-normalized.
    """
    return parametrizations.spectral_norm(
        module, name=name, n_power_iterations=n_power_iterations, eps=eps, dim=dim
    )


class CosineLinear(nn.Module):
    """Cosine-normalized linear layer: y_j = w_j·x / (‖w_j‖‖x‖), in [−1, 1], no bias.

    Input (..., in_features) -> output (..., out_features). ``eps`` floors both norms,
    so a zero input (or a zero weight row) gives 0, never NaN.
    """

    def __init__(self, in_features: int, out_features: int, eps: float = 1e-8) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise SpecError(f"CosineLinear needs positive sizes, got ({in_features}, {out_features})")
        self.in_features = in_features
        self.out_features = out_features
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the weight like nn.Linear (kaiming uniform, a=√5)."""
        # The output ignores the weight's scale, but its gradient scales as 1/‖w‖, so keep nn's scale.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> cosines (..., out_features)."""
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ShapeError(f"CosineLinear expects input (..., {self.in_features}), got {tuple(x.shape)}")
        w_hat = F.normalize(self.weight, dim=1, eps=self.eps)
        x_norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(self.eps)
        # |cos| ≤ 1 up to rounding; the true gradient at ±1 is 0, so clamping loses nothing.
        return (F.linear(x, w_hat) / x_norm).clamp(-1.0, 1.0)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, eps={self.eps}"


class CosineConv2d(nn.Module):
    """Cosine-normalized conv: y[n,j,p] = w_j·x_p / (‖w_j‖‖x_p‖), x_p the receptive-field patch; no bias.

    Input (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H', W') with nn.Conv2d's H', W'.
    Zero padding is part of each patch (as in F.unfold). ``eps`` floors both norms, so
    an all-zero patch gives 0, never NaN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise SpecError(f"CosineConv2d needs positive channels, got ({in_channels}, {out_channels})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        # Patch energies come from one conv of Σ_c x² with this kernel: C_in times cheaper than
        # a ones kernel over all input channels, and no unfold of the input.
        self.register_buffer("_ones", torch.ones(1, 1, *self.kernel_size), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the weight like nn.Conv2d (kaiming uniform, a=√5)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C_in, H, W) or (C_in, H, W) -> cosines (N, C_out, H', W') or (C_out, H', W')."""
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ShapeError(
                f"CosineConv2d expects (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        geometry = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        w_hat = F.normalize(self.weight.flatten(1), dim=1, eps=self.eps).view_as(self.weight)
        dot = F.conv2d(x, w_hat, **geometry)
        energy = F.conv2d(x.square().sum(dim=1, keepdim=True), self._ones.to(x.dtype), **geometry)
        # Floor the energy, not the norm: sqrt'(0) is inf and would turn the zero gradient of a
        # clamped zero patch into NaN. The floor also absorbs the tiny negatives that Winograd/FFT
        # conv algorithms can return for a sum of squares; finfo.tiny keeps it > 0 in fp16.
        floor = max(self.eps * self.eps, torch.finfo(energy.dtype).tiny)
        x_norm = energy.clamp_min(floor).sqrt()
        out = (dot / x_norm).clamp(-1.0, 1.0)
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, eps={self.eps}"
        )
