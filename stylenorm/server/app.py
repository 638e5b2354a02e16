"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Routes, one module per resource under :mod:`.routes`: ``POST /v1/stylize`` (``stylize``), ``POST
/v1/synthesize`` and ``/v1/generate`` (``synthesis``), ``POST /v1/optimise`` with ``GET``/``DELETE
/v1/jobs/{id}`` (``optimise``), ``GET /v1/models…`` (``models``), ``/healthz``, ``/readyz``,
``/metrics`` and the web page at ``/`` (``ops``). They share one :class:`~.state.ServerState` as a
dependency. Models load in the background after start (:mod:`.lifecycle`; ``/readyz`` is 503 until every
loadable model is loaded and warmed); inference runs in :class:`~.engine.Engine`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from stylenorm import __version__
from stylenorm.server import errors
from stylenorm.server.auth import api_key_guard
from stylenorm.server.lifecycle import lifespan
from stylenorm.server.metrics import MetricsMiddleware
from stylenorm.server.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from stylenorm.server.protocol import TimedH11Protocol
from stylenorm.server.request_id import RequestIdMiddleware
from stylenorm.server.responses import error_responses
from stylenorm.server.routes import models, ops, optimise, stylize, synthesis
from stylenorm.server.settings import Settings
from stylenorm.server.state import ServerState

log = logging.getLogger("stylenorm.server")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for these settings (default: from the environment and .env)."""
    settings = settings or Settings()
    logging.getLogger("stylenorm.server").setLevel(settings.log_level.upper())
    state = ServerState.build(settings)
    docs = settings.docs_enabled
    # /docs and /redoc from the swagger-ui and redoc files that fastapi-offline ships (FastAPI's own
    # pages load them from a CDN: blank without internet); without docs, the plain FastAPI
    make_app: Any = FastAPIOffline if docs else FastAPI
    app = make_app(
        title="stylenorm",
        version=__version__,
        summary="Style transfer and semantic image synthesis with the models of a stylenorm repository.",
        description=(
            'Every error has the body `{"error": {"status", "code", "message", "request_id"}}`. '
            "Images are uploaded (multipart) as PNG, JPEG or WebP; nothing is fetched by URL. "
            + ("Send an API key as `X-API-Key` or `Authorization: Bearer`." if settings.api_keys else "")
        ),
        lifespan=lifespan(state),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.server = state  # the routes' dependency (state.StateDep), and the tests' handle
    TimedH11Protocol.header_timeout_s = settings.header_timeout_s  # uvicorn builds it per connection
    errors.install(app)

    protected = api_key_guard(settings)
    common_errors = (401, 404, 422) if protected else (404, 422)
    # each resource's routes carry their /v1 prefix themselves: the metrics label a route by its template
    for router in (models.router, stylize.router(settings), synthesis.router, optimise.router(settings)):
        app.include_router(router, dependencies=protected, responses=error_responses(*common_errors))
    # the cluster's scraper has no API key: metrics_public opens /metrics alone
    app.include_router(ops.router([] if settings.metrics_public else protected))
    app.mount("/static", StaticFiles(directory=ops.STATIC), name="static")

    # outermost last: metrics see every answer, including the body limit's 413
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, body_timeout_s=settings.body_timeout_s
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["Retry-After", "X-Seed", "X-Model", "X-Batch-Size", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer and log line carries the id
    return app


__all__ = ["create_app"]
