"""Every endpoint against a real uvicorn on loopback: answers, media types, OpenAPI, metrics."""

from __future__ import annotations

import io
import json
import threading

import httpx
import numpy as np
import torch
from PIL import Image

from stylenorm.imageio import load_image
from stylenorm.inference.stylize import stylize
from stylenorm.models import load
from tests.server.conftest import GALLERY, LiveServer, decode, image_bytes, settings_for


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message", "request_id"}
    assert body["error"]["request_id"] == r.headers["x-request-id"]
    assert body["error"]["status"] == status and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _pixels(data: bytes) -> torch.Tensor:
    return load_image(data)


# ------------------------------------------------------------------------------------------ ops


def test_health_ready_and_page(client: httpx.Client) -> None:
    live = client.get("/healthz")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models_loaded"] == 4
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="stylize-button"' in page.text
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        r = client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert client.get("/static/../settings.py").status_code == 404


def test_readyz_is_503_until_the_models_are_loaded(models_dir) -> None:
    server = LiveServer(settings_for(models_dir))
    registry = server.app.state.server.registry
    release = threading.Event()
    load_all = registry.load_all

    def held_load_all(warm):  # loading takes as long as the test wants
        release.wait(30)
        load_all(warm)

    registry.load_all = held_load_all
    server.start(ready=False)
    try:
        _error(server.client.get("/readyz"), 503, "not_ready")
        assert server.client.get("/readyz").headers["retry-after"]
        assert server.client.get("/healthz").json()["status"] == "loading"
        busy = server.client.post(
            "/v1/stylize",
            files={"content": ("c.png", image_bytes())},
            data={"model": "color", "styles": "warm"},
        )
        _error(busy, 503, "not_ready")
        assert server.client.get("/v1/models").json()["ready"] is False
        release.set()
        server.wait_ready()
        assert registry.ready and server.client.get("/readyz").status_code == 200
    finally:
        release.set()
        server.stop()


def test_models_list_has_available_and_unavailable(client: httpx.Client, models_dir) -> None:
    text = client.get("/v1/models").text
    assert str(models_dir) not in text  # the server's own paths are not shown to clients
    body = json.loads(text)
    assert body["ready"] is True
    names = {m["name"]: m for m in body["available"]}
    assert set(names) == {"color", "fast", "multi", "adain"}
    assert names["multi"]["styles"] == ["a", "b", "c"] and names["multi"]["kind"] == "stylize"
    unavailable = {m["name"]: m["reason"] for m in body["unavailable"]}
    assert set(unavailable) == {"garbled", "lost"}
    assert "not found" in unavailable["lost"] or "weights" in unavailable["lost"]
    lost = _error(client.get("/v1/models/lost"), 404, "unknown_model")
    assert "unavailable" in lost["message"]


def test_model_detail_and_options(client: httpx.Client) -> None:
    adain = client.get("/v1/models/adain").json()
    assert adain["architecture"] == "adain" and adain["styles"] == list(GALLERY)
    assert adain["options"]["masks"] and adain["options"]["alpha"] and adain["options"]["uploaded_styles"]
    assert set(adain["thumbnails"]) == set(GALLERY)
    color = client.get("/v1/models/color").json()
    assert color["options"]["max_styles"] == 1 and not color["options"]["preserve_color"]
    fast = client.get("/v1/models/fast").json()
    assert fast["options"]["max_styles"] == 0 and fast["thumbnails"] == {}
    _error(client.get("/v1/models/nope"), 404, "unknown_model")
    _error(client.get("/v1/models/..%2F..%2Fetc"), 404)


def test_thumbnails_are_small_pngs_and_cached(client: httpx.Client) -> None:
    r = client.get("/v1/models/color/styles/warm/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = decode(r.content)
    assert max(img.size) <= 128
    again = client.get("/v1/models/color/styles/warm/thumbnail", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    multi = client.get("/v1/models/multi/styles/b/thumbnail")  # no gallery file: the style on a test picture
    assert multi.status_code == 200 and decode(multi.content).size == (128, 128)
    _error(client.get("/v1/models/color/styles/nope/thumbnail"), 404, "unknown_style")
    _error(client.get("/v1/models/color/styles/..%2F..%2Fcard/thumbnail"), 404)
    _error(client.get("/v1/models/color/styles/....card/thumbnail"), 404, "unknown_style")


# ------------------------------------------------------------------------------------------ stylize


def test_stylize_color_with_a_named_style_equals_the_library(client: httpx.Client, models_dir) -> None:
    content = image_bytes(40, 32, seed=1)
    r = client.post(
        "/v1/stylize",
        files={"content": ("c.png", content)},
        data={"model": "color", "styles": "cool", "alpha": "0.7"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-model"] == "color"
    got = _pixels(r.content)
    expected = stylize(load("color", models_dir), load_image(content), ["cool"], alpha=0.7)
    assert got.shape == (1, 3, 32, 40)
    assert (got - expected).abs().max() <= 1 / 255 + 1e-6  # 8-bit rounding only


def test_stylize_default_model_and_formats(server: LiveServer) -> None:
    client = server.client
    content = image_bytes(48, 48, seed=2)
    for fmt, media, pil in (("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP")):
        r = client.post(
            "/v1/stylize",
            files={"content": ("c.png", content), "style": ("s.png", image_bytes(seed=3))},
            data={"model": "color", "format": fmt, "quality": "80"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == media and decode(r.content).format == pil
    # no model named and the default ("color-transfer") absent: several models loaded -> say which
    _error(client.post("/v1/stylize", files={"content": ("c.png", content)}), 422, "invalid_parameters")


def test_stylize_every_architecture(client: httpx.Client, models_dir) -> None:
    content = image_bytes(32, 32, seed=4)
    cases = [
        ({"model": "fast"}, {}),
        ({"model": "fast", "preserve_color": "true"}, {}),
        ({"model": "multi", "styles": ["a", "c"], "weights": ["1", "3"]}, {}),
        ({"model": "adain", "styles": ["warm"], "alpha": "0.5"}, {}),
        (
            {"model": "adain", "weights": ["2", "1"], "styles": ["grass"]},
            {"style": ("s.png", image_bytes(seed=9))},
        ),
        ({"model": "adain", "styles": ["warm"], "preserve_color": "true"}, {}),
    ]
    for data, files in cases:
        r = client.post("/v1/stylize", files={"content": ("c.png", content), **files}, data=data)
        assert r.status_code == 200, (data, r.text)
        assert decode(r.content).size == (32, 32)
    # the mix equals the library's stylize of the same request
    r = client.post(
        "/v1/stylize",
        files={"content": ("c.png", content)},
        data={"model": "multi", "styles": ["a", "c"], "weights": ["1", "3"]},
    )
    expected = stylize(load("multi", models_dir), load_image(content), ["a", "c"], [1.0, 3.0])
    assert (_pixels(r.content) - expected).abs().max() <= 1 / 255 + 1e-6


def test_stylize_with_masks(client: httpx.Client, models_dir) -> None:
    content = image_bytes(32, 32, seed=5)
    left = np.zeros((32, 32), np.uint8)
    left[:, :16] = 255
    masks = []
    for arr in (left, 255 - left):
        buf = io.BytesIO()
        Image.fromarray(arr, "L").save(buf, "PNG")
        masks.append(("mask", (f"m{len(masks)}.png", buf.getvalue())))
    r = client.post(
        "/v1/stylize",
        files=[("content", ("c.png", content)), *masks],
        data={"model": "adain", "styles": ["warm", "cool"]},
    )
    assert r.status_code == 200, r.text
    model = load("adain", models_dir)
    m = [torch.from_numpy(a.astype(np.float32) / 255) for a in (left, 255 - left)]
    expected = stylize(model, load_image(content), ["warm", "cool"], masks=m)
    assert (_pixels(r.content) - expected).abs().max() <= 1 / 255 + 1e-5
    wrong = client.post(
        "/v1/stylize",
        files=[("content", ("c.png", content)), masks[0]],
        data={"model": "adain", "styles": ["warm", "cool"]},
    )
    _error(wrong, 422, "invalid_parameters")


def test_max_side_bounds_the_output(client: httpx.Client) -> None:
    r = client.post(
        "/v1/stylize",
        files={"content": ("c.png", image_bytes(96, 64, seed=6))},
        data={"model": "color", "styles": "warm", "max_side": "48"},
    )
    assert r.status_code == 200 and decode(r.content).size == (48, 32)
    # without max_side the server's limit (256 in the tests) applies
    r = client.post(
        "/v1/stylize",
        files={"content": ("c.png", image_bytes(300, 150, seed=6))},
        data={"model": "color", "styles": "warm"},
    )
    assert r.status_code == 200 and decode(r.content).size == (256, 128)


# ------------------------------------------------------------------------------- synthesize, generate


def test_synthesize_and_generate_without_such_models_are_404(client: httpx.Client) -> None:
    e = _error(client.post("/v1/synthesize", files={"labels": ("l.png", image_bytes())}), 404, "no_model")
    assert "spade" in e["message"]
    e = _error(client.post("/v1/generate", json={"class_name": "cat"}), 404, "no_model")
    assert "cgan" in e["message"]
    e = _error(client.post("/v1/generate", data={"class_name": "cat", "count": "2"}), 404, "no_model")
    _error(client.post("/v1/generate", json={"class_name": "cat", "count": 10**9}), 422, "invalid_parameters")
    _error(
        client.post("/v1/generate", content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    _error(client.post("/v1/generate", content=b"x", headers={"content-type": "text/plain"}), 415)


# ------------------------------------------------------------------------------------------ OpenAPI, metrics


def test_openapi_documents_image_media_types_and_errors(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    stylize_op = spec["paths"]["/v1/stylize"]["post"]
    assert set(stylize_op["responses"]["200"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    for code in ("404", "413", "415", "422", "503", "504"):
        assert code in stylize_op["responses"], code
    form = stylize_op["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["$ref"] or form["schema"]
    gen = spec["paths"]["/v1/generate"]["post"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(gen["requestBody"]["content"])
    assert "ErrorBody" in spec["components"]["schemas"]
    assert "securitySchemes" not in spec.get("components", {})  # no API keys configured: no auth declared


def test_metrics_names(client: httpx.Client) -> None:
    client.post("/v1/stylize", files={"content": ("c.png", image_bytes(seed=7))}, data={"model": "fast"})
    client.get("/v1/models/nope")
    text = client.get("/metrics").text
    for name in (
        "stylenorm_requests_total",
        "stylenorm_request_duration_seconds_bucket",
        "stylenorm_queue_depth",
        "stylenorm_batch_size_bucket",
        "stylenorm_inference_seconds_bucket",
        "stylenorm_failures_total",
        "stylenorm_models_loaded 4.0",
        "stylenorm_models_unavailable 2.0",
    ):
        assert name in text, name
    assert 'route="/v1/stylize"' in text and 'route="/v1/models/{name}"' in text
    assert 'reason="unknown_model"' in text
    assert "/v1/models/nope" not in text  # templates, never raw paths
