"""Operations and the page: ``/healthz``, ``/readyz``, ``/metrics`` and the web page at ``/``."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.
from pathlib import Path
from typing import Any

from fastapi import APIRouter, params
from fastapi.responses import FileResponse, JSONResponse, Response

from stylenorm import __version__
from stylenorm.server.errors import error_body
from stylenorm.server.metrics import CONTENT_TYPE
from stylenorm.server.responses import error_responses
from stylenorm.server.schemas import ErrorBody, Health
from stylenorm.server.state import ServerState, StateDep

STATIC = Path(__file__).resolve().parents[1] / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def health(state: ServerState) -> Health:
    """The liveness answer: loading or ok, with the counts."""
    registry, engine = state.registry, state.engine
    return Health(
        status="ok" if registry.ready else "loading",
        models_loaded=len(registry.models),
        models_unavailable=len(registry.unavailable),
        queue_depth=engine.queue_depth,
        version=__version__,
    )


def router(metrics_guard: list[params.Depends]) -> APIRouter:
    """The operations routes; ``metrics_guard``: the API-key dependency of /metrics (none when public)."""
    router = APIRouter()

    @router.get(
        "/healthz", response_model=Health, summary="Liveness: 200 while the process is up", tags=["ops"]
    )
    async def healthz(state: StateDep) -> Health:
        return health(state)

    @router.get(
        "/readyz",
        response_model=Health,
        tags=["ops"],
        responses={503: {"model": ErrorBody, "description": "models are still loading"}},
        summary="Readiness: 200 once every loadable model is loaded and warmed, 503 before",
    )
    async def readyz(state: StateDep) -> Any:
        registry, engine = state.registry, state.engine
        if not registry.ready:
            return JSONResponse(
                error_body(503, "not_ready", "models are still loading"),
                status_code=503,
                headers={"Retry-After": "2"},
            )
        if engine.drain_deadline is not None:  # shutting down: the balancer should send work elsewhere
            return JSONResponse(
                error_body(503, "shutting_down", "the server is shutting down"), status_code=503
            )
        return health(state)

    @router.get(
        "/metrics",
        response_class=Response,
        tags=["ops"],
        # the cluster's scraper has no API key: metrics_public opens /metrics alone (keep it off the
        # public side of the proxy: docker/nginx.conf answers 404 for it)
        dependencies=metrics_guard,
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **(error_responses(401) if metrics_guard else {}),
        },
        summary="Prometheus metrics (prefix stylenorm_)",
    )
    async def prometheus(state: StateDep) -> Response:
        metrics, registry, engine = state.metrics, state.registry, state.engine
        metrics.queue_depth.set(engine.queue_depth)
        metrics.models_loaded.set(len(registry.models))
        metrics.models_unavailable.set(len(registry.unavailable))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html",
            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
        )

    return router
