"""The model families: one module each, registered here by one line.

A new family: a module with a :class:`~stylenorm.families.base.Family` subclass, and one
``register(...)`` line below (or, from outside the package, a call to :func:`register`).
"""

from __future__ import annotations

from stylenorm.families.adain import AdaINFamily
from stylenorm.families.base import BatchRow, Capabilities, Family, Request
from stylenorm.families.cgan import CganFamily
from stylenorm.families.color import ColorFamily
from stylenorm.families.fast import FastFamily
from stylenorm.families.multistyle import MultistyleFamily
from stylenorm.families.optimise import OptimiseFamily
from stylenorm.families.spade import SpadeFamily
from stylenorm.families.wct import WCTFamily
from stylenorm.repository import ModelCard, ModelError

FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Make an architecture known to every command and the server; returns the family."""
    if not getattr(family, "name", None) or getattr(family, "kind", None) not in (
        "stylize",
        "optimise",
        "synthesize",
        "generate",
    ):
        raise ValueError(f"a family needs a name and a kind; got {family!r}")
    FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Forget an architecture (tests that register a toy family)."""
    FAMILIES.pop(name, None)


def family_of(what: str | ModelCard) -> Family:
    """The family of an architecture name or a card; ModelError for an unknown one."""
    arch = what.architecture if isinstance(what, ModelCard) else what
    family = FAMILIES.get(arch)
    if family is None:
        shown = f"{what.name}: unknown" if isinstance(what, ModelCard) else "unknown"
        raise ModelError(f"{shown} architecture {arch!r}; known: {', '.join(FAMILIES)}")
    return family


def of_kind(*kinds: str) -> tuple[str, ...]:
    """The architectures served by these kinds of work."""
    return tuple(name for name, f in FAMILIES.items() if f.kind in kinds)


register(FastFamily())
register(MultistyleFamily())
register(AdaINFamily())
register(OptimiseFamily())
register(ColorFamily())
register(WCTFamily())
register(SpadeFamily())
register(CganFamily())

__all__ = [
    "FAMILIES",
    "BatchRow",
    "Capabilities",
    "Family",
    "Request",
    "family_of",
    "of_kind",
    "register",
    "unregister",
]
