"""Spec strings: ``make_norm("group:32", 64)``, ``make_norm("spade:instance:3x3", 64, label_nc=151)``.

Grammar: ``name[:arg[:arg...]]``, lowercase. A conditional spec may carry the
spec of the parameter-free statistic it modulates (``cbn:group:8``,
``spade:sync_batch:5x5``). Two tables: statistics (parameter-free, used
inside conditional layers and by ``make_stats``) and whole layers
(``make_norm``). Unknown names and bad arguments raise :class:`SpecError`
listing what is valid.

Each name is registered where its class is defined, with :func:`register_stats`
or :func:`register_norm` on a builder ``(num_features, args, spec, **options)``
beside the class (a statistic becomes a layer with a per-channel affine by
:func:`stylenorm.norm.modulation.affine_layer`). This module holds only the
tables and the parsing; importing :mod:`stylenorm.norm` fills the tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from stylenorm.errors import SpecError


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


Builder = Callable[..., nn.Module]  # (num_features, args, spec, **options) -> module


def _register(table: dict[str, Entry], name: str, **entry: Any) -> Callable[[Builder], Builder]:
    def decorate(fn: Builder) -> Builder:
        if name in table:
            raise ValueError(f"{name!r} is registered twice")
        table[name] = Entry(build=fn, **entry)
        return fn

    return decorate


def register_stats(
    name: str, usage: str, summary: str, options: tuple[str, ...], max_args: int = 0
) -> Callable[[Builder], Builder]:
    """Decorate the builder of the parameter-free statistic ``name`` (``make_stats``)."""
    return _register(_STATS, name, usage=usage, summary=summary, options=options, max_args=max_args)


def register_norm(
    name: str,
    usage: str,
    summary: str,
    options: tuple[str, ...],
    max_args: int = 0,
    conditional: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorate the builder of the layer ``name`` (``make_norm``); conditional: called ``layer(x, cond)``."""
    entry = {"usage": usage, "summary": summary, "options": options, "max_args": max_args}
    return _register(_NORMS, name, conditional=conditional, **entry)


def register_affine_layer(
    stats_name: str, affine_default: bool, summary: str, bias: bool | None = True
) -> None:
    """Register the statistic ``stats_name`` as a layer too: it × a learned per-channel affine.

    The layer takes the statistic's options plus ``affine`` (default affine_default) and ``bias``
    (bias=None: no shift and no ``bias`` option, as RMSNorm).
    """
    stats = _STATS[stats_name]

    def build(c: int, args: list[str], spec: str, affine: bool = affine_default, **options: Any) -> nn.Module:
        # imported here: modulation.py registers its own layers through this module
        from stylenorm.norm.base import Normalization
        from stylenorm.norm.modulation import ChannelAffine

        shift = options.pop("bias", True) if bias is not None else False
        built = stats.build(c, args, spec, **options)
        return Normalization(built, ChannelAffine(c, affine, shift), num_features=c)

    extra = ("affine", "bias") if bias is not None else ("affine",)
    _register(_NORMS, stats_name, usage=stats.usage, summary=summary, options=(*stats.options, *extra),
              max_args=stats.max_args)(build)


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


def _listed(table: dict[str, Entry]) -> list[Entry]:
    """The entries as listed to users: plain layers first, then conditional ones, each as registered."""
    return sorted(table.values(), key=lambda e: e.conditional)


def _lookup(table: dict[str, Entry], spec: str, kind: str) -> tuple[Entry, list[str]]:
    name, args = parse_spec(spec)
    if name not in table:
        raise SpecError(
            f"unknown {kind} {name!r} in spec {spec!r}; valid: " + ", ".join(e.usage for e in _listed(table))
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
    return {e.usage: e.summary for e in _listed(_NORMS)}


def available_stats() -> dict[str, str]:
    """Every statistic spec usage mapped to a one-line summary."""
    return {e.usage: e.summary for e in _STATS.values()}


# ----------------------------------------------------------------------------- argument parsing


def one_int(spec: str, args: list[str], what: str, default: int | None = None) -> int:
    """The one positive integer argument of spec (default when absent, SpecError if required)."""
    if not args:
        if default is None:
            raise SpecError(f"{spec!r} needs {what} as an argument, e.g. '{spec}:32'")
        return default
    if len(args) > 1 or not args[0].isdigit() or int(args[0]) < 1:
        raise SpecError(f"{spec!r}: {what} must be one positive integer; got {':'.join(args)!r}")
    return int(args[0])


def one_float(spec: str, args: list[str], what: str, default: float) -> float:
    """The one number argument of spec, default when absent."""
    if not args:
        return default
    try:
        if len(args) > 1:
            raise ValueError
        return float(args[0])
    except ValueError:
        raise SpecError(f"{spec!r}: {what} must be one number; got {':'.join(args)!r}") from None


KERNEL = re.compile(r"^(\d+)x(\d+)$")  # SPADE's kernel argument, like 3x3

# the options of the running-statistics family, and of any statistic a conditional layer wraps
RUN_OPTIONS = ("eps", "momentum", "track_running_stats")
STAT_OPTIONS = ("eps", "momentum", "track_running_stats", "unbiased", "process_group")


def require_option(spec: str, options: dict[str, Any], name: str, example: str) -> Any:
    """Pop the required option name (SpecError with an example call when missing)."""
    if options.get(name) is None:
        raise SpecError(f"{spec!r} needs the option {name}=…, e.g. make_norm({example})")
    return options.pop(name)


def inner_stats(spec: str, stats_spec: str, c: int, options: dict[str, Any]) -> nn.Module:
    """The statistic a conditional layer modulates, given the options left for it."""
    entry, args = _lookup(_STATS, stats_spec, "statistic")
    _check_options(entry, f"{spec} (statistic {stats_spec!r})", options)
    return entry.build(c, args, stats_spec, **options)


__all__ = [
    "KERNEL",
    "RUN_OPTIONS",
    "STAT_OPTIONS",
    "Entry",
    "available_norms",
    "available_stats",
    "inner_stats",
    "make_norm",
    "make_stats",
    "norm_entry",
    "one_float",
    "one_int",
    "parse_spec",
    "register_affine_layer",
    "register_norm",
    "register_stats",
    "require_option",
]
