"""Prometheus metrics (prefix ``stylenorm_``) and the ASGI middleware that counts every request.

Each app has its own registry, so several apps live in one process (tests).
With ``PROMETHEUS_MULTIPROC_DIR`` set (``stylenorm serve --workers N``) the
series are written to that folder by every worker and ``/metrics`` merges them.
As prometheus_client documents, the folder is emptied of its ``*.db`` files when
the server starts (:func:`wipe_multiprocess_dir`), and a worker that ends is marked
dead (``mark_process_dead``) so its gauges leave the sum; a worker that died without
saying so is found by its pid at the next scrape (:meth:`Metrics.render`).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_FAILURE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    500: "internal_error",
    503: "unavailable",
    504: "deadline_exceeded",
}


def multiprocess_dir() -> str | None:
    """The prometheus_client multiprocess folder, when several worker processes share the metrics."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def wipe_multiprocess_dir(folder: str | Path) -> int:
    """Make folder an empty multiprocess folder: create it, delete the ``*.db`` files a previous run left.

    Only prometheus_client's own files go; anything else in the folder stays. Returns how many went.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    stale = list(path.glob("*.db"))
    for file in stale:
        file.unlink(missing_ok=True)
    return len(stale)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def forget_dead_workers(folder: str | Path) -> list[int]:
    """mark_process_dead for every pid with live-gauge files whose process is gone; returns those pids."""
    dead = sorted(
        {
            int(m.group(1))
            for f in Path(folder).glob("gauge_live*_*.db")
            if (m := _LIVE_GAUGE_FILE.fullmatch(f.name)) and not _pid_alive(int(m.group(1)))
        }
    )
    for pid in dead:
        prom_multiprocess.mark_process_dead(pid, str(folder))
    return dead


class Metrics:
    """The server's series; ``render()`` gives the Prometheus text format."""

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double the scrape size
        self.folder = multiprocess_dir()  # read once: the environment does not change under a worker
        self.multiprocess = self.folder is not None
        # in multiprocess mode the values go to files; registering them in a registry is not needed
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        r = {"registry": self.registry}
        self.requests = Counter(
            "stylenorm_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            **r,
        )
        self.latency = Histogram(
            "stylenorm_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            **r,
        )
        self.in_flight = self._gauge("stylenorm_requests_in_flight", "HTTP requests being served", [], r)
        self.queue_depth = self._gauge(
            "stylenorm_queue_depth", "inference jobs waiting for the worker", [], r
        )
        self.batch_size = Histogram(
            "stylenorm_batch_size",
            "requests per forward pass",
            ["model"],
            buckets=BATCH_BUCKETS,
            **r,
        )
        self.inference = Histogram(
            "stylenorm_inference_seconds",
            "time of one forward pass (a whole batch)",
            ["model", "kind"],
            buckets=LATENCY_BUCKETS,
            **r,
        )
        self.queue_wait = Histogram(
            "stylenorm_queue_wait_seconds",
            "time a job waited in the queue before its forward pass",
            ["model"],
            buckets=LATENCY_BUCKETS,
            **r,
        )
        self.failures = Counter(
            "stylenorm_failures",
            "failed requests by reason (the error code)",
            ["reason"],
            **r,
        )
        self.models_loaded = self._gauge("stylenorm_models_loaded", "models loaded and warmed", [], r)
        self.models_unavailable = self._gauge(
            "stylenorm_models_unavailable", "models found but not servable", [], r
        )
        self.style_cache = Counter(
            "stylenorm_style_cache",
            "style statistics cache lookups",
            ["result"],
            **r,
        )

    def _gauge(self, name: str, doc: str, labels: list[str], r: dict[str, Any]) -> Gauge:
        if self.multiprocess:
            return Gauge(name, doc, labels, multiprocess_mode="livesum", **r)
        return Gauge(name, doc, labels, **r)

    def close(self) -> None:
        """This process stops serving: in multiprocess mode its live gauges leave the sums."""
        if self.folder is not None:
            prom_multiprocess.mark_process_dead(os.getpid(), self.folder)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        if self.folder is not None:
            forget_dead_workers(self.folder)  # a worker killed without a goodbye leaves its gauges behind
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        assert self.registry is not None
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI: count each HTTP request by its route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        start = time.perf_counter()
        scope["stylenorm.arrived"] = time.monotonic()  # the request's deadline counts from here

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            # unmatched paths share one label, so random URLs cannot blow up the series count
            template = getattr(route, "path", None) or "unmatched"
            code = status["code"]
            self.metrics.requests.labels(template, scope.get("method", ""), str(code)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - start)
            if code >= 400:
                reason = scope.get("stylenorm.failure") or _FAILURE_BY_STATUS.get(code, f"http_{code}")
                self.metrics.failures.labels(reason).inc()
