"""GIMP .pat patterns: every pixel format, the embedded name, malformed files, tiling."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylenorm.data.patterns import PatternError, parse_pattern, read_pattern, tile_image
from stylenorm.errors import StylenormError


def pat_bytes(
    pixels: np.ndarray,
    name: str = "Test",
    *,
    version: int = 1,
    magic: bytes = b"GPAT",
    header_size: int | None = None,
    bpp: int | None = None,
) -> bytes:
    """A .pat file written by hand from the format: big-endian header, NUL-terminated name, raw pixels."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    title = name.encode("utf-8") + b"\0"
    size = 24 + len(title) if header_size is None else header_size
    header = struct.pack(">5I", size, version, width, height, channels if bpp is None else bpp) + magic
    return header + title + pixels.astype(np.uint8).tobytes()


def pixels(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_every_pixel_format_is_read_exactly(channels: int, mode: str) -> None:
    raw = pixels(3, 5, channels, seed=channels)
    img = parse_pattern(pat_bytes(raw, "Wood #1"))
    assert img.mode == mode
    assert img.size == (5, 3)  # width × height: rows are stored top row first
    np.testing.assert_array_equal(np.asarray(img), raw)
    assert img.info["name"] == "Wood #1"


def test_read_pattern_from_a_file_with_a_utf8_name_and_trailing_bytes(tmp_path: Path) -> None:
    raw = pixels(4, 2, 3)
    path = tmp_path / "ümlaut.pat"
    # GIMP reads only the pixels it needs; bytes after them are ignored, not an error
    path.write_bytes(pat_bytes(raw, "Crème brûlée") + b"extra")
    img = read_pattern(path)
    assert img.info["name"] == "Crème brûlée"
    np.testing.assert_array_equal(np.asarray(img), raw)


def test_a_name_field_without_nul_or_with_bad_utf8_is_tolerated() -> None:
    raw = pixels(2, 2, 1)
    body = struct.pack(">5I", 24 + 3, 1, 2, 2, 1) + b"GPAT" + b"a\xffb" + raw.tobytes()
    img = parse_pattern(body)
    assert img.info["name"] == "a\ufffdb"
    np.testing.assert_array_equal(np.asarray(img), raw)


def test_a_header_without_a_name_is_fine() -> None:
    raw = pixels(2, 3, 3)
    img = parse_pattern(struct.pack(">5I", 24, 1, 3, 2, 3) + b"GPAT" + raw.tobytes())
    assert img.info["name"] == ""
    np.testing.assert_array_equal(np.asarray(img), raw)


GOOD = pat_bytes(pixels(4, 4, 3))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (GOOD[:23], "too short"),
        (pat_bytes(pixels(4, 4, 3), magic=b"GIMP"), "not a GIMP pattern"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a GIMP pattern"),
        (pat_bytes(pixels(4, 4, 3), version=2), "version 2"),
        (pat_bytes(pixels(4, 4, 3), header_size=20), "header size 20"),
        (pat_bytes(pixels(4, 4, 3), header_size=10_000), "header size 10000"),
        (pat_bytes(pixels(4, 4, 3), bpp=0), "0 bytes per pixel"),
        (pat_bytes(pixels(4, 4, 3), bpp=5), "5 bytes per pixel"),
        (pat_bytes(np.zeros((0, 4, 3))), "empty"),
        (pat_bytes(np.zeros((4, 0, 3))), "empty"),
        (struct.pack(">5I", 29, 1, 100_000, 100_000, 3) + b"GPAT" + b"huge\0", "absurdly large"),
        (GOOD[:-1], "truncated"),
        (pat_bytes(pixels(4, 4, 3), bpp=4), "truncated"),
    ],
)
def test_malformed_files_raise_a_clear_pattern_error(data: bytes, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        parse_pattern(data, "x.pat")


def test_pattern_errors_are_stylenorm_errors_and_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pat"
    bad.write_bytes(GOOD[:30])
    with pytest.raises(StylenormError, match=r"bad\.pat is truncated"):
        read_pattern(bad)
    with pytest.raises(ValueError, match="cannot read the pattern"):
        read_pattern(tmp_path / "missing.pat")
    with pytest.raises(PatternError, match="cannot read the pattern"):
        read_pattern(tmp_path)  # a folder


def test_tile_image_repeats_the_pattern_from_the_corner_without_resampling() -> None:
    raw = pixels(3, 5, 3)
    tiled = tile_image(Image.fromarray(raw, "RGB"), 12, 7)  # neither side a multiple of the pattern's
    assert tiled.size == (12, 7) and tiled.mode == "RGB"
    out = np.asarray(tiled)
    expected = np.tile(raw, (3, 3, 1))[:7, :12]
    np.testing.assert_array_equal(out, expected)


def test_tile_image_keeps_the_mode_and_accepts_a_smaller_target() -> None:
    img = Image.fromarray(pixels(8, 8, 4), "RGBA")
    small = tile_image(img, 3, 2)
    assert small.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(small), np.asarray(img)[:2, :3])
    with pytest.raises(ValueError, match="positive"):
        tile_image(img, 0, 4)
