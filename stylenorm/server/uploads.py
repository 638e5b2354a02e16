"""Uploaded images and form values, checked: what every image endpoint decodes the same way.

Errors are the server's JSON errors naming the form field (``style 2: …``); nothing here knows a route.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
from collections.abc import Iterator

import torch
from PIL import Image

from stylenorm.imageio import WEB_FORMATS, ImageError, load_image, load_mask, open_image
from stylenorm.server.errors import ApiError


def with_field(exc: ImageError, field: str) -> ImageError:
    """The same kind of image error, its message prefixed by the form field it came from."""
    return type(exc)(f"{field}: {exc}")


def decode_upload(data: bytes, field: str, max_pixels: int) -> torch.Tensor:
    """An uploaded image (PNG, JPEG or WebP, at most max_pixels) -> (1, 3, H, W) in [0, 1]."""
    if not data:
        raise ApiError(422, "corrupt_image", f"{field}: the upload is empty (0 bytes)")
    try:
        return load_image(data, max_pixels, WEB_FORMATS)
    except ImageError as exc:
        raise with_field(exc, field) from exc


def decode_mask(data: bytes, field: str, size: tuple[int, int], max_pixels: int) -> torch.Tensor:
    """An uploaded grayscale mask, resized to size (H, W) -> (H, W) in [0, 1]."""
    if not data:
        raise ApiError(422, "corrupt_image", f"{field}: the upload is empty (0 bytes)")
    try:
        open_image(data, max_pixels, WEB_FORMATS).close()  # the format allow-list and pixel limit first
        return load_mask(data, size, max_pixels)
    except ImageError as exc:
        raise with_field(exc, field) from exc


def check_weights(weights: list[float] | None, count: int) -> list[float] | None:
    """Mixing weights: one per style, finite, non-negative, not all zero (None: not given)."""
    if not weights:
        return None
    if len(weights) != count:
        raise ApiError(
            422,
            "invalid_parameters",
            f"got {len(weights)} weights for {count} styles; give one weight per style, "
            "uploaded files first, then named styles",
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ApiError(
            422, "invalid_parameters", f"weights must be finite, non-negative, not all 0; got {weights}"
        )
    return [float(w) for w in weights]


def declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding it ((0, 0) when it is not an
    image: decoding reports that properly)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except Exception:
        return 0, 0
    return int(w), int(h)


def declared_pixels(data: bytes) -> int:
    """Width × height from an image file's header, without decoding it (0 when it is not an image)."""
    w, h = declared_size(data)
    return w * h


class PixelBudget:
    """Decoded pixels in flight, bounded: the server's worst-case image memory is a setting.

    A request reserves the pixels its uploads declare before anything is decoded and holds them
    until its answer is encoded. More than the whole budget is 413; more than what is left now is
    503 with Retry-After (the memory frees as requests finish).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the budget for the block."""
        if pixels > self.limit:
            raise ApiError(
                413, "image_too_large",
                f"the uploads hold {pixels:,} pixels; this server handles at most {self.limit:,} at once",
            )
        with self._lock:
            if self.in_use + pixels > self.limit:
                raise ApiError(
                    503, "busy", "the server holds all the image pixels its memory budget allows; retry soon",
                    {"Retry-After": "2"},
                )
            self.in_use += pixels
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= pixels


__all__ = [
    "PixelBudget",
    "check_weights",
    "declared_pixels",
    "declared_size",
    "decode_mask",
    "decode_upload",
    "with_field",
]
