"""Operations as people expect: request ids, JSON logs, metrics behind API keys, multiprocess metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from stylenorm.server.metrics import forget_dead_workers, wipe_multiprocess_dir
from tests.server.conftest import LiveServer, image_bytes, live_server
from tests.server.test_cli import _serve, _stop, _wait_ready

# ------------------------------------------------------------------------------------- request ids


def test_a_request_id_is_generated_when_none_is_sent(client: httpx.Client) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_well_formed_request_id_is_kept_and_quoted_in_errors(client: httpx.Client) -> None:
    r = client.get("/v1/models/no-such-model", headers={"X-Request-ID": "trace-42.a:b_c"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "trace-42.a:b_c"
    assert r.json()["error"]["request_id"] == "trace-42.a:b_c"


def test_a_malformed_request_id_is_replaced(client: httpx.Client) -> None:
    for bad in ("has space", "x" * 129, "quote\"d", "ünï"):
        r = client.get("/healthz", headers={"X-Request-ID": bad.encode("utf-8")})
        rid = r.headers["x-request-id"]
        assert rid != bad and len(rid) == 32


def test_body_limit_and_queue_errors_carry_the_id(server: LiveServer) -> None:
    big = b"x" * (server.settings.max_upload_bytes + 1)
    r = server.client.post(
        "/v1/stylize", files={"content": ("c.png", big)}, headers={"X-Request-ID": "big-upload-1"}
    )
    assert r.status_code == 413 and r.json()["error"]["request_id"] == "big-upload-1"
    assert r.headers["x-request-id"] == "big-upload-1"


# ------------------------------------------------------------------------------------------ logs


def test_serve_logs_json_lines_with_the_request_id(models_dir: Path) -> None:
    proc, url = _serve(models_dir, env={"STYLENORM_LOG_FORMAT": "json"})
    try:
        _wait_ready(proc, url)
        r = httpx.post(
            f"{url}/v1/stylize",
            files={"content": ("c.png", image_bytes(32, 32))},
            data={"model": "color", "styles": "warm"},
            headers={"X-Request-ID": "json-log-7"},
            timeout=30,
        )
        assert r.status_code == 200
    finally:
        out = _stop(proc)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    # no line of Python's logging in text form, uvicorn's own included ("INFO:     Started server…");
    # (a native library writing to stderr itself, like a torch C++ warning, is not logging's to format)
    text_lines = [ln for ln in out.splitlines() if re.match(r"(\d{4}-\d\d-\d\d \S+ )?[A-Z]+:? ", ln)]
    assert not text_lines, text_lines
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert not [r for r in records if "color_message" in r or "\x1b" in r["message"]]  # no terminal colours
    access = [r for r in records if r["logger"] == "uvicorn.access" and "/v1/stylize" in r["message"]]
    assert access and access[0]["request_id"] == "json-log-7", access
    assert any(r["logger"].startswith("stylenorm.server") for r in records)


# --------------------------------------------------------------------------------------- metrics


def test_metrics_need_the_key_unless_metrics_public(models_dir: Path) -> None:
    with live_server(models_dir, api_keys=["k1"]) as closed:
        assert closed.client.get("/metrics").status_code == 401
    with live_server(models_dir, api_keys=["k1"], metrics_public=True) as scraped:
        r = scraped.client.get("/metrics")
        assert r.status_code == 200 and "stylenorm_requests_total" in r.text
        assert scraped.client.get("/v1/models").status_code == 401  # only /metrics opened
        assert scraped.client.get("/v1/models", headers={"X-API-Key": "k1"}).status_code == 200


def test_wipe_removes_only_prometheus_files(tmp_path: Path) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"\0" * 16)
    (folder / "gauge_livesum_123.db").write_bytes(b"\0" * 16)
    (folder / "README").write_text("the operator's")
    assert wipe_multiprocess_dir(folder) == 2
    assert [p.name for p in folder.iterdir()] == ["README"]
    assert wipe_multiprocess_dir(tmp_path / "new") == 0 and (tmp_path / "new").is_dir()


_WORKER = """
import os, sys
from stylenorm.server.metrics import Metrics
m = Metrics()
m.models_loaded.set(int(sys.argv[1]))
m.requests.labels("/v1/stylize", "POST", "200").inc()
if sys.argv[2] == "close":
    m.close()
"""
_SCRAPE = """
import sys
from stylenorm.server.metrics import Metrics
sys.stdout.buffer.write(Metrics().render())
"""


def _value(text: str, prefix: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))


def test_dead_workers_leave_the_gauges_but_not_the_counters(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(code: str, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    run(_WORKER, "3", "close")  # a worker that shut down cleanly: its gauge files are gone
    assert not list(tmp_path.glob("gauge_live*"))
    run(_WORKER, "5", "crash")  # one that died without a word: they stay, until a scrape
    assert len(list(tmp_path.glob("gauge_live*"))) == 1
    text = run(_SCRAPE)
    assert _value(text, "stylenorm_models_loaded ") == 0.0  # no live worker: no loaded models (was 5)
    assert _value(text, "stylenorm_requests_total{") == 2.0  # counters keep what dead workers counted
    leftover = sorted(int(p.stem.rsplit("_", 1)[1]) for p in tmp_path.glob("gauge_live*"))  # the scraper's
    assert forget_dead_workers(tmp_path) == leftover and not list(tmp_path.glob("gauge_live*"))
