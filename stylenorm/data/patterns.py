"""GIMP patterns (``.pat``): a reader, and tiling a small pattern up to a training-sized image.

The format (GIMP's ``devel-docs/pat.txt``; checked against the files in
Debian's gimp-data) is a big-endian header followed by raw pixels::

    uint32 header_size   24 + the length of the name, its NUL included
    uint32 version       1 (GIMP refuses any other)
    uint32 width
    uint32 height
    uint32 bytes         per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    char[4] magic        "GPAT"
    name                 UTF-8, NUL-terminated, up to header_size
    width·height·bytes   pixels, row by row, top row first, 8 bits per channel
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from PIL import Image

from stylenorm.errors import StylenormError

MAGIC = b"GPAT"
HEADER = struct.Struct(">5I4s")  # header_size, version, width, height, bytes per pixel, magic
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# GIMP's patterns are at most a few hundred pixels wide; this only stops absurd headers early
MAX_PIXELS = 50_000_000


class PatternError(StylenormError, ValueError):
    """A GIMP pattern file is missing, truncated or malformed; the message says which and why."""


def parse_pattern(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> Image.Image:
    """The bytes of a GIMP ``.pat`` file -> a Pillow image (L, LA, RGB or RGBA); its name in ``info``."""
    data = bytes(data)
    if len(data) < HEADER.size:
        raise PatternError(
            f"{name}: {len(data)} bytes is too short for a GIMP pattern header ({HEADER.size} bytes)"
        )
    header_size, version, width, height, bpp, magic = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PatternError(f"{name} is not a GIMP pattern: magic {magic!r} where {MAGIC!r} was expected")
    if version != 1:
        raise PatternError(f"{name}: GIMP pattern version {version} is not supported (only version 1)")
    if not HEADER.size <= header_size <= len(data):
        raise PatternError(
            f"{name}: header size {header_size} must be between {HEADER.size} and the file size {len(data)}"
        )
    if bpp not in MODES:
        raise PatternError(f"{name}: {bpp} bytes per pixel; a GIMP pattern has 1, 2, 3 or 4")
    if width == 0 or height == 0 or width * height > MAX_PIXELS:
        raise PatternError(f"{name}: a pattern of {width}×{height} pixels is empty or absurdly large")
    need = width * height * bpp
    pixels = data[header_size : header_size + need]
    if len(pixels) < need:
        raise PatternError(
            f"{name} is truncated: {width}×{height}×{bpp} needs {need} bytes of pixels;"
            f" the file has {len(pixels)}"
        )
    # GIMP reads the name leniently too (it falls back to a default for invalid UTF-8)
    title = data[HEADER.size : header_size].split(b"\0", 1)[0].decode("utf-8", errors="replace")
    img = Image.frombytes(MODES[bpp], (width, height), pixels)
    img.info["name"] = title
    return img


def read_pattern(path: str | os.PathLike) -> Image.Image:
    """Read a GIMP ``.pat`` file -> a Pillow image (L, LA, RGB or RGBA); its name in ``info['name']``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PatternError(f"cannot read the pattern {path}: {exc.strerror or exc}") from exc
    return parse_pattern(data, str(path))


def tile_image(img: Image.Image, width: int, height: int) -> Image.Image:
    """Repeat ``img`` from its top-left corner to fill ``width``×``height`` (no resampling: stays crisp)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"the tiled size must be positive; got {width}×{height}")
    out = Image.new(img.mode, (width, height))
    for top in range(0, height, img.height):
        for left in range(0, width, img.width):
            out.paste(img, (left, top))
    return out


__all__ = ["MAGIC", "PatternError", "parse_pattern", "read_pattern", "tile_image"]
