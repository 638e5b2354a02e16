"""The exception hierarchy of stylenorm.

Every error the package raises on purpose derives from :class:`StylenormError`,
so callers (the CLI, the HTTP server) can map them to messages and status codes.
Messages say what was wrong and what would be right.
"""

from __future__ import annotations


class StylenormError(Exception):
    """Root of all errors raised deliberately by stylenorm."""


class SpecError(StylenormError, ValueError):
    """A norm spec string, or an option given with it, is not understood."""


class ShapeError(StylenormError, ValueError):
    """A tensor (input or condition) has the wrong shape, dtype or range."""


class MissingWeightsError(StylenormError, FileNotFoundError):
    """A weights file that is needed was not found; the message names the file."""
