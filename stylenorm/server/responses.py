"""What the OpenAPI schema says the routes answer: image bodies and the error shapes by status."""

from __future__ import annotations

from typing import Any

from stylenorm.server.schemas import MEDIA_TYPES, ErrorBody

IMAGE_SCHEMA = {"schema": {"type": "string", "format": "binary"}}


def image_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is an image in one of the output formats."""
    return {200: {"description": description, "content": {t: IMAGE_SCHEMA for t in MEDIA_TYPES.values()}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error body under each of these statuses, with what it means."""
    what = {
        400: "malformed body",
        401: "missing or wrong API key",
        404: "unknown model, style or class",
        413: "body or image too large",
        415: "not a PNG, JPEG or WebP image",
        422: "invalid parameters or a corrupt image",
        503: "queue full or models still loading (Retry-After)",
        504: "deadline exceeded",
    }
    return {c: {"model": ErrorBody, "description": what.get(c, "error")} for c in codes}
