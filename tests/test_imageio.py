"""Image decoding and encoding: a corpus of good, odd and hostile files made here, each to its answer."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm.errors import ShapeError, StylenormError
from stylenorm.imageio import (
    WEB_FORMATS,
    CorruptImage,
    ImageError,
    ImageNotFound,
    ImageTooLarge,
    UnsupportedImage,
    encode_image,
    load_image,
    load_mask,
    output_format,
    pil_to_array,
    save_image,
)


def _bytes(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _noise_rgb(h: int = 48, w: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (IHDR rewritten, CRC fixed); the pixel data stays tiny."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return png[:16] + ihdr + crc + png[33:]


# ------------------------------------------------------------------ hostile and broken inputs


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_corrupt(fmt: str) -> None:
    data = _bytes(_noise_rgb(), fmt)
    load_image(data)  # the whole file is fine
    with pytest.raises(CorruptImage, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "zero bytes"),
        (np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "random bytes"),
        (b"hello, this is a text file\nnot an image\n" * 20, "text"),
        (b"\x89PNG\r\n\x1a\n", "a PNG signature and nothing else"),
    ],
)
def test_non_images_are_unsupported(data: bytes, why: str) -> None:
    with pytest.raises(UnsupportedImage, match="not an image"):
        load_image(data)


def test_a_text_file_on_disk_is_unsupported_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not really a png")
    with pytest.raises(UnsupportedImage, match=r"notes\.png"):
        load_image(path)


def test_formats_outside_the_allow_list_are_refused() -> None:
    bmp = _bytes(_noise_rgb(), "BMP")
    assert load_image(bmp).shape == (1, 3, 48, 64)  # BMP is in the default list
    with pytest.raises(UnsupportedImage, match="PNG, JPEG, WEBP"):
        load_image(bmp, formats=WEB_FORMATS)


def test_huge_declared_size_is_rejected_from_the_header_before_decoding() -> None:
    small = _bytes(Image.new("1", (8, 8)), "PNG")
    # 30000×30000 1-bit: a few dozen bytes on disk (a real one would be ~110 MB in Pillow's memory)
    with pytest.raises(ImageTooLarge):
        load_image(_with_declared_size(small, 30000, 30000))
    # 8000×7000 = 56 MP: under Pillow's own bomb limit, over our 50 MP default. Its pixel data is
    # missing, so decoding would raise CorruptImage: ImageTooLarge proves the check came first.
    fake = _with_declared_size(small, 8000, 7000)
    with pytest.raises(ImageTooLarge, match="56,000,000 pixels; the limit is 50,000,000"):
        load_image(fake)
    with pytest.raises(CorruptImage):
        load_image(_with_declared_size(small, 60, 50))  # same broken data, small size: it is decoded


def test_pillow_bomb_warning_and_error_become_image_too_large() -> None:
    small = _bytes(Image.new("1", (8, 8)), "PNG")
    # between MAX_IMAGE_PIXELS and twice it Pillow only warns; above twice it raises
    for w, h in ((10000, 10000), (30000, 30000)):
        assert w * h > Image.MAX_IMAGE_PIXELS
        with pytest.raises(ImageTooLarge, match="bomb"):
            load_image(_with_declared_size(small, w, h), max_pixels=None)


def test_max_pixels_limits_a_real_image() -> None:
    png = _bytes(Image.new("1", (300, 300), 1), "PNG")
    assert len(png) < 2000  # small on disk
    with pytest.raises(ImageTooLarge, match="90,000 pixels; the limit is 50,000"):
        load_image(png, max_pixels=50_000)
    assert load_image(png, max_pixels=None).shape == (1, 3, 300, 300)


def test_missing_files_and_odd_sources(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="does not exist") as info:
        load_image(tmp_path / "absent.png")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(ImageNotFound, match="folder"):
        load_image(tmp_path)
    with pytest.raises(UnsupportedImage, match="give a path, bytes or a binary file"):
        load_image(12345)  # type: ignore[arg-type]


def test_every_error_is_a_stylenorm_value_error() -> None:
    for cls in (ImageTooLarge, UnsupportedImage, CorruptImage, ImageNotFound):
        assert issubclass(cls, ImageError) and issubclass(cls, StylenormError) and issubclass(cls, ValueError)


# ------------------------------------------------------------------ colour modes


def test_sources_path_bytes_and_stream_agree(tmp_path: Path) -> None:
    img = _noise_rgb()
    path = tmp_path / "a.png"
    img.save(path)
    data = path.read_bytes()
    expected = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)[None]
    for source in (path, str(path), data, bytearray(data), io.BytesIO(data)):
        t = load_image(source)
        assert t.dtype == torch.float32 and t.shape == (1, 3, 48, 64)
        torch.testing.assert_close(t, expected, atol=1e-6, rtol=0)


def test_cmyk_jpeg_comes_back_as_its_rgb() -> None:
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, 255 - xx * 3], axis=2).astype(np.uint8)
    data = _bytes(Image.fromarray(rgb, "RGB").convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    t = load_image(data)
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)[None]
    assert (t - expected).abs().mean() < 0.02  # JPEG loss only; an inverted CMYK would be off by ~0.5
    assert (t - expected).abs().max() < 0.15


def test_palette_png_with_transparency_composites_over_white() -> None:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    img.paste(1, (0, 0, 16, 32))  # left half: index 1 (blue), transparent below
    data = _bytes(img, "PNG", transparency=1)
    t = load_image(data)[0]
    assert torch.equal(t[:, :, :16], torch.ones(3, 32, 16))  # transparent blue shows as white
    assert torch.equal(t[:, :, 16:], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 32, 16))


def test_16bit_grayscale_keeps_its_full_range() -> None:
    values = (np.arange(40 * 50, dtype=np.uint32) * 32 % 65536).astype(np.uint16).reshape(40, 50)
    data = _bytes(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    t = load_image(data)[0]
    expected = torch.from_numpy(values.astype(np.float64) / 65535).float()
    for c in range(3):
        torch.testing.assert_close(t[c], expected, atol=1e-6, rtol=0)
    # levels 1/65535 apart stay apart (an 8-bit path would merge or clip them)
    assert len(torch.unique(t[0])) == len(np.unique(values))


def test_float_and_int32_gray_are_scaled_by_their_range() -> None:
    ramp = np.linspace(0, 1000, 16 * 16, dtype=np.float32).reshape(16, 16)
    arr = pil_to_array(Image.fromarray(ramp, "F"))
    np.testing.assert_allclose(arr[..., 0], ramp / 1000, atol=1e-6)
    unit = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    np.testing.assert_allclose(pil_to_array(Image.fromarray(unit, "F"))[..., 1], unit, atol=1e-7)
    ints = (np.arange(256, dtype=np.int32) * 200).reshape(16, 16)
    np.testing.assert_allclose(pil_to_array(Image.fromarray(ints, "I"))[..., 2], ints / 65535, atol=1e-7)
    # a float TIFF through the whole loader
    t = load_image(_bytes(Image.fromarray(ramp, "F"), "TIFF"))
    np.testing.assert_allclose(t[0, 0].numpy(), ramp / 1000, atol=1e-6)


def test_la_and_rgba_alpha_composite_over_white() -> None:
    la = Image.new("LA", (20, 20), (0, 128))  # black at alpha 128/255
    t = load_image(_bytes(la, "PNG"))
    torch.testing.assert_close(t, torch.full((1, 3, 20, 20), 1 - 128 / 255), atol=1e-6, rtol=0)
    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    rgba[:, :10] = (255, 0, 0, 0)  # fully transparent red
    rgba[:, 10:20] = (0, 0, 255, 255)  # opaque blue
    rgba[:, 20:] = (0, 255, 0, 51)  # green at 20 %
    t = load_image(_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))[0]
    torch.testing.assert_close(t[:, 5, 5], torch.tensor([1.0, 1.0, 1.0]))
    torch.testing.assert_close(t[:, 5, 15], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(t[:, 5, 25], torch.tensor([0.8, 1.0, 0.8]), atol=1e-6, rtol=0)


def test_one_bit_images() -> None:
    img = Image.fromarray((np.indices((24, 24)).sum(0) % 2).astype(bool))
    assert img.mode == "1"
    t = load_image(_bytes(img, "PNG"))[0]
    expected = torch.from_numpy(np.indices((24, 24)).sum(0) % 2).float()
    assert torch.equal(t[1], expected)


def test_exif_orientation_is_applied() -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 tall
    stored[:, :20] = (255, 0, 0)  # left: red
    stored[:, 20:] = (0, 0, 255)  # right: blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left edge goes to the top
    data = _bytes(Image.fromarray(stored), "JPEG", exif=exif.tobytes(), quality=95)
    t = load_image(data)[0]
    assert t.shape == (3, 40, 20)
    top, bottom = t[:, 2:18].mean((1, 2)), t[:, 22:38].mean((1, 2))
    assert top[0] > 0.9 and top[2] < 0.1
    assert bottom[2] > 0.9 and bottom[0] < 0.1


# ------------------------------------------------------------------ masks


def test_load_mask_gray_values_and_size_check(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (10, 1))  # 10×32
    path = tmp_path / "m.png"
    Image.fromarray(gray, "L").save(path)
    m = load_mask(path, size=(10, 32))
    assert m.shape == (10, 32)
    torch.testing.assert_close(m, torch.from_numpy(gray).float() / 255, atol=1e-6, rtol=0)
    with pytest.raises(ShapeError, match=r"32×10 \(W×H\) but must be 40×20"):
        load_mask(path, size=(20, 40))


# ------------------------------------------------------------------ writing


def test_png_round_trip_is_exact_to_8_bits(tmp_path: Path) -> None:
    t = torch.rand(1, 3, 20, 30)
    save_image(t, tmp_path / "x.png")
    back = load_image(tmp_path / "x.png")
    assert (back - t).abs().max() <= 0.5 / 255 + 1e-6
    # the batchless (3, H, W) form and the PNG encoder agree byte for byte
    assert encode_image(t[0], "png") == (tmp_path / "x.png").read_bytes()


@pytest.mark.parametrize(("name", "fmt"), [("o.jpg", "JPEG"), ("o.jpeg", "JPEG"), ("o.webp", "WEBP")])
def test_lossy_formats_from_the_extension(tmp_path: Path, name: str, fmt: str) -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 48), indexing="ij")
    t = torch.stack([xx, yy, 1 - xx])[None]
    save_image(t, tmp_path / name, quality=90)
    assert Image.open(tmp_path / name).format == fmt
    assert (load_image(tmp_path / name) - t).abs().mean() < 0.02


def test_written_files_carry_no_metadata_and_values_are_clamped() -> None:
    t = torch.full((1, 3, 8, 8), 2.0)
    t[:, :, :4] = -1.0
    t[0, 0, 0, 0] = float("nan")
    data = encode_image(t, "jpeg")
    img = Image.open(io.BytesIO(data))
    assert "exif" not in img.info and "icc_profile" not in img.info
    back = load_image(encode_image(t, "png"))
    assert back[:, :, :4].max() == 0 and back[:, :, 4:].min() == 1


def test_bad_outputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImage, match="jpeg, jpg, png, webp"):
        save_image(torch.rand(1, 3, 8, 8), tmp_path / "x.gif")
    with pytest.raises(UnsupportedImage, match="needs format="):
        save_image(torch.rand(1, 3, 8, 8), io.BytesIO())
    with pytest.raises(UnsupportedImage, match="quality"):
        encode_image(torch.rand(1, 3, 8, 8), "jpeg", quality=0)
    with pytest.raises(ShapeError, match=r"\(1, 3, H, W\)"):
        encode_image(torch.rand(2, 3, 8, 8), "png")
    with pytest.raises(ShapeError):
        encode_image(torch.rand(8, 8), "png")
    assert output_format("a/b/c.JPG") == "JPEG" and output_format("webp") == "WEBP"
