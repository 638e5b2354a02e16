"""Bounded concurrent load, load shedding (503 + Retry-After) and deadlines (504) on a real server."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.server.conftest import LiveServer, image_bytes, live_server

REQUESTS, CONCURRENCY = 200, 16


def _histogram_counts(text: str, name: str) -> dict[str, float]:
    """{le: cumulative count} of a histogram summed over its other labels."""
    counts: dict[str, float] = {}
    for m in re.finditer(rf"^{name}_bucket\{{([^}}]*)\}} ([0-9.e+]+)$", text, re.M):
        le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
        counts[le] = counts.get(le, 0.0) + float(m.group(2))
    return counts


def test_concurrent_load_has_no_5xx_and_batches_form(server: LiveServer) -> None:
    # four contents and four request shapes (named styles, an upload, alphas) of one model and size
    contents = [image_bytes(32, 32, seed=i) for i in range(4)]
    upload = image_bytes(32, 32, seed=99)
    before = _histogram_counts(server.client.get("/metrics").text, "stylenorm_batch_size")

    def one(i: int) -> tuple[int, int]:
        files = {"content": ("c.png", contents[i % 4])}
        data: dict = {"model": "color", "alpha": str(0.25 + 0.25 * (i % 4))}
        if i % 3 == 0:
            files["style"] = ("s.png", upload)
        else:
            data["styles"] = ["warm", "cool", "grass"][i % 3]
        r = client.post("/v1/stylize", files=files, data=data)
        return r.status_code, int(r.headers.get("x-batch-size", "0"))

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    start = time.monotonic()
    with (
        httpx.Client(base_url=server.url, timeout=60, limits=limits) as client,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):
        results = list(pool.map(one, range(REQUESTS)))
    elapsed = time.monotonic() - start
    statuses = [s for s, _ in results]
    assert all(s == 200 for s in statuses), sorted(set(statuses))
    assert max(b for _, b in results) > 1
    after = _histogram_counts(server.client.get("/metrics").text, "stylenorm_batch_size")
    total = after["+Inf"] - before.get("+Inf", 0.0)
    single = after["1.0"] - before.get("1.0", 0.0)
    assert total < REQUESTS and total - single > 0, (total, single)  # batches larger than 1 in /metrics
    assert server.client.get("/healthz").status_code == 200
    assert elapsed < 120


def test_full_queue_is_503_with_retry_after_and_late_requests_504(models_dir: Path) -> None:
    with live_server(models_dir, queue_size=1, max_batch_size=1, request_timeout_s=0.5) as s:
        engine = s.engine
        forward = engine._forward

        def slow_forward(jobs):  # fault injection: a model that takes 0.8 s per batch
            time.sleep(0.8)
            return forward(jobs)

        engine._forward = slow_forward
        content = image_bytes(32, 32)

        def one(_: int) -> httpx.Response:
            with httpx.Client(base_url=s.url, timeout=30) as c:
                return c.post("/v1/stylize", files={"content": ("c.png", content)}, data={"model": "fast"})

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(one, range(6)))
        statuses = sorted(r.status_code for r in answers)
        assert 503 in statuses and 504 in statuses and all(x in (200, 503, 504) for x in statuses), statuses
        for r in answers:
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "queue_full" and int(r.headers["retry-after"]) >= 1
            if r.status_code == 504:
                assert r.json()["error"]["code"] == "deadline_exceeded"
        engine._forward = forward
        time.sleep(1.0)  # let the worker finish the abandoned batch
        ok = s.client.post("/v1/stylize", files={"content": ("c.png", content)}, data={"model": "fast"})
        assert ok.status_code == 200 and s.client.get("/healthz").status_code == 200
        metrics = s.client.get("/metrics").text
        assert 'stylenorm_failures_total{reason="queue_full"}' in metrics
        assert 'stylenorm_failures_total{reason="deadline_exceeded"}' in metrics
