"""Spec strings: ``make_norm("group:32", 64)``, ``make_norm("spade:instance:3x3", 64, label_nc=151)``.

Grammar: ``name[:arg[:arg...]]``, lowercase. A conditional spec may carry the
spec of the parameter-free statistic it modulates (``cbn:group:8``,
``spade:sync_batch:5x5``). Two registries: statistics (parameter-free, used
inside conditional layers and by ``make_stats``) and whole layers
(``make_norm``). Unknown names and bad arguments raise :class:`SpecError`
listing what is valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from stylenorm.errors import SpecError
from stylenorm.norm import layers as L
from stylenorm.norm import stats as S
from stylenorm.norm import whitening as W
from stylenorm.norm.base import Normalization
from stylenorm.norm.modulation import ChannelAffine, EmbeddingAffine, StyleStatistics, VectorAffine
from stylenorm.norm.spade import ClassModulation, SpatialModulation


@dataclass(frozen=True)
class Entry:
    """One registered name: how to build it, its argument usage and accepted options."""

    build: Callable[..., nn.Module]
    usage: str
    summary: str
    options: tuple[str, ...]
    conditional: bool = False
    max_args: int = 0


_STATS: dict[str, Entry] = {}
_NORMS: dict[str, Entry] = {}


def _register(table: dict[str, Entry], name: str, **entry: Any) -> Callable:
    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        table[name] = Entry(build=fn, **entry)
        return fn

    return decorate


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """Split ``"name:arg:arg"`` into ``("name", ["arg", "arg"])``; raise SpecError on junk."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"a norm spec must be a non-empty string like 'group:32'; got {spec!r}")
    parts = spec.strip().split(":")
    if any(p == "" for p in parts):
        raise SpecError(f"empty part in norm spec {spec!r} (parts are separated by single ':')")
    if parts[0] != parts[0].lower():
        raise SpecError(f"norm names are lowercase: {spec!r} -> {spec.lower()!r}")
    return parts[0], parts[1:]


def _lookup(table: dict[str, Entry], spec: str, kind: str) -> tuple[Entry, list[str]]:
    name, args = parse_spec(spec)
    if name not in table:
        raise SpecError(
            f"unknown {kind} {name!r} in spec {spec!r}; valid: "
            + ", ".join(e.usage for e in table.values())
        )
    entry = table[name]
    if entry.max_args == 0 and args:
        raise SpecError(f"{name!r} takes no ':' arguments; got {spec!r} (usage: {entry.usage})")
    return entry, args


def _check_options(entry: Entry, spec: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        takes = ", ".join(entry.options) if entry.options else "no options"
        raise SpecError(
            f"option(s) {', '.join(unknown)} not understood by {spec!r}; it takes: {takes}"
        )


def make_stats(spec: str, num_features: int, **options: Any) -> nn.Module:
    """Build a parameter-free statistic from its spec, e.g. ``make_stats("group:8", 64)``."""
    entry, args = _lookup(_STATS, spec, "statistic")
    _check_options(entry, spec, options)
    return entry.build(num_features, args, spec, **options)


def make_norm(spec: str, num_features: int, **options: Any) -> nn.Module:
    """Build a normalization layer from its spec, e.g. ``make_norm("cin", 64, num_styles=8)``.

    Conditional layers are called ``layer(x, cond)``, all others ``layer(x)``.
    """
    if not isinstance(num_features, int) or num_features < 1:
        raise SpecError(f"num_features must be a positive int; got {num_features!r}")
    entry, args = _lookup(_NORMS, spec, "norm")
    _check_options(entry, spec, options)
    return entry.build(num_features, args, spec, **options)


def norm_entry(spec: str) -> Entry:
    """The registry entry behind a norm spec (options, conditional flag); SpecError if unknown."""
    return _lookup(_NORMS, spec, "norm")[0]


def available_norms() -> dict[str, str]:
    """Every norm spec usage mapped to a one-line summary."""
    return {e.usage: e.summary for e in _NORMS.values()}


def available_stats() -> dict[str, str]:
    """Every statistic spec usage mapped to a one-line summary."""
    return {e.usage: e.summary for e in _STATS.values()}


# ----------------------------------------------------------------------------- argument parsing


def _one_int(spec: str, args: list[str], what: str, default: int | None = None) -> int:
    if not args:
        if default is None:
            raise SpecError(f"{spec!r} needs {what} as an argument, e.g. '{spec}:32'")
        return default
    if len(args) > 1 or not args[0].isdigit() or int(args[0]) < 1:
        raise SpecError(f"{spec!r}: {what} must be one positive integer; got {':'.join(args)!r}")
    return int(args[0])


def _one_float(spec: str, args: list[str], what: str, default: float) -> float:
    if not args:
        return default
    try:
        if len(args) > 1:
            raise ValueError
        return float(args[0])
    except ValueError:
        raise SpecError(f"{spec!r}: {what} must be one number; got {':'.join(args)!r}") from None


_KERNEL = re.compile(r"^(\d+)x(\d+)$")


def _require(spec: str, options: dict[str, Any], name: str, example: str) -> Any:
    if options.get(name) is None:
        raise SpecError(f"{spec!r} needs the option {name}=…, e.g. make_norm({example})")
    return options.pop(name)


# ----------------------------------------------------------------------------- statistics

_RUN_OPTS = ("eps", "momentum", "track_running_stats")


def _stats(name: str, usage: str, summary: str, options: tuple[str, ...], max_args: int = 0):
    return _register(_STATS, name, usage=usage, summary=summary, options=options, max_args=max_args)


@_stats("none", "none", "no normalization (x̂ = x)", ())
def _none_stats(c: int, args: list[str], spec: str) -> nn.Module:
    return S.IdentityStats()


@_stats("batch", "batch", "BatchNorm statistics over (N, H, W), running mean/var", _RUN_OPTS)
def _batch_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.BatchStats(c, **o)


@_stats(
    "sync_batch", "sync_batch", "BatchNorm statistics reduced over all processes (CPU/gloo too)",
    (*_RUN_OPTS, "process_group"),
)
def _sync_batch_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    from stylenorm.norm.distributed import SyncBatchStats

    return SyncBatchStats(c, **o)


@_stats(
    "batch_renorm", "batch_renorm", "Batch Renormalization (r, d corrections)",
    ("eps", "momentum", "r_max", "d_max", "warmup_steps", "ramp_steps"),
)
def _renorm_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.BatchRenormStats(c, **o)


@_stats(
    "cross_iter_batch", "cross_iter_batch:k", "Cross-Iteration BN over the last k iterations",
    ("eps", "momentum", "compensate"), max_args=1,
)
def _cross_iter_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    from stylenorm.norm.cross_iter import CrossIterBatchStats

    return CrossIterBatchStats(c, window=_one_int(spec, args, "the window k"), **o)


@_stats(
    "instance", "instance", "InstanceNorm statistics over (H, W)",
    (*_RUN_OPTS, "unbiased"),
)
def _instance_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.InstanceStats(c, **o)


@_stats("layer", "layer", "LayerNorm statistics over (C, H, W) (= group:1)", ("eps",))
def _layer_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.GroupStats(c, 1, **o)


@_stats("group", "group:G", "GroupNorm statistics over (C/G, H, W)", ("eps",), max_args=1)
def _group_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.GroupStats(c, _one_int(spec, args, "the group count G"), **o)


@_stats("pono", "pono", "positional statistics over C per pixel", ("eps", "unbiased"))
def _pono_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.PositionStats(c, **o)


@_stats("rms", "rms", "root mean square over C per pixel (no centering)", ("eps",))
def _rms_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.RMSStats(c, **o)


@_stats("frn", "frn", "filter response: second moment over (H, W)", ("eps", "learnable_eps"))
def _frn_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.FRNStats(c, **o)


@_stats(
    "switchable", "switchable", "learned mixture of IN, LN and BN statistics",
    ("eps", "momentum", "using_bn"),
)
def _switch_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return S.SwitchableStats(c, **o)


@_stats("zca", "zca:G", "Decorrelated BN statistics: ZCA whitening over (N, H, W) per group of G channels "
        "(eigendecomposition; default G 16), running mean and whitening matrix", ("eps", "momentum"),
        max_args=1)
def _zca_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return W.BatchWhitening(c, _one_int(spec, args, "the group size", min(16, c)), method="eigh", **o)


@_stats("iternorm", "iternorm:G", "IterNorm statistics: whitening over (N, H, W) per group of G channels by "
        "Newton–Schulz iterations (default G 64, iterations=5; no eigendecomposition)",
        ("eps", "momentum", "iterations"), max_args=1)
def _iternorm_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return W.BatchWhitening(c, _one_int(spec, args, "the group size", min(64, c)), method="newton", **o)


@_stats("instance_whiten", "instance_whiten:G", "whitening per sample over (H, W), groups of G channels "
        "(default: all; WCT's): Newton–Schulz, or method='eigh' exact", ("eps", "method", "iterations"),
        max_args=1)
def _instance_whiten_stats(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return W.InstanceWhitening(c, _one_int(spec, args, "the group size", c), **o)


# ----------------------------------------------------------------------------- layers


def _norm(name: str, usage: str, summary: str, options: tuple[str, ...], max_args: int = 0,
          conditional: bool = False):
    return _register(
        _NORMS, name, usage=usage, summary=summary, options=options, max_args=max_args,
        conditional=conditional,
    )


def _affine_layer(stat_name: str, affine_default: bool, summary: str) -> None:
    """Register ``stat_name`` as a layer: that statistic × a learned per-channel affine."""
    stat = _STATS[stat_name]

    def build(c: int, args: list[str], spec: str, affine: bool = affine_default,
              bias: bool = True, **o: Any) -> nn.Module:
        return Normalization(
            stat.build(c, args, spec, **o), ChannelAffine(c, affine, bias), num_features=c
        )

    _NORMS[stat_name] = Entry(
        build=build, usage=stat.usage, summary=summary,
        options=(*stat.options, "affine", "bias"), max_args=stat.max_args,
    )


_norm("none", "none", "identity", ())(lambda c, args, spec: nn.Identity())
_affine_layer("batch", True, "BatchNorm (torch.nn.BatchNorm2d compatible)")
_affine_layer("sync_batch", True, "cross-process BatchNorm; CUDA (NCCL) and CPU (gloo)")
_affine_layer("batch_renorm", True, "Batch Renormalization")
_affine_layer("cross_iter_batch", True, "Cross-Iteration BatchNorm / CmBN over k iterations")
_affine_layer("instance", False, "InstanceNorm (affine off by default, as torch)")
_affine_layer("layer", True, "LayerNorm over (C, H, W) with per-channel affine (= group:1)")
_affine_layer("group", True, "GroupNorm (torch.nn.GroupNorm compatible)")
_affine_layer("zca", True, "Decorrelated BatchNorm (ZCA whitening, eigh) with per-channel affine")
_affine_layer("iternorm", True, "IterNorm (Newton–Schulz whitening) with per-channel affine")
_affine_layer("instance_whiten", False, "instance whitening (affine off by default, like instance)")
_affine_layer("switchable", True, "Switchable Normalization")


@_norm("lrn", "lrn:n", "Local Response Norm (torch.nn.LocalResponseNorm)",
       ("alpha", "beta", "k"), max_args=1)
def _lrn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return nn.LocalResponseNorm(_one_int(spec, args, "the window n", default=5), **o)


@_norm("ibn", "ibn:ratio", "IBN-a: IN on ratio·C channels, BN on the rest",
       ("eps", "momentum"), max_args=1)
def _ibn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return L.IBN(c, _one_float(spec, args, "the IN ratio", 0.5), **o)


@_norm("frn", "frn", "Filter Response Norm + TLU", ("eps", "learnable_eps", "tlu"))
def _frn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return L.FilterResponseNorm(c, **o)


@_norm("pono", "pono", "Positional Norm (moments available for a moment shortcut)",
       ("eps", "affine", "unbiased", "return_stats"))
def _pono(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return L.PositionalNorm(c, **o)


@_norm("rms", "rms", "RMSNorm over C per pixel, per-channel gain", ("eps", "affine"))
def _rms(c: int, args: list[str], spec: str, eps: float = 1e-6, affine: bool = True) -> nn.Module:
    return Normalization(S.RMSStats(c, eps), ChannelAffine(c, affine, bias=False), num_features=c)


@_norm("evo_b0", "evo_b0", "EvoNorm-B0", ("eps", "momentum"))
def _evo_b0(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return L.EvoNormB0(c, **o)


@_norm("evo_s0", "evo_s0:G", "EvoNorm-S0 with G groups (default 32)", ("eps",), max_args=1)
def _evo_s0(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    return L.EvoNormS0(c, _one_int(spec, args, "the group count", default=32), **o)


# ----------------------------------------------------------------------------- conditional layers


def _inner_stats(spec: str, stats_spec: str, c: int, options: dict[str, Any]) -> nn.Module:
    """The statistic a conditional layer modulates, given the options left for it."""
    entry, args = _lookup(_STATS, stats_spec, "statistic")
    _check_options(entry, f"{spec} (statistic {stats_spec!r})", options)
    return entry.build(c, args, stats_spec, **options)


_STAT_OPTS = ("eps", "momentum", "track_running_stats", "unbiased", "process_group")


@_norm("cin", "cin[:<stats>]", "Conditional Instance Norm: a (γ, β) row per style, mixable",
       ("num_styles", *_STAT_OPTS), max_args=8, conditional=True)
def _cin(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    k = _require(spec, o, "num_styles", f"'{spec}', 64, num_styles=8")
    stats = _inner_stats(spec, ":".join(args) or "instance", c, o)
    return Normalization(stats, EmbeddingAffine(k, c, "style"), num_features=c)


@_norm("cbn", "cbn[:<stats>]",
       "Conditional BatchNorm: per class (num_classes) or from a vector (cond_dim)",
       ("num_classes", "cond_dim", "hidden", *_STAT_OPTS), max_args=8, conditional=True)
def _cbn(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    classes, cond_dim, hidden = o.pop("num_classes", None), o.pop("cond_dim", None), o.pop("hidden", None)
    if (classes is None) == (cond_dim is None):
        raise SpecError(
            f"{spec!r} needs exactly one of num_classes=… (a table per class) or "
            f"cond_dim=… (an MLP of a condition vector)"
        )
    if classes is not None and hidden is not None:
        raise SpecError(f"{spec!r}: hidden applies to cond_dim only")
    mod = EmbeddingAffine(classes, c, "class") if classes is not None else VectorAffine(cond_dim, c, hidden)
    stats = _inner_stats(spec, ":".join(args) or "batch", c, o)
    return Normalization(stats, mod, num_features=c)


@_norm("adain", "adain", "Adaptive Instance Norm: γ, β = σ, μ of the style features",
       ("eps", "unbiased"), conditional=True)
def _adain(c: int, args: list[str], spec: str, eps: float = 1e-5, unbiased: bool = False) -> nn.Module:
    return Normalization(
        S.InstanceStats(c, eps, unbiased=unbiased), StyleStatistics(c, eps, unbiased), num_features=c
    )


@_norm("wct", "wct", "whitening and colouring (WCT): the content whitened per sample, coloured with the "
       "style's mean and covariance", ("eps", "method", "iterations"), conditional=True)
def _wct(c: int, args: list[str], spec: str, eps: float = 1e-5, method: str = "newton",
         iterations: int = 30) -> nn.Module:
    return Normalization(
        W.InstanceWhitening(c, c, eps, method, iterations),  # type: ignore[arg-type]
        W.StyleCovariance(c, eps, method, iterations),  # type: ignore[arg-type]
        num_features=c,
    )


@_norm("spade", "spade:<stats>:<k>x<k>",
       "SPADE: per-pixel 1+γ, β from a conv net over the label map",
       ("label_nc", "hidden", *_STAT_OPTS), max_args=8, conditional=True)
def _spade(c: int, args: list[str], spec: str, hidden: int = 128, **o: Any) -> nn.Module:
    label_nc = _require(spec, o, "label_nc", f"'{spec}', 64, label_nc=151")
    kernel = 3
    if args and _KERNEL.match(args[-1]):
        kh, kw = (int(v) for v in _KERNEL.match(args[-1]).groups())
        if kh != kw or kh % 2 == 0:
            raise SpecError(f"{spec!r}: the kernel must be square and odd, like 3x3 or 5x5")
        kernel, args = kh, args[:-1]
    stats = _inner_stats(spec, ":".join(args) or "instance", c, o)
    return Normalization(stats, SpatialModulation(label_nc, c, kernel, hidden), num_features=c)


@_norm("clade", "clade[:<stats>]", "CLADE: per-class γ, β looked up per pixel",
       ("label_nc", *_STAT_OPTS), max_args=8, conditional=True)
def _clade(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    label_nc = _require(spec, o, "label_nc", f"'{spec}', 64, label_nc=151")
    stats = _inner_stats(spec, ":".join(args) or "instance", c, o)
    return Normalization(stats, ClassModulation(label_nc, c), num_features=c)


@_norm("film", "film", "FiLM: γ, β from a condition vector (no normalization)",
       ("cond_dim", "hidden"), conditional=True)
def _film(c: int, args: list[str], spec: str, **o: Any) -> nn.Module:
    cond_dim = _require(spec, o, "cond_dim", f"'{spec}', 64, cond_dim=128")
    return Normalization(S.IdentityStats(), VectorAffine(cond_dim, c, o.get("hidden")), num_features=c)
