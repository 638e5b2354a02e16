"""ONNX export of the style nets, with dynamic batch, height and width, and an onnxruntime check.

Exporter: torch 2.14's default, the dynamo-based ``torch.onnx.export(dynamo=True)``
(torch.export + onnxscript), is used and works for every architecture here;
the TorchScript exporter (``dynamo=False``) is only a fallback if it fails,
and each file records which one wrote it (metadata ``stylenorm.exporter``).
Two things keep the graphs shape-generic: the sample batch is 2 (torch.export
specializes sizes 0 and 1), and instance/group statistics are computed with
explicit reductions, because the library's fused kernel (``F.group_norm`` on a
(1, N·C, H, W) view, used by CIN) takes the group count N·C as a constant and
would freeze the batch size.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.families import FAMILIES, Family, family_of
from stylenorm.models import LoadedModel
from stylenorm.nets import AdaINNet, TransformerNet
from stylenorm.norm.base import Normalization, modulate
from stylenorm.norm.stats import GroupStats, InstanceStats

log = logging.getLogger(__name__)

_SAMPLE_BATCH = 2  # torch.export specializes dimensions of size 0 and 1
_SAMPLE_SIZE = 64
_WCT_SAMPLE = 256  # WCT: relu4_1 maps of 32×32 ≥ its 512 channels
_MIN_OPSET = 18  # the dynamo exporter's lowest; its down-conversion fails on Pad


class PortableGroupStats(nn.Module):
    """Group/instance statistics as plain reductions: x (N, C, H, W) -> x̂ · scale + shift, any N, H, W."""

    def __init__(self, num_groups: int, eps: float, unbiased: bool = False) -> None:
        super().__init__()
        self.num_groups, self.eps, self.unbiased = num_groups, eps, unbiased

    def forward(self, x: Tensor, scale: Tensor | None = None, shift: Tensor | None = None) -> Tensor:
        """x (N, C, H, W); scale/shift (C,), (N, C) or (N, C, H, W) -> (N, C, H, W)."""
        n, c, h, w = x.shape
        groups = x.reshape(n, self.num_groups, -1)
        size = (c // self.num_groups) * h * w
        correction = 1 if self.unbiased and size > 1 else 0
        var, mean = torch.var_mean(groups, dim=2, keepdim=True, correction=correction)
        x_hat = ((groups - mean) * torch.rsqrt(var + self.eps)).reshape(n, c, h, w)
        return modulate(x_hat, scale, shift)


def portable_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode whose instance/group statistics export with a dynamic batch."""
    module = copy.deepcopy(module).eval()
    for layer in module.modules():
        if not isinstance(layer, Normalization):
            continue
        stats = layer.stats
        if isinstance(stats, InstanceStats) and not stats.track_running_stats:
            layer.stats = PortableGroupStats(stats.num_features, stats.eps, stats.unbiased)
        elif isinstance(stats, GroupStats):
            layer.stats = PortableGroupStats(stats.num_groups, stats.eps)
    return module


def _pad_to(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad x (N, C, H, W) at the bottom/right to multiples of ``multiple`` (always the same graph)."""
    h, w = x.shape[2], x.shape[3]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect")


class _FastGraph(nn.Module):
    """image (N, 3, H, W) -> stylized (N, 3, H, W), padding spelled out so it works for every H, W."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[2], image.shape[3]
        return self.net(_pad_to(image, 4))[:, :, :h, :w]


class _MultiStyleGraph(_FastGraph):
    """(image (N, 3, H, W), style_weights (N, S)) -> stylized (N, 3, H, W)."""

    def forward(self, image: Tensor, style_weights: Tensor) -> Tensor:  # type: ignore[override]
        h, w = image.shape[2], image.shape[3]
        return self.net(_pad_to(image, 4), style_weights)[:, :, :h, :w]


class _EncoderGraph(nn.Module):
    """image (N, 3, H, W) -> features (N, C, ⌈H/8⌉, ⌈W/8⌉) at the encoder's last layer (relu4_1)."""

    def __init__(self, net: AdaINNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> Tensor:
        return self.net.encode(image)


class _DecoderGraph(nn.Module):
    """features (N, C, h, w) -> image (N, 3, 8h, 8w)."""

    def __init__(self, net: AdaINNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: Tensor) -> Tensor:
        return self.net.decoder(features)


def _export_graph(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
    opset: int,
    dynamic_shapes: Any = None,
) -> str:
    """Write one graph to path; returns the exporter that worked ("dynamo" or "torchscript").

    ``dynamic_shapes``: for a forward with ``*args`` (whose names torch.export cannot match), the
    dynamic axes in positional form; default: ``inputs`` by name."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters warn about internals nobody here can act on
        try:
            torch.onnx.export(
                module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes or inputs,
                external_data=False, verbose=False,
            )
            return "dynamo"
        except Exception as exc:  # the exporter raises many unrelated types
            first = exc
            log.warning("dynamo ONNX export of %s failed (%s); trying the TorchScript one", path.name, exc)
        try:  # tracing freezes Python shape arithmetic: only a check at another shape can tell
            torch.onnx.export(
                module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                opset_version=opset, dynamo=False, dynamic_axes={**inputs, **outputs},
            )
            return "torchscript"
        except Exception as exc:
            raise StylenormError(
                f"ONNX export of {path.name} failed with both exporters: dynamo: {first}; torchscript: {exc}"
            ) from exc


def _tag(path: Path, props: dict[str, str]) -> None:
    """Store metadata in an ONNX file and check the file is a valid model."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise StylenormError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({exc.name} is missing): "
            "pip install 'stylenorm[export]'"
        ) from exc


def _check_exportable(model: LoadedModel) -> Family:
    family = family_of(model.card)
    if family.exportable:
        return family
    exportable = ", ".join(name for name, f in FAMILIES.items() if f.exportable)
    if not any(True for _ in model.module.parameters()):
        raise SpecError(
            f"{model.card.name}: a {family.name!r} model has no network (it works from image statistics "
            f"or optimises pixels), so there is nothing to export; ONNX export covers {exportable}"
        )
    raise SpecError(
        f"{model.card.name}: cannot export architecture {family.name!r} to ONNX; exportable: {exportable}"
    )


def export_onnx(model: LoadedModel, path: Path, opset: int = 18) -> list[Path]:
    """Export a repository model to ONNX (dynamic batch, height, width); returns the files written.

    * ``fast``: input ``image`` (N, 3, H, W) RGB [0, 1] -> ``stylized`` (N, 3, H, W).
    * ``multistyle``: inputs ``image`` (N, 3, H, W) and ``style_weights`` (N, S)
      float (one-hot picks a style, rows summing to 1 blend them) -> ``stylized``.
    * ``adain``: two graphs. ``path`` is the decoder, ``features`` (N, C, h, w)
      -> ``image`` (N, 3, m·h, m·w); ``<stem>.encoder.onnx`` is the encoder,
      ``image`` (N, 3, H, W) -> ``features`` (N, C, ⌈H/m⌉, ⌈W/m⌉), where C = 512
      and m = 8 for the usual relu4_1 encoder (m is in the metadata). The client
      does AdaIN in between (what :func:`adain_onnx_stylize` does):

      1. mirror the content by ``margin`` pixels on every side (32; edge-replicate instead when a side
         is not longer than that), then at the bottom/right to multiples of m;
         f_c = encoder(content), f_s = encoder(style) (style unpadded);
      2. per sample and channel over (h, w): μ = mean, and
         σ_c = sqrt(var(f_c) + eps), σ_s = sqrt(var(f_s) + eps) when the
         model's ``unbiased`` is true (pytorch-AdaIN: var with the n − 1
         denominator), else σ_c = sqrt(var(f_c) + eps), σ_s = sqrt(var(f_s))
         with the n denominator (the official AdaIN); eps and unbiased are in
         the files' metadata (``stylenorm.adain``);
      3. t = σ_s · (f_c − μ_c) / σ_c + μ_s, then t = α·t + (1 − α)·f_c;
      4. image = decoder(t), the content's H × W cropped out from (margin, margin).

    ``color`` models have nothing to export (SpecError). ``opset`` 18 or newer
    (the dynamo exporter's lowest; it cannot convert these graphs down).
    """
    family = _check_exportable(model)
    _require_onnx()
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not _MIN_OPSET <= opset <= newest:
        raise SpecError(f"ONNX opset must be an integer from {_MIN_OPSET} to {newest}; got {opset!r}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise SpecError(f"the ONNX output file must end in .onnx; got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    card = model.card
    props = {
        "stylenorm.model": card.name,
        "stylenorm.architecture": card.architecture,
        "stylenorm.styles": json.dumps(card.styles),
        "stylenorm.contract": "RGB float in [0, 1], (N, 3, H, W)",
    }
    return family.export_onnx(portable_copy(model.module), path, opset, props)


_AXES = {0: "batch", 2: "height", 3: "width"}


def export_transformer(module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
    """A TransformerNet: input ``image`` (plus ``style_weights`` (N, S) with style rows) -> ``stylized``."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(_SAMPLE_BATCH, 3, _SAMPLE_SIZE, _SAMPLE_SIZE, generator=g)
    num_styles = getattr(module, "num_styles", 0)
    if not num_styles:
        used = _export_graph(_FastGraph(module), (image,), path, {"image": _AXES}, {"stylized": _AXES}, opset)
        _tag(path, {**props, "stylenorm.exporter": used})
        return [path]
    styles = torch.softmax(torch.rand(_SAMPLE_BATCH, num_styles, generator=g), dim=1)
    inputs = {"image": _AXES, "style_weights": {0: "batch"}}
    used = _export_graph(_MultiStyleGraph(module), (image, styles), path, inputs, {"stylized": _AXES}, opset)
    _tag(path, {**props, "stylenorm.exporter": used, "stylenorm.num_styles": str(num_styles)})
    return [path]


def export_adain(module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
    """An AdaINNet: the decoder at ``path`` and the encoder at ``<stem>.encoder.onnx`` (see export_onnx)."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(_SAMPLE_BATCH, 3, _SAMPLE_SIZE, _SAMPLE_SIZE, generator=g)
    adain = json.dumps(
        {"eps": module.eps, "unbiased": module.unbiased, "multiple": module.multiple, "margin": module.margin}
    )
    encoder_path = path.with_name(f"{path.stem}.encoder.onnx")
    feat_axes = {0: "batch", 2: "feature_height", 3: "feature_width"}
    used_enc = _export_graph(
        _EncoderGraph(module), (image,), encoder_path, {"image": _AXES}, {"features": feat_axes}, opset
    )
    with torch.no_grad():
        features = module.encode(image)
    used_dec = _export_graph(
        _DecoderGraph(module), (features,), path, {"features": feat_axes}, {"image": _AXES}, opset
    )
    props["stylenorm.adain"] = adain
    _tag(encoder_path, {**props, "stylenorm.exporter": used_enc, "stylenorm.part": "encoder"})
    _tag(path, {**props, "stylenorm.exporter": used_dec, "stylenorm.part": "decoder"})
    return [path, encoder_path]


class _WCTStyleGraph(nn.Module):
    """style (1, 3, h, w) -> per level, shallow to deep: mean (1, C) and Σ^{1/2} (1, C, C)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, style: Tensor) -> tuple[Tensor, ...]:
        stats = self.net.style_stats(style)
        return tuple(t for level in self.net.levels for t in stats[level])


class _WCTGraph(nn.Module):
    """image (N, 3, H, W) (mirrored and padded by the client), alpha (1,), then the style graph's
    outputs -> the stylized (N, 3, H, W)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor, alpha: Tensor, *stats: Tensor) -> Tensor:
        net, x = self.net, image
        by_level = {level: (stats[2 * i], stats[2 * i + 1]) for i, level in enumerate(net.levels)}
        for level in reversed(net.levels):
            feat = net.encoder(x, (level,))[level]
            t = net.transfer(feat, [by_level[level]], [1.0])
            x = net.decoders.by_level[level](alpha * t + (1 - alpha) * feat)
        return x


def _wct_names(levels: tuple[str, ...]) -> list[str]:
    return [f"{kind}_{level}" for level in levels for kind in ("mean", "root")]


def export_wct(module: nn.Module, path: Path, opset: int, props: dict[str, str]) -> list[Path]:
    """A WCTNet: ``path`` stylizes, ``<stem>.style.onnx`` summarises a style; the client mirrors the
    content by ``margin`` and pads it to a multiple of ``multiple`` (both in the metadata), runs the
    style graph, then the main graph with alpha, and crops the picture back out
    (:func:`wct_onnx_stylize`). No SVD or eigendecomposition: Newton–Schulz matmuls."""
    from stylenorm.nets.wct import MARGIN

    g = torch.Generator().manual_seed(0)
    # the whitening needs at least C elements per map: 512 at relu4_1, so 32×32 there (256 px)
    image = torch.rand(_SAMPLE_BATCH, 3, _WCT_SAMPLE, _WCT_SAMPLE, generator=g)
    style = torch.rand(1, 3, _WCT_SAMPLE + 8, _WCT_SAMPLE, generator=g)
    names = _wct_names(module.levels)
    style_path = path.with_name(f"{path.stem}.style.onnx")
    style_axes = {"style": {2: "style_height", 3: "style_width"}}
    used_style = _export_graph(
        _WCTStyleGraph(module), (style,), style_path, style_axes, {n: {} for n in names}, opset
    )
    with torch.no_grad():
        stats = _WCTStyleGraph(module)(style)
    inputs = {"image": _AXES, "alpha": {}, **{n: {} for n in names}}
    args = (image, torch.ones(1), *stats)
    positional = (_AXES, {}, tuple({} for _ in names))  # the stats are *args
    used = _export_graph(_WCTGraph(module), args, path, inputs, {"stylized": _AXES}, opset, positional)
    layout = {"levels": list(module.levels), "multiple": module.multiple, "margin": MARGIN}
    props["stylenorm.wct"] = json.dumps(layout)
    _tag(style_path, {**props, "stylenorm.exporter": used_style, "stylenorm.part": "style"})
    _tag(path, {**props, "stylenorm.exporter": used, "stylenorm.part": "stylize"})
    return [path, style_path]


def wct_onnx_stylize(
    paths: list[Path], content: np.ndarray, style: np.ndarray, alpha: float = 1.0, multiple: int = 8,
    margin: int = 16, sessions: dict[str, Any] | None = None,
) -> np.ndarray:
    """WCT run on the exported graphs: content (N, 3, H, W), one style (1, 3, h, w) -> (N, 3, H, W)."""
    sessions = sessions or _sessions(paths)
    if "image" not in sessions or "style" not in sessions:
        raise SpecError("need the WCT graph (input 'image') and its style graph (input 'style')")
    h, w = content.shape[2:]
    ph, pw = (-(h + 2 * margin)) % multiple, (-(w + 2 * margin)) % multiple
    mode = "reflect" if min(h, w) > margin + max(ph, pw) else "edge"
    padded = np.pad(content, ((0, 0), (0, 0), (margin, margin + ph), (margin, margin + pw)), mode=mode)
    style_session, main = sessions["style"], sessions["image"]
    stats = style_session.run(None, {"style": style.astype(np.float32)})
    feeds = {"image": padded.astype(np.float32), "alpha": np.array([alpha], dtype=np.float32)}
    feeds |= {o.name: t for o, t in zip(style_session.get_outputs(), stats, strict=True)}
    out = main.run(None, feeds)[0]
    return out[:, :, margin : margin + h, margin : margin + w]


def check_wct(module: nn.Module, paths: list[Path], parts: tuple[Tensor, ...]) -> float:
    """Max abs difference between the exported WCT recipe (:func:`wct_onnx_stylize`) and
    ``module.stylize`` for each sample of parts[0] with the style parts[1] (default: a fixed noise);
    a content too small to whiten at relu4_1 is replaced by a 256×280 noise image."""
    from stylenorm.nets.wct import MARGIN

    sessions = _sessions(paths)
    g = torch.Generator().manual_seed(1)
    x = parts[0].detach().float().cpu()
    if x.shape[2] * x.shape[3] < _WCT_SAMPLE**2:  # too small to whiten 512 channels at relu4_1
        x = torch.rand(x.shape[0], 3, _WCT_SAMPLE, _WCT_SAMPLE + 24, generator=g)
    style = parts[1].detach().float().cpu() if len(parts) > 1 else torch.rand(1, 3, 40, 36, generator=g)
    out = wct_onnx_stylize(paths, x.numpy(), style.numpy(), 0.8, module.multiple, MARGIN, sessions)
    ref = torch.cat([module.stylize(x[i : i + 1], [style], alpha=0.8) for i in range(x.shape[0])])
    return _diff(out, ref)


def _sessions(paths: list[Path]) -> dict[str, Any]:
    """{first input name: onnxruntime session} for each file (image, features …)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    found = {}
    for p in paths:
        if not Path(p).is_file():
            raise StylenormError(f"ONNX file {p} not found")
        session = ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
        found[session.get_inputs()[0].name] = session
    return found


def _mix_weights(n: int, k: int) -> Tensor:
    """Deterministic, uneven style mixtures (N, K) with rows summing to 1."""
    rows = torch.arange(n, dtype=torch.float32)[:, None] + torch.arange(k, dtype=torch.float32)[None]
    w = (rows % k + 1.0) ** 2
    return w / w.sum(1, keepdim=True)


def adain_onnx_stylize(
    paths: list[Path],
    content: np.ndarray,
    style: np.ndarray,
    alpha: float = 1.0,
    eps: float = 1e-5,
    unbiased: bool = False,
    multiple: int = 8,
    sessions: dict[str, Any] | None = None,
    margin: int = 0,
) -> np.ndarray:
    """AdaIN run on the exported graphs: content (N, 3, H, W), style (N or 1, 3, h, w) -> (N, 3, H, W)."""
    sessions = sessions or _sessions(paths)
    if "image" not in sessions or "features" not in sessions:
        raise SpecError("need the AdaIN encoder (input 'image') and decoder (input 'features') ONNX files")
    h, w = content.shape[2:]
    m = margin  # mirrored around the picture, as AdaINNet does (its ``margin``), then aligned bottom/right
    ph, pw = (-(h + 2 * m)) % multiple, (-(w + 2 * m)) % multiple
    mode = "reflect" if min(h, w) > m + max(ph, pw) else "edge"
    padded = np.pad(content, ((0, 0), (0, 0), (m, m + ph), (m, m + pw)), mode=mode)
    encode = sessions["image"]
    f_c = encode.run(None, {"image": padded.astype(np.float32)})[0].astype(np.float64)
    f_s = encode.run(None, {"image": style.astype(np.float32)})[0].astype(np.float64)

    def moments(f: np.ndarray, with_eps: bool) -> tuple[np.ndarray, np.ndarray]:
        flat = f.reshape(f.shape[0], f.shape[1], -1)
        ddof = 1 if unbiased and flat.shape[2] > 1 else 0
        var = flat.var(axis=2, ddof=ddof) + (eps if with_eps else 0.0)
        return flat.mean(axis=2)[:, :, None, None], np.sqrt(var)[:, :, None, None]

    mu_c, sigma_c = moments(f_c, True)
    mu_s, sigma_s = moments(f_s, unbiased)
    t = sigma_s * (f_c - mu_c) / sigma_c + mu_s
    t = alpha * t + (1 - alpha) * f_c
    out = sessions["features"].run(None, {"features": t.astype(np.float32)})[0]
    return out[:, :, m : m + h, m : m + w]


def check_onnx(model: LoadedModel, paths: list[Path], sample: Tensor | tuple[Tensor, ...]) -> float:
    """Max abs difference between the model and its ONNX files under onnxruntime on sample (N, 3, H, W).

    ``sample`` is an image batch; for ``multistyle`` optionally ``(image,
    style_weights)`` (default: fixed uneven mixtures); for ``adain`` optionally
    ``(content, style)``, which also checks the whole recipe of
    :func:`adain_onnx_stylize` against ``model.module(content, style)``.
    """
    family = _check_exportable(model)
    _require_onnx()
    parts = tuple(sample) if isinstance(sample, tuple | list) else (sample,)
    image = parts[0]
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[1] != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ShapeError(f"the check sample must be an RGB batch (N, 3, H, W); got {got}")
    with torch.no_grad():
        return family.check_onnx(model.module.eval(), paths, parts)


def _diff(a: np.ndarray, b: Tensor) -> float:
    if a.shape != tuple(b.shape):
        raise ShapeError(f"ONNX output has shape {a.shape}, the model's is {tuple(b.shape)}")
    return float(np.abs(a.astype(np.float64) - b.double().numpy()).max())


def check_transformer(module: nn.Module, paths: list[Path], parts: tuple[Tensor, ...]) -> float:
    """Max abs difference of a TransformerNet's graph (style rows: the weights of parts[1], or fixed
    uneven mixtures)."""
    sessions = _sessions(paths)
    if "image" not in sessions:
        raise SpecError(f"{paths} holds no graph with an 'image' input")
    x = parts[0].detach().float().cpu()
    feeds = {"image": x.numpy()}
    args: tuple[Tensor, ...] = (x,)
    num_styles = getattr(module, "num_styles", 0)
    if num_styles:
        weights = parts[1] if len(parts) > 1 else _mix_weights(x.shape[0], num_styles)
        weights = weights.detach().float().cpu()
        feeds["style_weights"], args = weights.numpy(), (x, weights)
    return _diff(sessions["image"].run(None, feeds)[0], module(*args))


def check_adain(module: nn.Module, paths: list[Path], parts: tuple[Tensor, ...]) -> float:
    """Max abs difference of an AdaINNet's encoder and decoder graphs; with a style (parts[1]), also of
    the whole recipe of :func:`adain_onnx_stylize` against the model."""
    sessions = _sessions(paths)
    if set(sessions) != {"image", "features"}:
        raise SpecError("an AdaIN check needs both files: the decoder and <stem>.encoder.onnx")
    x = parts[0].detach().float().cpu()
    features = module.encode(x)
    worst = _diff(sessions["image"].run(None, {"image": x.numpy()})[0], features)
    decoded = sessions["features"].run(None, {"features": features.numpy()})[0]
    worst = max(worst, _diff(decoded, module.decoder(features)))
    if len(parts) > 1:
        style = parts[1].detach().float().cpu()
        out = adain_onnx_stylize(
            paths, x.numpy(), style.numpy(),
            eps=module.eps, unbiased=module.unbiased, multiple=module.multiple, sessions=sessions,
            margin=module.margin,
        )
        worst = max(worst, _diff(out, module(x, style)))
    return worst


__all__ = [
    "PortableGroupStats",
    "adain_onnx_stylize",
    "check_onnx",
    "export_onnx",
    "portable_copy",
]
