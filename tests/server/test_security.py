"""API keys on and off, CORS closed by default and open for a configured origin, settings from env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stylenorm.server.settings import Settings
from tests.server.conftest import LiveServer, image_bytes, live_server

KEY = "s3cret-key"
ORIGIN = "http://allowed.example"


@pytest.fixture(scope="module")
def keyed(models_dir: Path) -> Iterator[LiveServer]:
    with live_server(models_dir, api_keys=[KEY, "other-key"], cors_origins=[ORIGIN]) as s:
        yield s


def test_keys_off_by_default(client: httpx.Client) -> None:
    assert client.get("/v1/models").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_api_key_required_when_configured(keyed: LiveServer) -> None:
    c = keyed.client
    for path in ("/v1/models", "/v1/models/color", "/metrics"):
        r = c.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized" and "X-API-Key" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"]
    assert c.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
    assert c.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/v1/models", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
    assert c.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    assert c.get("/v1/models", headers={"X-API-Key": "other-key"}).status_code == 200
    assert c.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    r = c.post(
        "/v1/stylize", files={"content": ("c.png", image_bytes())}, data={"model": "color", "styles": "warm"}
    )
    assert r.status_code == 401
    r = c.post(
        "/v1/stylize",
        files={"content": ("c.png", image_bytes())},
        data={"model": "color", "styles": "warm"},
        headers={"X-API-Key": KEY},
    )
    assert r.status_code == 200
    # probes and the page stay open
    for path in ("/healthz", "/readyz", "/", "/static/app.js"):
        assert c.get(path).status_code == 200, path


def test_openapi_declares_the_security_schemes(keyed: LiveServer) -> None:
    spec = keyed.client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/stylize"]["post"]["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_cors_closed_by_default(client: httpx.Client) -> None:
    r = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/v1/stylize", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_open_for_the_configured_origin_only(keyed: LiveServer) -> None:
    c = keyed.client
    pre = c.options(
        "/v1/stylize",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    r = c.get("/v1/models", headers={"Origin": ORIGIN, "X-API-Key": KEY})
    assert r.headers["access-control-allow-origin"] == ORIGIN
    other = c.get("/v1/models", headers={"Origin": "http://evil.example", "X-API-Key": KEY})
    assert "access-control-allow-origin" not in other.headers
    bad = c.options(
        "/v1/stylize", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert bad.status_code == 400


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLENORM_API_KEYS", "key-one, key-two")
    monkeypatch.setenv("STYLENORM_CORS_ORIGINS", '["http://x.example"]')
    monkeypatch.setenv("STYLENORM_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("STYLENORM_MODELS_DIR", str(tmp_path))
    s = Settings(_env_file=None)
    assert [k.get_secret_value() for k in s.api_keys] == ["key-one", "key-two"] and "key-one" not in repr(s)
    assert s.cors_origins == ["http://x.example"] and s.max_batch_size == 3 and s.models_dir == tmp_path
    round_trip = s.to_env()
    assert (
        round_trip["STYLENORM_API_KEYS"] == '["key-one", "key-two"]'
        and round_trip["STYLENORM_MAX_BATCH_SIZE"] == "3"
    )
    monkeypatch.setenv("STYLENORM_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="max_batch_size"):
        Settings(_env_file=None)
