"""Cross-process batch normalization that also runs on CPU (gloo), and the model converter.

``torch.nn.SyncBatchNorm`` only runs on accelerators: its kernels
(``batch_norm_stats``, ``batch_norm_gather_stats_with_counts`` …) are CUDA-only
and it refuses CPU tensors when a process group is up. :class:`SyncBatchStats`
uses torch's autograd function on CUDA and, on any other device, gathers each
rank's (count, mean, M2) per channel with a differentiable all-gather and
merges them with Chan's parallel formula, so forward, backward and running
buffers equal BatchNorm over the concatenated global batch, with unequal
per-rank batch sizes (even empty ones) allowed.

:func:`to_sync_batch_norm` converts a model, torch ``BatchNorm2d`` layers and
stylenorm ``batch`` layers alike, sharing parameters and buffers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from stylenorm.errors import ShapeError
from stylenorm.norm.base import Normalization, modulate
from stylenorm.norm.modulation import ChannelAffine
from stylenorm.norm.registry import RUN_OPTIONS, register_affine_layer, register_stats
from stylenorm.norm.stats import BatchStats

try:  # a private torch symbol: without it CUDA inputs take the portable path below
    from torch.nn.modules._functions import SyncBatchNorm as _TorchSyncBatchNorm
except ImportError:  # pragma: no cover - only on torch versions that moved it
    _TorchSyncBatchNorm = None


class _GatherRows(torch.autograd.Function):
    """All-gather a (K,) vector into (W, K); backward sums every rank's gradient of our row."""

    @staticmethod
    def forward(ctx: FunctionCtx, vec: Tensor, group: Any, world: int, rank: int) -> Tensor:
        ctx.group, ctx.rank = group, rank
        rows = [torch.empty_like(vec) for _ in range(world)]
        dist.all_gather(rows, vec.contiguous(), group=group)
        return torch.stack(rows)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        total = grad.contiguous().clone()  # rank j holds d loss_j / d rows; the sum is d loss / d rows
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        return total[ctx.rank], None, None, None


def _is_per_channel(t: Tensor | None) -> bool:
    return t is None or t.dim() == 1


class SyncBatchStats(BatchStats):
    """Batch statistics over (N, H, W) per channel of the whole process group's batch.

    Syncs only in training with torch.distributed initialized and more than
    one rank in ``process_group`` (None = WORLD); otherwise it is exactly
    :class:`BatchStats` (≡ ``torch.nn.BatchNorm2d``). Same buffers, eps,
    momentum (None = cumulative average) and state-dict keys as BatchNorm2d;
    the running var is unbiased with the global count.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        track_running_stats: bool = True,
        process_group: Any = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, track_running_stats)
        self.process_group = process_group

    def sync_group(self) -> tuple[Any, int] | None:
        """(group, world size) when this forward must reduce over processes, else None."""
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return None
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        world = dist.get_world_size(group)
        return (group, world) if world > 1 else None

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W) (this rank's part of the batch) -> x̂ · scale + shift, same shape."""
        sync = self.sync_group()
        if sync is None:
            return super().forward(x, scale, shift)
        group, world = sync
        if x.is_cuda and _TorchSyncBatchNorm is not None:  # pragma: no cover - needs GPUs
            return self._forward_torch(x, scale, shift, group, world)
        return self._forward_gathered(x, scale, shift, group, world)

    def _forward_torch(
        self, x: Tensor, scale: Tensor | None, shift: Tensor | None, group: Any, world: int
    ) -> Tensor:  # pragma: no cover - CUDA only; mirrors torch.nn.SyncBatchNorm.forward
        factor = self._next_factor()  # counts the batch; 1/n in cumulative mode, as torch
        fused = _is_per_channel(scale) and _is_per_channel(shift)
        y = _TorchSyncBatchNorm.apply(
            x,
            scale if fused else None,
            shift if fused else None,
            self.running_mean,  # None when not tracking: torch then skips the update
            self.running_var,
            self.eps,
            factor,
            group,
            world,
        )
        return y if fused else modulate(y, scale, shift)

    def _forward_gathered(
        self, x: Tensor, scale: Tensor | None, shift: Tensor | None, group: Any, world: int
    ) -> Tensor:
        c = self.num_features
        dtype = torch.promote_types(x.dtype, torch.float32)  # statistics in ≥ fp32
        xs = x.to(dtype)
        local_n = x.numel() // c
        if local_n > 0:
            var_local, mean_local = torch.var_mean(xs, dim=(0, 2, 3), correction=0)
            m2_local = var_local * local_n
        else:  # an empty part still joins the gather, with n = 0 and m = M2 = 0
            mean_local = m2_local = xs.new_zeros(c)
        count = torch.full((1,), float(local_n), dtype=dtype, device=x.device)
        packed = torch.cat([count, mean_local, m2_local])
        rows = _GatherRows.apply(packed, group, world, dist.get_rank(group))  # (W, 2C + 1)
        counts, means, m2s = rows[:, :1].detach(), rows[:, 1 : 1 + c], rows[:, 1 + c :]
        n = float(counts.sum())
        if n <= 1:
            raise ShapeError(
                "sync batch norm needs more than one value per channel over all processes in "
                f"training; got {int(n)} (this rank's input shape {tuple(x.shape)})"
            )
        mean = (counts * means).sum(0) / n
        m2 = m2s.sum(0) + (counts * (means - mean).square()).sum(0)  # Chan et al.
        var = m2 / n
        factor = self._next_factor()
        if self.track_running_stats:
            self._update(mean.detach(), var.detach() * (n / (n - 1)), factor)
        inv = torch.rsqrt(var + self.eps)
        if (scale is not None and scale.dim() == 4) or (shift is not None and shift.dim() == 4):
            y = modulate(x, inv.to(x.dtype), (-mean * inv).to(x.dtype))
            return modulate(y, scale, shift)
        # fold the affine: (x − μ)·inv·g + b = x·a + (b − μ·a), a (C,) or (N, C)
        a = inv if scale is None else inv * scale
        b = -mean * a if shift is None else shift - mean * a
        return modulate(x, a.to(x.dtype), b.to(x.dtype))


@register_stats(
    "sync_batch", "sync_batch", "BatchNorm statistics reduced over all processes (CPU/gloo too)",
    (*RUN_OPTIONS, "process_group"),
)
def _sync_batch_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return SyncBatchStats(c, **o)


register_affine_layer("sync_batch", True, "cross-process BatchNorm; CUDA (NCCL) and CPU (gloo)")


def _sync_from_batch_norm(bn: nn.modules.batchnorm._BatchNorm, process_group: Any) -> Normalization:
    """A stylenorm sync layer that shares bn's parameters and buffers."""
    c = bn.num_features
    stats = SyncBatchStats(c, bn.eps, bn.momentum, bn.track_running_stats, process_group)
    _share_buffers(stats, bn)
    affine = ChannelAffine(c, affine=bn.affine, bias=bn.bias is not None)
    if bn.affine:
        affine.weight = bn.weight
        if bn.bias is not None:
            affine.bias = bn.bias
    layer = Normalization(stats, affine, num_features=c)
    layer.train(bn.training)
    if hasattr(bn, "qconfig"):
        layer.qconfig = bn.qconfig
    return layer


def _share_buffers(dst: nn.Module, src: nn.Module) -> None:
    dst.running_mean = src.running_mean
    dst.running_var = src.running_var
    dst.num_batches_tracked = src.num_batches_tracked


def _is_plain_batch_norm_2d(m: nn.Module) -> bool:
    # BatchNorm1d/3d are left alone (our layers are NCHW), as are subclasses with a custom forward
    # (e.g. a BN fused with an activation), which a plain replacement would silently change.
    return (
        isinstance(m, nn.BatchNorm2d)
        and not isinstance(m, nn.SyncBatchNorm)
        and type(m).forward is nn.modules.batchnorm._BatchNorm.forward
    )


def to_sync_batch_norm(module: nn.Module, process_group: Any = None) -> nn.Module:
    """Make every BatchNorm over (N, C, H, W) inputs cross-process (CPU/gloo and CUDA); returns the root.

    Replaces torch ``BatchNorm2d`` layers by ``Normalization(SyncBatchStats, ChannelAffine)``
    and the ``BatchStats`` of stylenorm layers by ``SyncBatchStats``, sharing the
    parameter and buffer objects and the train/eval mode; instance/group norms,
    ``torch.nn.SyncBatchNorm`` and already-sync layers are left alone. The tree is
    changed in place; a new object is returned only when the root itself is a BatchNorm2d.
    """
    out = module
    if _is_plain_batch_norm_2d(module):
        out = _sync_from_batch_norm(module, process_group)
    elif isinstance(module, Normalization) and type(module.stats) is BatchStats:
        old = module.stats
        new = SyncBatchStats(
            old.num_features, old.eps, old.momentum, old.track_running_stats, process_group
        )
        _share_buffers(new, old)
        new.train(old.training)
        module.stats = new
    for name, child in list(module.named_children()):
        out.add_module(name, to_sync_batch_norm(child, process_group))
    return out
