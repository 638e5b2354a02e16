"""Embedded ICC profiles are converted to sRGB on decode (Display P3, Adobe RGB, gray, broken ones).

The wide-gamut fixtures are real ICC v2 matrix/TRC display profiles written
here from primaries, white point and tone curve (Pillow only creates sRGB,
LAB and XYZ profiles); the expected pixels are computed independently in
numpy from the same matrices (device RGB -> linear -> XYZ -> linear sRGB ->
sRGB encoding), not through LittleCMS.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from stylenorm import imageio
from stylenorm.imageio import load_image, open_image, pil_to_array

# ------------------------------------------------------------------ colour science (numpy, no LittleCMS)

D65 = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])  # the ICC profile connection space's white
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])

SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_GAMMA = 563 / 256  # Adobe RGB (1998)'s 2.19921875, exactly representable as u8Fixed8


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    """Chromaticity -> XYZ with Y = 1."""
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz(primaries, white=D65) -> np.ndarray:
    """The 3x3 matrix from linear RGB to XYZ (white -> Y = 1) of an RGB space."""
    p = np.stack([xy_to_xyz(*xy) for xy in primaries], axis=1)
    scale = np.linalg.solve(p, xy_to_xyz(*white))
    return p * scale


def bradford(src_white: np.ndarray, dst_white: np.ndarray) -> np.ndarray:
    """Bradford chromatic adaptation matrix (XYZ -> XYZ) from one white to another."""
    gain = (BRADFORD @ dst_white) / (BRADFORD @ src_white)
    return np.linalg.inv(BRADFORD) @ np.diag(gain) @ BRADFORD


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def expected_srgb(rgb8, primaries, decode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """8-bit device RGB of a D65 space -> sRGB in [0, 1] by the matrices (relative colorimetric, clipped)."""
    linear = decode(np.asarray(rgb8, dtype=np.float64) / 255.0)
    to_srgb = np.linalg.inv(rgb_to_xyz(SRGB_PRIMARIES)) @ rgb_to_xyz(primaries)
    return srgb_encode(linear @ to_srgb.T)


# ------------------------------------------------------------------ an ICC v2 profile writer


def _s15f16(values) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + _s15f16(xyz)


def _curve_tag(curve: float | np.ndarray) -> bytes:
    """'curv': one u8Fixed8 gamma, or a sampled table (uint16) of the decoding curve."""
    if np.ndim(curve) == 0:
        points = struct.pack(">H", round(float(curve) * 256))
        count = 1
    else:
        table = np.round(np.clip(curve, 0.0, 1.0) * 65535).astype(">u2")
        points, count = table.tobytes(), len(table)
    return b"curv\0\0\0\0" + struct.pack(">I", count) + points


def _desc_tag(text: str) -> bytes:
    """v2 textDescriptionType: ASCII, an empty Unicode part and an empty ScriptCode part."""
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0\0\0" + b"\0" * 67


def _text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def icc_profile(tags: dict[bytes, bytes], space: bytes = b"RGB ") -> bytes:
    """An ICC v2.1 display ('mntr') profile with PCS XYZ from the tags given (signature -> data)."""
    table, data = [], b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, body in tags.items():
        table.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body + b"\0" * (-len(body) % 4)  # tags start on 4-byte boundaries
    size = offset + len(data)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, b"mntr", space, b"XYZ ")
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + _s15f16(D50_XYZ)
        + b"\0" * 4  # creator
    )
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data


def rgb_profile(name: str, primaries, curve: float | np.ndarray, white=D65) -> bytes:
    """An RGB matrix/TRC profile: colorants Bradford-adapted from the white point to D50, as ICC v2 wants."""
    white_xyz = xy_to_xyz(*white)
    m = bradford(white_xyz, D50_XYZ) @ rgb_to_xyz(primaries, white)
    tags = {b"desc": _desc_tag(name), b"cprt": _text_tag("No copyright, test fixture")}
    tags |= {b"wtpt": _xyz_tag(white_xyz)}
    tags |= {b"rXYZ": _xyz_tag(m[:, 0]), b"gXYZ": _xyz_tag(m[:, 1]), b"bXYZ": _xyz_tag(m[:, 2])}
    trc = _curve_tag(curve)
    tags |= {b"rTRC": trc, b"gTRC": trc, b"bTRC": trc}
    return icc_profile(tags)


def gray_profile(name: str, gamma: float) -> bytes:
    """A gray TRC profile (the D50 white of ICC v2 gray profiles)."""
    tags = {b"desc": _desc_tag(name), b"cprt": _text_tag("No copyright, test fixture")}
    tags |= {b"wtpt": _xyz_tag(D50_XYZ), b"kTRC": _curve_tag(gamma)}
    return icc_profile(tags, space=b"GRAY")


# Display P3: the P3 primaries with D65 white and the sRGB tone curve (sampled: 1024 points)
P3 = rgb_profile("Display P3 (test)", P3_PRIMARIES, srgb_decode(np.linspace(0.0, 1.0, 1024)))
ADOBE_RGB = rgb_profile("Adobe RGB (1998) (test)", ADOBE_PRIMARIES, ADOBE_GAMMA)
GRAY_LINEAR = gray_profile("Gray gamma 1.0 (test)", 1.0)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def adobe_decode(v: np.ndarray) -> np.ndarray:
    return v**ADOBE_GAMMA


# ------------------------------------------------------------------ helpers

# Test colours: saturated, mid, pastel, dark, neutral
COLOURS = np.array(
    [[255, 0, 0], [200, 100, 80], [0, 255, 0], [30, 60, 200], [180, 200, 90], [40, 20, 10], [128, 128, 128]],
    dtype=np.uint8,
)


def patches(colours: np.ndarray = COLOURS, size: int = 8) -> np.ndarray:
    """(size, size * n, 3) uint8: one flat square per colour (flat so that JPEG keeps them)."""
    return np.repeat(np.repeat(colours[None], size, axis=0), size, axis=1)


def encode(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def centres(t: torch.Tensor, n: int = len(COLOURS), size: int = 8) -> np.ndarray:
    """(n, 3) in 0..255 at the centre of each patch of a (1, 3, size, size * n) tensor."""
    return t[0, :, size // 2, size // 2 :: size][:, :n].T.numpy() * 255.0


def clear_caches() -> None:
    imageio._srgb_transform.cache_clear()
    imageio._gray_curve.cache_clear()


def saturation(rgb) -> np.ndarray:
    """HSV saturation (max - min) / max of (..., 3) colours."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return (rgb.max(-1) - rgb.min(-1)) / rgb.max(-1)


# ------------------------------------------------------------------ the fixtures themselves


def test_the_numpy_reference_matches_published_numbers() -> None:
    """Display P3 -> sRGB by the matrices: P3 red in linear sRGB is (1.2249, -0.0421, -0.0196)."""
    m = np.linalg.inv(rgb_to_xyz(SRGB_PRIMARIES)) @ rgb_to_xyz(P3_PRIMARIES)
    np.testing.assert_allclose(m[:, 0], [1.2249, -0.0421, -0.0196], atol=2e-4)
    np.testing.assert_allclose(m.sum(axis=1), [1, 1, 1], atol=1e-12)  # white stays white
    srgb_white = rgb_to_xyz(SRGB_PRIMARIES).sum(axis=1)
    np.testing.assert_allclose(srgb_white, [0.9505, 1.0, 1.089], atol=2e-4)
    np.testing.assert_allclose(bradford(srgb_white, D50_XYZ) @ srgb_white, D50_XYZ, atol=1e-12)


@pytest.mark.parametrize(
    ("data", "space", "name"),
    [
        (P3, "RGB", "Display P3 (test)"),
        (ADOBE_RGB, "RGB", "Adobe RGB (1998) (test)"),
        (GRAY_LINEAR, "GRAY", "Gray"),
    ],
)
def test_littlecms_accepts_the_written_profiles(data: bytes, space: str, name: str) -> None:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    assert profile.profile.xcolor_space.strip() == space
    assert profile.profile.version == pytest.approx(2.1)
    assert ImageCms.getProfileDescription(profile).startswith(name)
    mode = "L" if space == "GRAY" else "RGB"
    ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), mode, "RGB")


# ------------------------------------------------------------------ decoding wide-gamut photos


@pytest.mark.parametrize(
    ("profile", "primaries", "decode"),
    [(P3, P3_PRIMARIES, srgb_decode), (ADOBE_RGB, ADOBE_PRIMARIES, adobe_decode)],
    ids=["display-p3", "adobe-rgb"],
)
def test_wide_gamut_rgb_is_converted_to_srgb(profile: bytes, primaries, decode) -> None:
    got = centres(load_image(encode(Image.fromarray(patches()), icc_profile=profile)))
    expected = expected_srgb(COLOURS, primaries, decode) * 255.0
    np.testing.assert_allclose(got, expected, atol=2.0)  # 2/255: LittleCMS's 8-bit rounding and 16-bit math
    # an image made in memory and tagged goes the same way through pil_to_array
    tagged = Image.fromarray(patches())
    tagged.info["icc_profile"] = profile
    np.testing.assert_allclose(pil_to_array(tagged)[4, 4::8] * 255.0, got, atol=1e-4)
    # pure red is outside sRGB: clipped to sRGB's red
    assert got[0, 0] == 255 and got[0, 1] <= 2 and got[0, 2] <= 2
    # in-gamut colours come out more saturated than the same numbers read as sRGB (the old behaviour)
    for i in (1, 3, 4):
        assert saturation(got[i]) > saturation(COLOURS[i]) + 0.02, (COLOURS[i], got[i])
    assert np.abs(got[1] - COLOURS[1]).max() >= 7  # (200, 100, 80) moves measurably
    # a neutral gray stays neutral
    assert np.ptp(got[6]) <= 1


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [("PNG", {}, 2.0), ("JPEG", {"quality": 100, "subsampling": 0}, 4.0), ("WEBP", {"lossless": True}, 2.0)],
)
def test_each_format_carries_the_profile(fmt: str, options: dict, tolerance: float) -> None:
    data = encode(Image.fromarray(patches()), fmt, icc_profile=P3, **options)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile") == P3
    got = centres(load_image(data))
    np.testing.assert_allclose(got, expected_srgb(COLOURS, P3_PRIMARIES, srgb_decode) * 255.0, atol=tolerance)


# Pillow's own sRGB profile, and one written here from the sRGB primaries and sampled curve (another maker's)
SRGB_WRITTEN = rgb_profile("sRGB (test)", SRGB_PRIMARIES, srgb_decode(np.linspace(0.0, 1.0, 1024)))


@pytest.mark.parametrize("profile", [SRGB, SRGB_WRITTEN], ids=["pillow-srgb", "written-srgb"])
def test_srgb_tagged_equals_untagged(profile: bytes) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    untagged = load_image(encode(Image.fromarray(noise)))
    tagged = load_image(encode(Image.fromarray(noise), icc_profile=profile))
    assert (tagged - untagged).abs().max() <= 1 / 255 + 1e-6
    assert imageio._srgb_transform(profile, "RGB") is None  # recognized as sRGB: no transform at all


@pytest.mark.parametrize(
    "garbage",
    [
        P3[:200],
        b"\0" * 300,
        bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)),
        ADOBE_RGB[:-40],
    ],
    ids=["truncated-header", "zeros", "noise", "truncated-tags"],
)
def test_broken_profile_decodes_as_srgb_and_warns_once(garbage: bytes, caplog) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    untagged = load_image(encode(Image.fromarray(noise)))
    clear_caches()
    with caplog.at_level(logging.WARNING, logger="stylenorm.imageio"):
        for _ in range(3):
            torch.testing.assert_close(
                load_image(encode(Image.fromarray(noise), icc_profile=garbage)), untagged
            )
    warnings = [r for r in caplog.records if r.name == "stylenorm.imageio" and "ICC" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


def test_a_profile_of_the_wrong_colour_space_is_ignored(caplog) -> None:
    """An RGB profile in a grayscale file (it happens) cannot be applied: gray as it is, a warning."""
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    clear_caches()
    with caplog.at_level(logging.WARNING, logger="stylenorm.imageio"):
        t = load_image(encode(Image.fromarray(gray, "L"), icc_profile=P3))
    torch.testing.assert_close(t[0, 1], torch.from_numpy(gray).float() / 255)
    assert any("ICC" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ alpha, gray, palette, 16 bits


def test_rgba_keeps_its_alpha_and_converts_its_colour() -> None:
    rgb = patches()
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).round().astype(np.uint8), (rgb.shape[0], 1))
    data = encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), icc_profile=P3)
    img = open_image(data)
    assert img.mode == "RGBA" and img.info["icc_profile"] == P3  # open_image keeps the stored values
    converted = imageio.to_srgb(img)
    assert converted.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(converted)[..., 3], alpha)
    got = np.asarray(converted)[4, 4::8, :3].astype(np.float64)
    np.testing.assert_allclose(got, expected_srgb(COLOURS, P3_PRIMARIES, srgb_decode) * 255, atol=2.0)
    # load_image composites the converted colour over white
    a = alpha[None].astype(np.float64) / 255
    expected = np.asarray(converted)[..., :3].transpose(2, 0, 1) / 255 * a + (1 - a)
    np.testing.assert_allclose(load_image(data)[0].numpy(), expected, atol=1e-6)


def test_gray_with_a_gray_profile_and_alpha() -> None:
    """Gray gamma 1.0 (linear light): level 128 is 50 % light, sRGB 188; gray stays gray, alpha stays."""
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = srgb_encode(ramp / 255.0)
    t = load_image(encode(Image.fromarray(ramp, "L"), icc_profile=GRAY_LINEAR))[0].numpy()
    for c in range(3):
        np.testing.assert_allclose(t[c], expected, atol=0.5 / 255 + 1e-6)  # the 8-bit rounding only
    assert round(float(t[0, 8, 0]) * 255) == 188  # level 128
    alpha = np.flipud(ramp)
    la = open_image(
        encode(Image.merge("LA", [Image.fromarray(ramp), Image.fromarray(alpha)]), icc_profile=GRAY_LINEAR)
    )
    converted = imageio.to_srgb(la)
    assert converted.mode == "LA" and "icc_profile" not in converted.info
    np.testing.assert_array_equal(np.asarray(converted)[..., 1], alpha)
    np.testing.assert_allclose(np.asarray(converted)[..., 0] / 255.0, expected, atol=0.5 / 255 + 1e-6)
    assert imageio.to_srgb(converted) is converted  # done once: the result has no profile


def test_16bit_gray_with_a_gray_profile_keeps_its_levels() -> None:
    values = (np.arange(64 * 64, dtype=np.uint32) * 16).astype(np.uint16).reshape(64, 64)
    data = encode(Image.fromarray(values), icc_profile=GRAY_LINEAR)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    t = load_image(data)[0].numpy()
    np.testing.assert_allclose(t[0], srgb_encode(values / 65535.0), atol=0.1 / 255)  # not 8-bit rounded
    np.testing.assert_array_equal(t[0], t[2])
    assert len(np.unique(t[0])) == len(np.unique(values))  # levels 16/65535 apart stay apart


def test_palette_image_with_a_profile() -> None:
    img = Image.fromarray(patches()).quantize(len(COLOURS))
    assert img.mode == "P"
    got = centres(load_image(encode(img, icc_profile=P3)))
    np.testing.assert_allclose(got, expected_srgb(COLOURS, P3_PRIMARIES, srgb_decode) * 255.0, atol=2.0)


# ------------------------------------------------------------------ the cache and the server


def test_transforms_are_cached_by_profile() -> None:
    clear_caches()
    data = encode(Image.fromarray(patches()), icc_profile=ADOBE_RGB)
    first = load_image(data)
    for _ in range(3):
        torch.testing.assert_close(load_image(data), first)
    info = imageio._srgb_transform.cache_info()
    assert info.misses == 1 and info.hits == 3


def test_the_server_decodes_uploads_to_srgb() -> None:
    uploads = pytest.importorskip("stylenorm.server.uploads")
    data = encode(Image.fromarray(patches()), icc_profile=P3)
    got = centres(uploads.decode_upload(data, "content", 10**6))
    np.testing.assert_allclose(got, expected_srgb(COLOURS, P3_PRIMARIES, srgb_decode) * 255.0, atol=2.0)
    jpeg = encode(Image.fromarray(patches()), "JPEG", icc_profile=P3, quality=100, subsampling=0)
    np.testing.assert_allclose(centres(uploads.decode_upload(jpeg, "content", 10**6)), got, atol=4.0)
