"""Exact tiled inference: images too large to run at once, stylized tile by tile with no seams at all.

Not blending: every output pixel is computed from exactly the input pixels
the untiled network would use, so tiled output equals untiled output up to
float rounding (the convolution kernels may sum in another order).

* A chain of local layers (convolutions, pads, max-pooling, nearest
  upsampling, pointwise activations) runs per output tile. For each tile the
  input interval it needs is found by walking the layers backwards (the halo
  is the exact receptive field, see :func:`receptive_radius`); going forward,
  each layer computes exactly the tile's part of its output. Padding is
  applied only where a tile touches the border of the *whole* activation, from
  the real border pixels (reflection, replication, zeros), so border tiles
  match the untiled computation too.
* AdaIN (:func:`adain_stylize_tiled`): the encoder has no normalization, so it
  runs as one tiled chain; AdaIN (weights, masks, alpha, colour preservation)
  is applied on the full feature map with global statistics, by
  :meth:`AdaINNet.stylize` itself; the decoder runs as a second tiled chain.
* TransformerNet (:func:`transformer_tiled`): its instance norms need global
  statistics, so it runs layer by layer. The current activation stays whole
  in host memory; each convolution runs tile by tile (on the accelerator
  when the net lives there), each norm, ReLU and residual sum on the full map.
  One pass of compute; only one convolution's tile is on the device at once.

``tile`` is the side, in pixels of the image, of the output region one tile
computes; the input it reads is larger by the halo.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.nets.adain import AdaINNet, StyleStats, crop_margin
from stylenorm.nets.transformer import ConvLayer, TransformerNet
from stylenorm.nets.vgg import SELF_PREPROCESSED, VGGEncoder

Span = tuple[int, int]  # [start, stop) in the global coordinates of one axis
Spans = tuple[Span, Span]  # (rows, columns)
MIN_TILE = 16
DEFAULT_TILE = 512
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Identity)


class _Op:
    """One layer of a tiled chain, described per axis (0 = H, 1 = W)."""

    def out_size(self, n: int, axis: int) -> int:
        return n

    def need(self, o0: int, o1: int, axis: int) -> Span:
        """The input interval output [o0, o1) reads; may extend past the input (into the padding)."""
        return o0, o1

    def source(self, o0: int, o1: int, axis: int, n: int) -> Span:
        """The real input pixels output [o0, o1) depends on, for an input axis of length n."""
        lo, hi = self.need(o0, o1, axis)
        return max(lo, 0), min(hi, n)

    def forward(self, x: Tensor, span_in: Spans, span_out: Spans, n_in: Span) -> Tensor:
        raise NotImplementedError


class _Pointwise(_Op):
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def forward(self, x: Tensor, span_in: Spans, span_out: Spans, n_in: Span) -> Tensor:
        return self.module(x)


def _source_index(lo: int, hi: int, n: int, mode: str) -> Tensor:
    """Global source index of each padded position in [lo, hi) for an axis of length n."""
    q = torch.arange(lo, hi)
    if mode == "reflect":  # a single reflection, as torch (padding < n is checked by the caller)
        q = torch.where(q < 0, -q, q)
        return torch.where(q >= n, 2 * (n - 1) - q, q)
    if mode == "replicate":
        return q.clamp(0, n - 1)
    if mode == "circular":
        return q.remainder(n)
    raise SpecError(f"unknown padding mode {mode!r}")


def _take(x: Tensor, dim: int, lo: int, hi: int, span: Span, n: int, mode: str) -> Tensor:
    """Positions [lo, hi) of a padded axis from a tile that holds [span) of the unpadded axis."""
    a, b = span
    if lo >= 0 and hi <= n:
        return x.narrow(dim, lo - a, hi - lo)
    if mode == "zeros":
        core = x.narrow(dim, max(lo, 0) - a, min(hi, n) - max(lo, 0))
        before, after = max(0, -lo), max(0, hi - n)
        return F.pad(core, (0, 0, before, after) if dim == 2 else (before, after))
    idx = _source_index(lo, hi, n, mode) - a
    if int(idx.min()) < 0 or int(idx.max()) >= b - a:
        raise RuntimeError(f"tiling bug: padded [{lo}, {hi}) of {n} reads outside the tile {span}")
    return x.index_select(dim, idx.to(x.device))


class _Conv(_Op):
    """A Conv2d with its padding (its own, or a pad layer in front of it) applied at the border only."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[Span, Span], mode: str) -> None:
        self.conv, self.pads, self.mode = conv, pads, mode
        self.stride = conv.stride
        self.extent = tuple(d * (k - 1) + 1 for d, k in zip(conv.dilation, conv.kernel_size, strict=True))

    def out_size(self, n: int, axis: int) -> int:
        before, after = self.pads[axis]
        if self.mode == "reflect" and max(before, after) >= n:
            raise ShapeError(
                f"the image is too small for this network: reflection padding {max(before, after)} "
                f"needs at least {max(before, after) + 1} pixels, the activation has {n}"
            )
        return (n + before + after - self.extent[axis]) // self.stride[axis] + 1

    def need(self, o0: int, o1: int, axis: int) -> Span:
        s, before = self.stride[axis], self.pads[axis][0]
        return o0 * s - before, (o1 - 1) * s - before + self.extent[axis]

    def source(self, o0: int, o1: int, axis: int, n: int) -> Span:
        lo, hi = self.need(o0, o1, axis)
        if self.mode == "zeros" or (lo >= 0 and hi <= n):
            return max(lo, 0), min(hi, n)
        # padding copies real pixels, possibly from beyond the clipped interval (a reflection wider
        # than the kernel's reach, or the far side of the image for circular padding)
        idx = _source_index(lo, hi, n, self.mode)
        return int(idx.min()), int(idx.max()) + 1

    def forward(self, x: Tensor, span_in: Spans, span_out: Spans, n_in: Span) -> Tensor:
        for axis in (0, 1):
            lo, hi = self.need(*span_out[axis], axis)
            x = _take(x, 2 + axis, lo, hi, span_in[axis], n_in[axis], self.mode)
        c = self.conv
        return F.conv2d(x, c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


class _MaxPool(_Op):
    def __init__(self, pool: nn.MaxPool2d) -> None:
        pair = nn.modules.utils._pair
        if pool.padding not in (0, (0, 0)) or pool.dilation not in (1, (1, 1)) or pool.return_indices:
            raise SpecError("tiling supports max-pooling without padding, dilation or indices")
        self.kernel, self.stride = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size)
        self.ceil_mode = pool.ceil_mode

    def out_size(self, n: int, axis: int) -> int:
        k, s = self.kernel[axis], self.stride[axis]
        if n < k and not self.ceil_mode:
            raise ShapeError(f"the image is too small for this network: pooling {k} on {n} pixels")
        if not self.ceil_mode:
            return (n - k) // s + 1
        out = -(-(n - k) // s) + 1
        return out - 1 if (out - 1) * s >= n else out  # torch: the last window starts inside

    def need(self, o0: int, o1: int, axis: int) -> Span:
        return o0 * self.stride[axis], (o1 - 1) * self.stride[axis] + self.kernel[axis]

    def forward(self, x: Tensor, span_in: Spans, span_out: Spans, n_in: Span) -> Tensor:
        for axis in (0, 1):
            lo, hi = self.need(*span_out[axis], axis)
            x = x.narrow(2 + axis, lo - span_in[axis][0], min(hi, n_in[axis]) - lo)
        return F.max_pool2d(x, self.kernel, self.stride, 0, 1, self.ceil_mode)


class _Upsample(_Op):
    """Nearest upsampling by an integer factor: output pixel o copies input pixel o // factor."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def out_size(self, n: int, axis: int) -> int:
        return n * self.factor

    def need(self, o0: int, o1: int, axis: int) -> Span:
        return o0 // self.factor, (o1 - 1) // self.factor + 1

    def forward(self, x: Tensor, span_in: Spans, span_out: Spans, n_in: Span) -> Tensor:
        for axis in (0, 1):
            idx = torch.arange(*span_out[axis]) // self.factor - span_in[axis][0]
            x = x.index_select(2 + axis, idx.to(x.device))
        return x


def _integer_factor(scale: object, who: str) -> int:
    factors = scale if isinstance(scale, tuple | list) else (scale, scale)
    if len(set(factors)) != 1 or float(factors[0]) != int(factors[0]) or int(factors[0]) < 1:
        raise SpecError(f"tiling supports {who} by one integer factor; got {scale}")
    return int(factors[0])


_PAD_MODES = {nn.ReflectionPad2d: "reflect", nn.ReplicationPad2d: "replicate", nn.CircularPad2d: "circular"}
_CONV_MODES = {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def chain_ops(layers: Iterable[nn.Module]) -> list[_Op]:
    """Describe a chain of local layers for tiling; raises SpecError on a layer that is not local."""
    ops: list[_Op] = []
    pending: tuple[str, tuple[Span, Span]] | None = None
    for m in layers:
        if isinstance(m, tuple(_PAD_MODES)) or (isinstance(m, nn.ConstantPad2d) and m.value == 0):
            if pending is not None:
                raise SpecError("tiling supports one pad layer before each convolution")
            left, right, top, bottom = m.padding
            pending = (_PAD_MODES.get(type(m), "zeros"), ((top, bottom), (left, right)))
        elif isinstance(m, nn.Conv2d):
            if isinstance(m.padding, str):
                raise SpecError(f"tiling needs numeric conv padding; got padding={m.padding!r}")
            ph, pw = m.padding
            if pending is not None:
                if ph or pw:
                    raise SpecError("tiling does not combine a pad layer with a padded convolution")
                mode, pads = pending
            else:
                mode, pads = _CONV_MODES[m.padding_mode], ((ph, ph), (pw, pw))
            ops.append(_Conv(m, pads, mode))
            pending = None
        elif pending is not None:
            raise SpecError(f"a pad layer must come just before a convolution, not a {type(m).__name__}")
        elif isinstance(m, nn.MaxPool2d):
            ops.append(_MaxPool(m))
        elif isinstance(m, nn.Upsample):
            if m.mode != "nearest" or m.size is not None:
                raise SpecError(f"tiling supports nearest upsampling by a scale factor; got mode {m.mode!r}")
            ops.append(_Upsample(_integer_factor(m.scale_factor, "upsampling")))
        elif isinstance(m, _POINTWISE):
            ops.append(_Pointwise(m))
        else:
            raise SpecError(
                f"cannot tile a {type(m).__name__}: tiled chains hold convolutions, pad layers, "
                "max-pooling, nearest upsampling and pointwise activations"
            )
    if pending is not None:
        raise SpecError("a pad layer at the end of a chain has no convolution to feed")
    return ops


def _sizes(ops: Sequence[_Op], n: int, axis: int) -> list[int]:
    sizes = [n]
    for op in ops:
        n = op.out_size(n, axis)
        if n < 1:
            raise ShapeError("the image is too small for this network (an activation would be empty)")
        sizes.append(n)
    return sizes


def _spans(ops: Sequence[_Op], sizes: list[int], out: Span, axis: int) -> list[Span]:
    """Walk backwards: the interval of every activation that output interval ``out`` depends on."""
    spans = [out]
    for k in range(len(ops) - 1, -1, -1):
        spans.insert(0, ops[k].source(*spans[0], axis, sizes[k]))
    return spans


def run_chain(
    ops: Sequence[_Op], x: Tensor, tile: int | tuple[int, int], device: torch.device | str | None = None
) -> Tensor:
    """Run a chain exactly as untiled on x (N, C, H, W), computing ``tile`` output pixels per side at a time.

    x and the result stay on x's device; each tile's input is moved to ``device`` (default: x's) to run.
    """
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if min(th, tw) < 1:
        raise SpecError(f"tile sizes must be positive; got {tile}")
    device = torch.device(device) if device is not None else x.device
    sizes_h, sizes_w = _sizes(ops, x.shape[2], 0), _sizes(ops, x.shape[3], 1)
    out: Tensor | None = None
    for r0 in range(0, sizes_h[-1], th):
        span_h = _spans(ops, sizes_h, (r0, min(r0 + th, sizes_h[-1])), 0)
        for c0 in range(0, sizes_w[-1], tw):
            span_w = _spans(ops, sizes_w, (c0, min(c0 + tw, sizes_w[-1])), 1)
            t = x[:, :, slice(*span_h[0]), slice(*span_w[0])].to(device)
            for k, op in enumerate(ops):
                spans_in, spans_out = (span_h[k], span_w[k]), (span_h[k + 1], span_w[k + 1])
                t = op.forward(t, spans_in, spans_out, (sizes_h[k], sizes_w[k]))
            if out is None:
                dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
                shape = (x.shape[0], t.shape[1], sizes_h[-1], sizes_w[-1])
                out = torch.empty(shape, dtype=dtype, device=x.device)
            out[:, :, slice(*span_h[-1]), slice(*span_w[-1])] = t.to(out)
    assert out is not None  # at least one tile: the sizes are positive
    return out


def tiled_sequential(
    layers: Iterable[nn.Module], x: Tensor, tile: int, device: torch.device | str | None = None
) -> Tensor:
    """``nn.Sequential(*layers)(x)`` of local layers on x (N, C, H, W), in output tiles of ``tile`` pixels."""
    return run_chain(chain_ops(layers), x, tile, device)


def receptive_radius(layers: Iterable[nn.Module]) -> int:
    """The halo: how far (in input pixels) beyond a tile's own region its output depends on the input."""
    ops = chain_ops(layers)
    jump = Fraction(1)  # input pixels per output pixel
    for op in ops:
        if isinstance(op, _Conv | _MaxPool):
            jump *= op.stride[0]
        elif isinstance(op, _Upsample):
            jump /= op.factor
    radius = Fraction(0)
    big = 1 << 20  # far from any border, so nothing is clipped
    period = max(1, math.ceil(1 / jump)) * max(1, int(jump))
    for o in range(big, big + 2 * period):
        lo, hi = o, o + 1
        for op in reversed(ops):
            lo, hi = op.need(lo, hi, 0)
        radius = max(radius, o * jump - lo, hi - (o + 1) * jump)
    return math.ceil(radius)


def _check_tile(tile: int) -> int:
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < MIN_TILE:
        raise SpecError(f"tile must be an integer of at least {MIN_TILE} pixels; got {tile!r}")
    return tile


def _tile_for(tile: int, n_out: tuple[int, int], n_image: tuple[int, int]) -> tuple[int, int]:
    """The tile of an activation (n_out) that covers ``tile`` pixels of the image (n_image)."""
    (oh, ow), (ih, iw) = n_out, n_image
    return max(1, math.ceil(tile * oh / ih)), max(1, math.ceil(tile * ow / iw))


def _param_device(module: nn.Module, fallback: torch.device) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return fallback


# ---------------------------------------------------------------- AdaIN


def tiled_encode(
    encoder: VGGEncoder, x: Tensor, tile: int, device: torch.device | str | None = None
) -> Tensor:
    """``encoder(x)[encoder.last]`` for x (N, 3, H, W) in [0, 1], in tiles of ``tile`` image pixels."""
    _check_tile(tile)
    device = torch.device(device) if device is not None else _param_device(encoder, x.device)
    if encoder.fmt not in SELF_PREPROCESSED:  # the same arithmetic as VGGEncoder.forward, on the full image
        x = (x - encoder.mean.to(x)) / encoder.std.to(x)
    ops = chain_ops(encoder.features)
    out_h, out_w = _sizes(ops, x.shape[2], 0)[-1], _sizes(ops, x.shape[3], 1)[-1]
    return run_chain(ops, x, _tile_for(tile, (out_h, out_w), tuple(x.shape[2:])), device)


def tiled_decode(
    net: AdaINNet,
    features: Tensor,
    tile: int,
    size: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``net.decode(features, size)`` in output tiles of ``tile`` pixels -> (N, 3, H, W)."""
    _check_tile(tile)
    device = torch.device(device) if device is not None else _param_device(net.decoder, features.device)
    y = run_chain(chain_ops(net.decoder), features, tile, device)
    return y if size is None else crop_margin(y, net.margin, size)


class _TiledAdaIN:
    """An AdaINNet seen through tiled encode/decode: AdaINNet's own methods run with it as ``self``."""

    stylize = AdaINNet.stylize
    style_stats = AdaINNet.style_stats
    transfer = AdaINNet.transfer
    _pad = AdaINNet._pad
    _masked_transfer = AdaINNet._masked_transfer

    def __init__(self, net: AdaINNet, tile: int, device: torch.device) -> None:
        self._net, self._tile, self._device = net, tile, device

    def __getattr__(self, name: str) -> object:
        return getattr(self._net, name)

    def encode(self, x: Tensor) -> Tensor:
        return tiled_encode(self._net.encoder, x, self._tile, self._device)

    def decode(self, features: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        return tiled_decode(self._net, features, self._tile, size, self._device)


def tiled_style_stats(
    net: AdaINNet, style: Tensor, tile: int, device: torch.device | str | None = None
) -> StyleStats:
    """``net.style_stats(style)`` with a tiled encoder: style (1, 3, h, w) -> (mean, std), each (1, C)."""
    _check_tile(tile)
    device = torch.device(device) if device is not None else _param_device(net, style.device)
    return _TiledAdaIN(net, tile, device).style_stats(style)


def adain_stylize_tiled(
    net: AdaINNet,
    content: Tensor,
    styles: Sequence[Tensor | StyleStats],
    weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    masks: Sequence[Tensor] | None = None,
    preserve_color: bool = False,
    tile: int = DEFAULT_TILE,
    device: torch.device | str | None = None,
) -> Tensor:
    """:meth:`AdaINNet.stylize` with tiled encoder and decoder; AdaIN itself on the whole feature map.

    content (1, 3, H, W) and the result stay on content's device (the host);
    the tiles run on ``device`` (default: the net's). Styles: images
    (1, 3, h, w) or cached (mean, std), as for AdaINNet.stylize.
    """
    _check_tile(tile)
    host = content.device
    device = torch.device(device) if device is not None else _param_device(net, host)
    styles = [s.to(host) if isinstance(s, Tensor) else tuple(t.to(host) for t in s) for s in styles]
    masks = None if masks is None else [m.to(host) for m in masks]
    proxy = _TiledAdaIN(net, tile, device)
    weights = None if weights is None else list(weights)
    return proxy.stylize(content, styles, weights, alpha, masks, preserve_color)


# ---------------------------------------------------------------- TransformerNet


def _conv_layer_ops(layer: ConvLayer) -> list[_Op]:
    ops: list[_Op] = [_Upsample(layer.upsample)] if layer.upsample > 1 else []
    return ops + chain_ops([layer.pad, layer.conv2d])


def transformer_tiled(
    net: TransformerNet,
    x: Tensor,
    style: Tensor | None = None,
    tile: int = DEFAULT_TILE,
    device: torch.device | str | None = None,
) -> Tensor:
    """``net(x, style)`` layer by layer: full activations on x's device, convolutions in tiles on ``device``.

    x (N, 3, H, W) in [0, 1] -> (N, 3, H, W). Norms see the whole activation,
    so instance (and conditional instance) statistics are global.
    """
    _check_tile(tile)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ShapeError(f"expected RGB images (N, 3, H, W); got shape {tuple(x.shape)}")
    if net.conditional and style is None:
        raise ShapeError(f"this multi-style net needs a style (one of {net.num_styles})")
    host = x.device
    device = torch.device(device) if device is not None else _param_device(net, host)
    style = style.to(host) if style is not None else None
    norms: dict[str, nn.Module] = {}

    def norm(name: str, y: Tensor) -> Tensor:
        # the (tiny) norm layers run where the full activation is
        if name not in norms:
            module = net.get_submodule(name)
            norms[name] = module if _param_device(module, host) == host else copy.deepcopy(module).to(host)
        module = norms[name]
        return module(y, style) if getattr(module, "conditional", False) else module(y)

    h, w = x.shape[2:]
    pad_h, pad_w = (-h) % 4, (-w) % 4
    if pad_h or pad_w:  # as TransformerNet.forward
        mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    image = tuple(x.shape[2:])

    def conv(name: str, y: Tensor) -> Tensor:
        ops = _conv_layer_ops(net.get_submodule(name))
        n_out = (_sizes(ops, y.shape[2], 0)[-1], _sizes(ops, y.shape[3], 1)[-1])
        return run_chain(ops, y, _tile_for(tile, n_out, image), device)

    y = x * net.pixel_scale
    y = F.relu(norm("in1", conv("conv1", y)))
    y = F.relu(norm("in2", conv("conv2", y)))
    y = F.relu(norm("in3", conv("conv3", y)))
    for i in range(1, 6):
        r = F.relu(norm(f"res{i}.in1", conv(f"res{i}.conv1", y)))
        y = y + norm(f"res{i}.in2", conv(f"res{i}.conv2", r))
    y = F.relu(norm("in4", conv("deconv1", y)))
    y = F.relu(norm("in5", conv("deconv2", y)))
    y = conv("deconv3", y)
    if net.output == "sigmoid":
        y = y.sigmoid()
    else:
        y = y / net.pixel_scale
        y = y if net.training else y.clamp(0, 1)
    return y[:, :, :h, :w]


__all__ = [
    "DEFAULT_TILE",
    "MIN_TILE",
    "adain_stylize_tiled",
    "chain_ops",
    "receptive_radius",
    "run_chain",
    "tiled_decode",
    "tiled_encode",
    "tiled_sequential",
    "tiled_style_stats",
    "transformer_tiled",
]
