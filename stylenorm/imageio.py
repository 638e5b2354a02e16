"""Reading and writing images safely: bytes or files in, RGB tensors (1, 3, H, W) in [0, 1] out.

Decoding is hardened for untrusted uploads (the HTTP server uses this module
as is): a format allow-list, the pixel count checked from the header before
any pixel is decoded, Pillow's decompression-bomb warning treated as an error,
EXIF orientation applied, every colour mode converted to RGB by its real
range (16-bit and float grayscale are not clipped to 8 bits; transparency is
composited over white), an embedded ICC profile converted to sRGB (Display P3
and Adobe RGB photos, gray and CMYK profiles; see :func:`to_srgb`), and written
files carry no metadata. Every failure is an :class:`ImageError` subclass the
server maps to a status code.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import warnings
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from torch import Tensor

from stylenorm.errors import ShapeError, StylenormError

DEFAULT_MAX_PIXELS = 50_000_000
# What load_image decodes by default. EPS (runs Ghostscript), PDF, FITS, JPEG 2000 and the other
# parsers with a history of CVEs stay out; a server may narrow this further to WEB_FORMATS.
DEFAULT_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
WEB_FORMATS = ("PNG", "JPEG", "WEBP")
# Output formats by name or file extension -> Pillow's format name.
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

Source = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes]

log = logging.getLogger(__name__)

# Colour management. Relative colorimetric with black-point compensation (Photoshop's default conversion):
# every colour inside sRGB comes out exactly as the profile defines it, white stays white, and only colours
# outside sRGB are clipped (a Display P3 red becomes sRGB's red). Perceptual would compress the whole gamut
# to make room, but matrix/TRC profiles (Display P3, Adobe RGB: what phones and cameras embed) have no
# perceptual rendering anyway, so LittleCMS would use colorimetric; black-point compensation maps a CMYK
# press profile's paper black to sRGB black, as perceptual would.
_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
_FLAGS = ImageCms.Flags.BLACKPOINTCOMPENSATION
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# real display and press profiles are 0.5-600 KB (big CMYK LUT profiles reach ~2 MB)
MAX_ICC_BYTES = 4 << 20


class ImageError(StylenormError, ValueError):
    """An image could not be read or written; the subclass says why."""


class ImageTooLarge(ImageError):
    """More pixels than allowed (from the header, before decoding), or a decompression bomb."""


class UnsupportedImage(ImageError):
    """Not an image, or a format that is not allowed."""


class CorruptImage(ImageError):
    """A recognized format whose data is truncated or damaged."""


class ImageNotFound(ImageError, FileNotFoundError):
    """The image file named does not exist (or is not a file)."""


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return getattr(source, "name", None) or "<stream>"


def _as_stream(source: Source) -> Any:
    """Something Image.open accepts: a path that exists, or a binary stream."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            what = "is a folder, not an image file" if path.is_dir() else "does not exist"
            raise ImageNotFound(f"{path} {what}")
        return path
    if hasattr(source, "read"):
        return source
    raise UnsupportedImage(
        f"cannot read an image from a {type(source).__name__}; give a path, bytes or a binary file object"
    )


def open_image(
    source: Source,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
) -> Image.Image:
    """Decode an image (path, bytes or binary file) into a loaded, EXIF-oriented Pillow image.

    The size is checked from the header before decoding: more than
    ``max_pixels`` (None: no limit of ours; Pillow's bomb limit still holds)
    raises :class:`ImageTooLarge`. ``formats`` is the allow-list of Pillow
    format names (None: every format Pillow knows). The pixels are as stored
    (label maps keep their values): :func:`pil_to_array` and
    :func:`load_image` apply an embedded ICC profile (:func:`to_srgb`).
    """
    name = _describe(source)
    allowed = None if formats is None else tuple(f.upper() for f in formats)
    stream = _as_stream(source)
    try:
        # catch_warnings is process-wide state (not thread-local before Python 3.14); the check
        # against MAX_IMAGE_PIXELS below still rejects a bomb if another thread reset the filter
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(stream, formats=allowed)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{name}: {exc}") from exc
    except UnidentifiedImageError as exc:
        kinds = ", ".join(allowed) if allowed else "any format Pillow reads"
        raise UnsupportedImage(f"{name} is not an image in an allowed format ({kinds})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"{name}: cannot read the image header: {exc}") from exc
    width, height = img.size
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        img.close()
        raise ImageTooLarge(
            f"{name} is {width}×{height} = {pixels:,} pixels; the limit is {max_pixels:,}"
            " (downscale it first, or raise max_pixels)"
        )
    bomb = Image.MAX_IMAGE_PIXELS
    if bomb is not None and pixels > bomb:
        img.close()
        raise ImageTooLarge(f"{name} is {width}×{height} = {pixels:,} pixels: a possible decompression bomb")
    if width == 0 or height == 0:
        raise CorruptImage(f"{name} declares an empty size {width}×{height}")
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{name}: {exc}") from exc
    except MemoryError as exc:
        raise ImageTooLarge(f"{name}: not enough memory to decode it") from exc
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, struct.error, zlib.error …
        raise CorruptImage(f"{name} is truncated or corrupt: {exc}") from exc


def _composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) float in [0, 1] -> (H, W, 3): transparent pixels become white, as a viewer shows them."""
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)


def _gray_range(arr: np.ndarray, nominal: float) -> np.ndarray:
    """Scale a 32-bit int or float gray image: by its nominal range when it fits, else by min..max."""
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= nominal:
        return arr / nominal
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _embedded_profile(img: Image.Image) -> bytes | None:
    """The ICC profile the file embeds (PNG iCCP, JPEG APP2, WebP ICCP, TIFF), or None."""
    icc = img.info.get("icc_profile")
    if not isinstance(icc, bytes | bytearray) or not icc:
        return None
    if len(icc) > MAX_ICC_BYTES:  # an upload's profile is parsed by LittleCMS: bound what it is given
        log.warning("ICC profile of %d bytes ignored (limit %d): read as sRGB", len(icc), MAX_ICC_BYTES)
        return None
    return bytes(icc)


@functools.lru_cache(maxsize=8)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from an embedded profile to sRGB for 'RGB', 'CMYK' or 'I;16' (gray) images -> RGB.

    Cached by the profile's bytes: a server decodes many images with the same
    profile. None when there is nothing to do: an RGB profile that is sRGB
    (it moves none of a grid of test colours by more than 1/255), or a
    profile LittleCMS cannot read or that does not fit the mode (a warning,
    once while cached; the image is then read as sRGB).
    """
    # Gray is only sampled, once per profile (_gray_curve), so it takes the unoptimized pipeline: LittleCMS's
    # optimized one is up to 7/255 off in the shadows (gray gamma 1.0 -> sRGB), the unoptimized one exact.
    flags = _FLAGS | ImageCms.Flags.NOOPTIMIZE if mode == "I;16" else _FLAGS
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(src, _SRGB, mode, "RGB", _INTENT, flags)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.warning(
            "unusable embedded ICC profile (%d bytes, %s image): %s; read as sRGB", len(icc), mode, exc
        )
        return None
    if mode == "RGB":
        levels = np.linspace(0, 255, 18).round().astype(np.uint8)
        grid = np.stack(np.meshgrid(levels, levels, levels), axis=-1).reshape(1, -1, 3)
        if np.abs(np.asarray(transform.apply(Image.fromarray(grid, "RGB")), np.int16) - grid).max() <= 1:
            return None
    return transform


@functools.lru_cache(maxsize=8)
def _gray_curve(icc: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """A gray profile's tone curve to sRGB as points (x, y) in [0, 1] to interpolate; None: keep gray as is.

    Pillow's transforms have 8-bit output, so the curve is read to 16-bit
    precision off the staircase a 16-bit ramp makes: where the output steps
    from k to k + 1, the curve is at (k + 0.5) / 255.
    """
    transform = _srgb_transform(icc, "I;16")
    if transform is None:
        return None
    ramp = Image.frombytes("I;16", (65536, 1), np.arange(65536, dtype="<u2").tobytes())
    out = np.asarray(transform.apply(ramp), dtype=np.float64)[0, :, 1]  # R = G = B
    steps = np.flatnonzero(np.diff(out))
    x = np.concatenate([[0.0], (steps + 0.5) / 65535.0, [1.0]])
    y = np.concatenate([[out[0]], (out[steps] + out[steps + 1]) / 2.0, [out[-1]]]) / 255.0
    return None if np.abs(y - x).max() <= 1 / 255 else (x, y)


def to_srgb(img: Image.Image) -> Image.Image:
    """An image with an embedded ICC profile -> the same with its colours in sRGB and no profile.

    RGB(A), CMYK (-> RGB), L/LA with a gray profile (they stay gray) and
    palette images (-> RGB(A) first) are converted by LittleCMS, alpha kept
    as it is. Images without a profile, with an sRGB one or with one that
    cannot be used come back as they are (palette images then as RGB(A));
    16-bit gray is converted by :func:`pil_to_array`.
    """
    icc = _embedded_profile(img)
    if icc is None:
        return img
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or img.has_transparency_data else "RGB")
    if img.mode in ("L", "LA"):
        curve = _gray_curve(icc)
        if curve is None:
            return img
        lut = np.round(np.interp(np.arange(256) / 255.0, *curve) * 255.0).astype(np.uint8)
        out = img.getchannel("L").point(lut.tolist())
    elif img.mode in ("RGB", "RGBA", "CMYK"):
        transform = _srgb_transform(icc, "CMYK" if img.mode == "CMYK" else "RGB")
        if transform is None:
            return img
        out = transform.apply(img.convert("RGB") if img.mode == "RGBA" else img)
    else:
        return img
    if "A" in img.getbands():
        out.putalpha(img.getchannel("A"))
    out.info.pop("icc_profile", None)
    return out


def pil_to_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) float32 sRGB in [0, 1] (an embedded ICC profile applied)."""
    img = to_srgb(img)
    mode = img.mode
    if mode.startswith("I;16"):
        rgb = np.asarray(img).astype(np.float64) / 65535.0
        icc = _embedded_profile(img)
        curve = None if icc is None else _gray_curve(icc)
        if curve is not None:
            rgb = np.interp(rgb, *curve)
    elif mode == "I":  # 32-bit ints: most often 16-bit data (older Pillow opened 16-bit PNGs so)
        rgb = _gray_range(np.asarray(img), 65535.0)
    elif mode == "F":
        rgb = _gray_range(np.asarray(img), 1.0)
    elif mode == "1":
        rgb = np.asarray(img).astype(np.float64)
    elif mode == "L":
        rgb = np.asarray(img).astype(np.float64) / 255.0
    elif mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and img.has_transparency_data):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float64) / 255.0
        rgb = _composite_over_white(rgba)
    else:
        try:
            rgb = np.asarray(img.convert("RGB")).astype(np.float64) / 255.0
        except ValueError as exc:
            raise UnsupportedImage(f"cannot convert images of mode {mode} to RGB") from exc
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def load_image(
    source: Source,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
) -> Tensor:
    """Decode an image (path, bytes or binary file) -> (1, 3, H, W) float32 RGB in [0, 1]."""
    img = open_image(source, max_pixels, formats)
    try:
        rgb = pil_to_array(img)
    finally:
        img.close()
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_mask(
    source: Source, size: tuple[int, int] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Tensor:
    """A grayscale mask -> (H, W) float32 in [0, 1] (white = 1); ``size`` (H, W) it must have, if given."""
    rgb = load_image(source, max_pixels)[0]
    # ITU-R BT.601 luma; the weights sum to 1 so gray masks keep their values
    mask = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if size is not None and tuple(mask.shape) != tuple(size):
        h, w = mask.shape
        raise ShapeError(
            f"mask {_describe(source)} is {w}×{h} (W×H) but must be {size[1]}×{size[0]}, the content's size"
        )
    return mask.clamp(0.0, 1.0)


def output_format(name: str | os.PathLike | None) -> str:
    """Pillow's format name for an output name, extension or path ('png', '.jpg', 'x.webp' …)."""
    text = str(name or "")
    key = (Path(text).suffix or text).lower().lstrip(".")
    if key not in OUTPUT_FORMATS:
        raise UnsupportedImage(
            f"cannot write {text!r}: the output format must be one of {', '.join(sorted(OUTPUT_FORMATS))}"
        )
    return OUTPUT_FORMATS[key]


def to_pil(image: Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> an 8-bit RGB Pillow image (clamped, no metadata)."""
    if not isinstance(image, Tensor):
        raise ShapeError(f"expected an image tensor; got {type(image).__name__}")
    t = image[0] if image.dim() == 4 and image.shape[0] == 1 else image
    if t.dim() != 3 or t.shape[0] != 3:
        raise ShapeError(f"expected one RGB image (1, 3, H, W) or (3, H, W); got {tuple(image.shape)}")
    t = torch.nan_to_num(t.detach().float().cpu(), nan=0.0).clamp(0.0, 1.0)
    arr = (t * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr, "RGB")


def save_image(
    image: Tensor, target: str | os.PathLike | IO[bytes], format: str | None = None, quality: int = 95
) -> None:
    """Write (1, 3, H, W) or (3, H, W) in [0, 1] as PNG, JPEG or WebP (format None: from the extension)."""
    if format is None:
        if not isinstance(target, str | os.PathLike):
            raise UnsupportedImage("writing to a stream needs format= ('png', 'jpeg' or 'webp')")
        fmt = output_format(target)
    else:
        fmt = output_format(format)
    if not 1 <= int(quality) <= 100:
        raise UnsupportedImage(f"quality must be in 1..100; got {quality}")
    options: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    pil = to_pil(image)
    if isinstance(target, str | os.PathLike):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    pil.save(target, format=fmt, **options)


def encode_image(image: Tensor, format: str = "png", quality: int = 95) -> bytes:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> the bytes of a PNG, JPEG or WebP file."""
    buffer = io.BytesIO()
    save_image(image, buffer, format=format, quality=quality)
    return buffer.getvalue()


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W) mask -> (h, w) by area-averaging bilinear resampling (soft edges stay in [0, 1])."""
    if tuple(mask.shape) == tuple(size):
        return mask
    out = F.interpolate(
        mask[None, None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return out[0, 0].clamp(0.0, 1.0)


__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "WEB_FORMATS",
    "CorruptImage",
    "ImageError",
    "ImageNotFound",
    "ImageTooLarge",
    "UnsupportedImage",
    "encode_image",
    "load_image",
    "load_mask",
    "open_image",
    "output_format",
    "pil_to_array",
    "resize_mask",
    "save_image",
    "to_pil",
    "to_srgb",
]


def input_files(path: Path | str, suffixes: Collection[str], what: str) -> tuple[list[Path], bool]:
    """The files a command reads from path (one file, or a folder's images) and whether it was a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise ImageError(f"{path} holds no {what}s ({', '.join(sorted(suffixes))})")
        return files, True
    if not path.is_file():
        raise ImageNotFound(f"{what} {path} does not exist")
    return [path], False
