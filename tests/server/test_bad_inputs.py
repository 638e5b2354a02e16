"""A corpus of bad and odd inputs: each gets its 4xx (or a correct 200), and the process stays up."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import decode, image_bytes, with_declared_size

STYLE = {"model": "color", "styles": "warm"}


def _post(client: httpx.Client, content: bytes, data: dict | None = None, **files: tuple) -> httpx.Response:
    return client.post("/v1/stylize", files={"content": ("c", content), **files}, data=data or STYLE)


def _png_16bit() -> bytes:
    arr = (np.random.default_rng(0).integers(0, 65536, (32, 32))).astype(np.uint16)
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    img.save(buf, "PNG")
    return buf.getvalue()


def _exif_rotated() -> bytes:
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ images

HOSTILE = {
    "zero bytes": (b"", 422, "corrupt_image"),
    "random bytes": (np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes(), 415, None),
    "text": (b"this is not an image\n" * 30, 415, "unsupported_media_type"),
    "png signature only": (b"\x89PNG\r\n\x1a\n", 415, None),
    "truncated png": (image_bytes(64, 64)[:300], 422, "corrupt_image"),
    "truncated jpeg": (image_bytes(64, 64, fmt="JPEG")[:400], 422, "corrupt_image"),
    "bmp (not allowed)": (image_bytes(fmt="BMP"), 415, "unsupported_media_type"),
    "gif (not allowed)": (image_bytes(fmt="GIF"), 415, "unsupported_media_type"),
    "30000x30000 png bomb": (
        with_declared_size(image_bytes(8, 8, mode="1"), 30000, 30000),
        413,
        "image_too_large",
    ),
    "over max_pixels": (with_declared_size(image_bytes(8, 8, mode="1"), 3000, 2000), 413, "image_too_large"),
    "8x8 (too small)": (image_bytes(8, 8), 422, "invalid_parameters"),
    "16x2000 (too small after max_side)": (image_bytes(2000, 16), 422, "invalid_parameters"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_content_gets_its_4xx(client: httpx.Client, case: str) -> None:
    data, status, code = HOSTILE[case]
    r = _post(client, data)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status and error["message"]
    if code:
        assert error["code"] == code
    assert client.get("/healthz").status_code == 200


ODD = {
    "grayscale": image_bytes(40, 32, mode="L"),
    "palette": image_bytes(40, 32, mode="P"),
    "palette with transparency": image_bytes(40, 32, mode="P", transparency=0),
    "rgba": image_bytes(40, 32, mode="RGBA"),
    "gray + alpha": image_bytes(40, 32, mode="LA"),
    "1-bit": image_bytes(40, 32, mode="1"),
    "cmyk jpeg": image_bytes(40, 32, fmt="JPEG", mode="CMYK"),
    "webp": image_bytes(40, 32, fmt="WEBP"),
}


@pytest.mark.parametrize("case", list(ODD))
def test_every_colour_mode_is_served(client: httpx.Client, case: str) -> None:
    r = _post(client, ODD[case])
    assert r.status_code == 200, r.text
    assert decode(r.content).size == (40, 32) and decode(r.content).mode == "RGB"


def test_16_bit_and_exif_rotated_inputs(client: httpx.Client) -> None:
    r = _post(client, _png_16bit())
    assert r.status_code == 200 and decode(r.content).size == (32, 32)
    r = _post(client, _exif_rotated())  # stored 48×32, shown 32×48
    assert r.status_code == 200 and decode(r.content).size == (32, 48)


def test_bad_style_and_mask_uploads(client: httpx.Client) -> None:
    content = image_bytes(32, 32)
    r = client.post(
        "/v1/stylize",
        files={"content": ("c", content), "style": ("s", b"junk" * 10)},
        data={"model": "color"},
    )
    assert r.status_code == 415 and "style 1" in r.json()["error"]["message"]
    r = client.post(
        "/v1/stylize",
        files={"content": ("c", content), "style": ("s", image_bytes(64, 64)[:200])},
        data={"model": "adain"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "corrupt_image"
    r = client.post(
        "/v1/stylize",
        files=[("content", ("c", content)), ("mask", ("m", image_bytes(16, 16)))],
        data={"model": "adain", "styles": ["warm"]},
    )
    assert r.status_code == 422 and "mask" in r.json()["error"]["message"]


# ------------------------------------------------------------------------------------------ parameters

ABSURD = [
    ("alpha 7", {"model": "color", "styles": "warm", "alpha": "7"}, 422),
    ("alpha nan", {"model": "color", "styles": "warm", "alpha": "nan"}, 422),
    ("alpha text", {"model": "color", "styles": "warm", "alpha": "lots"}, 422),
    ("max_side -1", {"model": "color", "styles": "warm", "max_side": "-1"}, 422),
    ("max_side 10^9", {"model": "color", "styles": "warm", "max_side": str(10**9)}, 422),
    ("format gif", {"model": "color", "styles": "warm", "format": "gif"}, 422),
    ("quality 0", {"model": "color", "styles": "warm", "quality": "0"}, 422),
    ("unknown model", {"model": "nope", "styles": "warm"}, 404),
    ("path as model", {"model": "../../etc/passwd", "styles": "warm"}, 404),
    ("huge model name", {"model": "x" * 5000}, 404),
    ("unknown style", {"model": "color", "styles": "nope"}, 404),
    ("path as style", {"model": "color", "styles": "../card"}, 404),
    ("two styles for color", {"model": "color", "styles": ["warm", "cool"]}, 422),
    ("no style for color", {"model": "color"}, 422),
    ("weights for color", {"model": "color", "styles": "warm", "weights": "1"}, 422),
    ("weights count mismatch", {"model": "multi", "styles": ["a", "b"], "weights": ["1", "2", "3"]}, 422),
    ("negative weight", {"model": "multi", "styles": ["a", "b"], "weights": ["1", "-2"]}, 422),
    ("zero weights", {"model": "multi", "styles": ["a", "b"], "weights": ["0", "0"]}, 422),
    ("infinite weight", {"model": "multi", "styles": ["a", "b"], "weights": ["inf", "1"]}, 422),
    ("style for fast", {"model": "fast", "styles": "a"}, 422),
    ("alpha for fast", {"model": "fast", "alpha": "0.5"}, 422),
    ("alpha for multistyle", {"model": "multi", "styles": "a", "alpha": "0.5"}, 422),
    ("no style for multistyle", {"model": "multi"}, 422),
    ("preserve_color for color", {"model": "color", "styles": "warm", "preserve_color": "true"}, 422),
    ("preserve_color not a bool", {"model": "fast", "preserve_color": "maybe"}, 422),
    ("17 styles", {"model": "multi", "styles": ["a"] * 17}, 422),
]


@pytest.mark.parametrize(("case", "data", "status"), ABSURD, ids=[c[0] for c in ABSURD])
def test_absurd_parameters(client: httpx.Client, case: str, data: dict, status: int) -> None:
    r = _post(client, image_bytes(32, 32), data)
    assert r.status_code == status, r.text
    assert r.json()["error"]["status"] == status


def test_uploaded_style_for_multistyle_and_masks_for_color(client: httpx.Client) -> None:
    content = image_bytes(32, 32)
    r = client.post(
        "/v1/stylize",
        files={"content": ("c", content), "style": ("s", image_bytes())},
        data={"model": "multi"},
    )
    assert r.status_code == 422 and "names" in r.json()["error"]["message"]
    r = client.post(
        "/v1/stylize",
        files={"content": ("c", content), "mask": ("m", image_bytes())},
        data={"model": "color", "styles": "warm"},
    )
    assert r.status_code == 422 and "mask" in r.json()["error"]["message"]


def test_wrong_content_types_and_missing_fields(client: httpx.Client) -> None:
    r = client.post("/v1/stylize", json={"content": "aGVsbG8="})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameters"
    r = client.post("/v1/stylize", content=b"plain text", headers={"content-type": "text/plain"})
    assert r.status_code == 422
    r = client.post(
        "/v1/stylize", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert 400 <= r.status_code < 500 and "error" in r.json()
    r = client.post("/v1/stylize", data={"content": "not a file", **STYLE})
    assert r.status_code == 422
    r = client.get("/v1/stylize")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# ------------------------------------------------------------------------------------------ body size


def test_oversized_upload_with_content_length_is_413(client: httpx.Client) -> None:
    big = os.urandom(1_500_000)  # the test server's limit is 1,000,000 bytes
    r = _post(client, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert client.get("/healthz").status_code == 200


def test_oversized_chunked_upload_without_content_length_is_413(server) -> None:
    boundary = "stylenormtestboundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="c.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        for _ in range(24):  # 24 × 64 KiB ≈ 1.5 MB, more than the limit
            yield os.urandom(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(
            "/v1/stylize",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert (
            r.request.headers.get("transfer-encoding") == "chunked"
            and "content-length" not in r.request.headers
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        # a chunked body under the limit still works
        small = image_bytes(32, 32)

        def ok_body() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="c.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode() + small
            yield (
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ncolor\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="styles"\r\n\r\nwarm\r\n'
                f"--{boundary}--\r\n"
            ).encode()

        r = c.post(
            "/v1/stylize",
            content=ok_body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 200, r.text
    assert server.client.get("/healthz").status_code == 200


def test_absurd_content_length_is_refused_at_once(server) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 100000000000\r\n\r\n"
        )
        answer = b""
        while chunk := s.recv(4096):  # the server closes the connection after the 413
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"payload_too_large" in answer
