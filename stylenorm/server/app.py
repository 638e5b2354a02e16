"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Routes: ``POST /v1/stylize``, ``POST /v1/synthesize``, ``POST /v1/generate``,
``POST /v1/optimise`` with ``GET``/``DELETE /v1/jobs/{id}`` (:mod:`.optimise_routes`),
``GET /v1/models``, ``GET /v1/models/{name}``,
``GET /v1/models/{name}/styles/{style}/thumbnail``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics`` and the web page at ``/``. Models load in
the background after start (``/readyz`` is 503 until every loadable model is
loaded and warmed); inference runs in :class:`server.engine.Engine`.
"""

# No `from __future__ import annotations` in this module: FastAPI evaluates the route signatures, and
# their constraints (max_side ≤ settings.max_side) refer to names in create_app's scope.
import asyncio
import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, Security, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stylenorm import __version__
from stylenorm.families import family_of
from stylenorm.families.base import MAX_STYLES, test_pattern
from stylenorm.imageio import (
    WEB_FORMATS,
    ImageError,
    encode_image,
    load_image,
    open_image,
    resize_mask,
)
from stylenorm.server import errors
from stylenorm.server.engine import Engine, StyleRef, StylizeWork
from stylenorm.server.errors import ApiError, error_body
from stylenorm.server.jobs import JobRunner
from stylenorm.server.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from stylenorm.server.optimise_routes import add_optimise_routes
from stylenorm.server.protocol import DRAIN_HOOK, TimedH11Protocol
from stylenorm.server.registry import Registry, ServedModel, library_function
from stylenorm.server.request_id import RequestIdMiddleware
from stylenorm.server.schemas import (
    MAX_GENERATE,
    MEDIA_TYPES,
    ErrorBody,
    GenerateRequest,
    GenerateResponse,
    Health,
    ImageFormat,
    ModelDetail,
    ModelList,
    ModelSummary,
    StylizeOptions,
    UnavailableModel,
)
from stylenorm.server.settings import Settings
from stylenorm.server.uploads import (
    PixelBudget,
    check_weights,
    declared_pixels,
    declared_size,
    decode_mask,
    decode_upload,
    with_field,
)
from stylenorm.stylize import MIN_SIDE, resize_to

log = logging.getLogger("stylenorm.server")

STATIC = Path(__file__).resolve().parent / "static"
WARMUP_SIDE = 256  # the measured warm-up pass: 0.066 MP, above the cost model's smallest sample
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


# ---------------------------------------------------------------------------------------- middleware


class _BodyTooLarge(Exception):
    """Raised into the app by the body limit once the streamed body passes the limit."""


class _BodyStalled(Exception):
    """Raised into the app when the body stops arriving for longer than the body timeout."""


class BodyLimitMiddleware:
    """Pure ASGI: 413 for bodies over max_bytes, 408 for bodies that stall; marks when the body is in.

    Counting covers chunked bodies (no Content-Length). The rest of an oversized
    body (up to ``drain_bytes``, for at most ``drain_s``) is read and dropped
    before answering, so the client, still sending, gets to read the 413 instead
    of a broken pipe. A body that sends nothing for ``body_timeout_s`` is
    answered 408 ``request_timeout`` and the connection closed. When the last
    body byte has arrived, ``scope["stylenorm.body_complete"]`` is set: request
    deadlines count from there, not from the first header byte (a slow upload is
    not the server's time).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        drain_bytes: int | None = None,
        body_timeout_s: float = 15.0,
        drain_s: float = 5.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 64 << 20)
        self.body_timeout_s, self.drain_s = body_timeout_s, drain_s

    def _message(self) -> str:
        return f"the request body is larger than the server's limit of {self.max_bytes:,} bytes"

    async def _answer(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        scope["stylenorm.failure"] = code
        body = json.dumps(error_body(status, code, message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _reject(self, scope: Scope, send: Send) -> None:
        await self._answer(scope, send, 413, "payload_too_large", self._message())

    async def _stalled(self, scope: Scope, send: Send) -> None:
        message = f"the request body stopped arriving (nothing for {self.body_timeout_s:g} s)"
        await self._answer(scope, send, 408, "request_timeout", message)

    async def _drain(self, receive: Receive, already: int) -> None:
        """Read and drop the rest of an oversized body: at most drain_bytes, for at most drain_s."""
        seen = already
        deadline = asyncio.get_running_loop().time() + self.drain_s
        while seen <= self.drain_bytes:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), min(left, self.body_timeout_s))
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes:
                # with Expect: 100-continue the client has sent nothing yet: answer at once
                if headers.get(b"expect", b"").lower() != b"100-continue" and size <= self.drain_bytes:
                    await self._drain(receive, 0)
                await self._reject(scope, send)
                return
        state = {"received": 0, "exceeded": False, "stalled": False, "started": False, "complete": False}

        async def limited_receive() -> Message:
            if state["exceeded"]:
                raise _BodyTooLarge
            if state["stalled"]:
                raise _BodyStalled
            if state["complete"]:
                return await receive()  # after the body: waiting for a disconnect has no time limit
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                state["stalled"] = True
                raise _BodyStalled from None
            if message["type"] == "http.disconnect":
                state["gone"] = True  # left mid-body: whatever the app answers, nobody reads it
                scope["stylenorm.failure"] = "client_closed_request"
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["exceeded"] = True
                    state["more"] = message.get("more_body", False)
                    raise _BodyTooLarge
                if not message.get("more_body", False):
                    state["complete"] = True
                    scope["stylenorm.body_complete"] = time.monotonic()
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"] or state["stalled"]:
                return  # the app's own answer to the exception (FastAPI makes it a 400) is replaced below
            if message["type"] == "http.response.start":
                state["started"] = True
                if state.get("gone"):  # counted as the client's leaving (499), not as a bad request
                    message = {**message, "status": 499}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not (state["exceeded"] or state["stalled"]):
                raise
        if state["started"]:
            return
        if state["exceeded"]:
            if state.get("more"):
                await self._drain(receive, state["received"])
            await self._reject(scope, send)
        elif state["stalled"]:
            await self._stalled(scope, send)


# /docs and /redoc: their scripts and styles are local (fastapi-offline), but both pages have inline
# scripts and redoc starts a blob: worker; nothing may come from elsewhere (redoc's footer logo would)
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PAGES = frozenset({"/docs", "/redoc"})


class SecurityHeadersMiddleware:
    """Pure ASGI: nosniff and no-referrer on every response; a content policy on the docs pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if scope.get("path") in _DOCS_PAGES:
                    headers.append((b"content-security-policy", _DOCS_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)


# ---------------------------------------------------------------------------------------- helpers

_IMAGE_SCHEMA = {"schema": {"type": "string", "format": "binary"}}


def _image_responses(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {t: _IMAGE_SCHEMA for t in MEDIA_TYPES.values()}}}


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "malformed body",
        401: "missing or wrong API key",
        404: "unknown model, style or class",
        413: "body or image too large",
        415: "not a PNG, JPEG or WebP image",
        422: "invalid parameters or a corrupt image",
        503: "queue full or models still loading (Retry-After)",
        504: "deadline exceeded",
    }
    return {c: {"model": ErrorBody, "description": what.get(c, "error")} for c in codes}


synthetic_image = test_pattern  # warm-up and thumbnails


def arrived(request: Request) -> float | None:
    """When the request's body was in (monotonic): its deadline counts from there, not from the upload's
    start (the first header byte, set by the metrics middleware, when the body time is unknown)."""
    return request.scope.get("stylenorm.body_complete") or request.scope.get("stylenorm.arrived")


def stylize_options(served: ServedModel) -> StylizeOptions:
    """What /v1/stylize (or /v1/optimise) takes for this model, as its family says (the web page builds
    its controls from it)."""
    caps = family_of(served.loaded.card).capabilities(served.loaded.card)
    assert caps is not None, "only stylize and optimise models have options"
    return StylizeOptions(
        named_styles=caps.named_styles,
        uploaded_styles=caps.uploaded_styles,
        max_styles=caps.max_styles,
        min_styles=caps.min_styles,
        weights=caps.weights,
        alpha=caps.alpha,
        preserve_color=caps.preserve_color,
        masks=caps.masks,
    )


def _check_stylize(
    served: ServedModel,
    uploads: int,
    names: list[str],
    weights: list[float] | None,
    alpha: float,
    preserve_color: bool,
    masks: int,
) -> list[float] | None:
    """Refuse what the model does not take (422) and unknown style names (404), before any decoding."""
    card = served.loaded.card
    arch, opts = card.architecture, stylize_options(served)
    gallery = bool((caps := family_of(card).capabilities(card)) and caps.gallery)
    total = uploads + len(names)
    bad = "invalid_parameters"
    if uploads and not opts.uploaded_styles:
        what = "take style names (styles=…)" if opts.named_styles else "have their style built in"
        raise ApiError(422, bad, f"{arch} models {what}; they take no uploaded style images")
    if names and not opts.named_styles:
        raise ApiError(
            422,
            bad,
            f"model {card.name!r} has no named styles; upload a style image instead"
            if opts.uploaded_styles
            else f"{arch} models have their style built in; send no style",
        )
    for n in names:
        if n not in card.styles:
            shown = n if len(n) <= 80 else n[:80] + "…"
            raise ApiError(
                404,
                "unknown_style",
                f"model {card.name!r} has no style {shown!r}; its styles: {', '.join(card.styles)}",
            )
        # a gallery family's named styles are images; the name was checked against the card above
        if gallery and not (served.loaded.folder / "styles" / f"{n}.png").is_file():
            raise ApiError(404, "unknown_style", f"style {n!r} of model {card.name!r} has no gallery image")
    if total < opts.min_styles:
        raise ApiError(
            422,
            bad,
            f"{arch} model {card.name!r} needs at least {opts.min_styles} style "
            f"(upload style files or name styles: {', '.join(card.styles) or 'none'})",
        )
    if opts.max_styles is not None and total > opts.max_styles:
        raise ApiError(422, bad, f"{arch} models take at most {opts.max_styles} style(s); got {total}")
    if weights and not opts.weights:
        raise ApiError(422, bad, f"{arch} models take no style weights")
    checked = check_weights(weights, total)
    if alpha != 1.0 and not opts.alpha:
        raise ApiError(422, bad, f"{arch} models take no alpha (it must be 1)")
    if preserve_color and not opts.preserve_color:
        raise ApiError(422, bad, f"{arch} models take no preserve_color")
    if masks:
        if not opts.masks:
            raise ApiError(422, bad, f"{arch} models take no masks")
        if masks != total:
            raise ApiError(422, bad, f"need one mask per style: {total} styles, {masks} masks")
        if checked is not None:
            raise ApiError(
                422, bad, "give weights or masks, not both: masks already decide each style's share"
            )
    return checked


# ---------------------------------------------------------------------------------------- the app


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for these settings (default: from the environment and .env)."""
    settings = settings or Settings()
    logging.getLogger("stylenorm.server").setLevel(settings.log_level.upper())
    metrics = Metrics()
    device = settings.resolved_device()
    registry = Registry(settings.models_dir, device)
    engine = Engine(
        device=device,
        max_batch_size=settings.max_batch_size,
        max_batch_delay_ms=settings.max_batch_delay_ms,
        queue_size=settings.queue_size,
        request_timeout_s=settings.request_timeout_s,
        max_untiled_pixels=settings.max_untiled_pixels,
        max_batch_pixels=settings.max_batch_pixels,
        style_max_side=settings.style_max_side,
        max_pixels=settings.max_pixels,
        style_cache_size=settings.style_cache_size,
        metrics=metrics,
    )
    jobs = JobRunner(
        max_queued=settings.optimise_queue_size,
        keep_s=settings.job_keep_s,
        max_kept=settings.job_max_kept,
        time_limit_s=settings.optimise_time_limit_s,
    )
    thumbnails: OrderedDict[tuple[str, str], bytes] = OrderedDict()
    pixels_in_flight = PixelBudget(settings.max_pixels_in_flight)

    def warm(served: ServedModel) -> None:
        model = served.loaded
        if served.kind == "stylize":
            engine.precompute_named(model)
        if not settings.warmup:
            return
        with torch.inference_mode():
            if served.kind == "stylize":
                engine.run_now(engine.new_job(model, "stylize", _warm_work(model)))
                # a second pass, big enough to measure: the engine's cost model starts from it
                work = _warm_work(model)
                work.content = synthetic_image(WARMUP_SIDE)
                engine.run_now(engine.new_job(model, "stylize", work))
            elif served.kind == "synthesize":
                from stylenorm.synthesize import native_size, synthesize

                h, w = native_size(model)
                synthesize(model, torch.zeros(1, h, w, dtype=torch.long), None, 0)
            elif served.kind == "generate":
                from stylenorm.synthesize import generate, model_classes

                generate(model, model_classes(model)[0], 1, 0)

    def _warm_work(model: Any) -> StylizeWork:
        """A small request the model's family chooses (its first named style, or a test picture)."""
        refs = [
            StyleRef(name=st) if isinstance(st, str) else StyleRef(key="warm-up", image=st)
            for st in family_of(model.card).warmup_styles(model)
        ]
        return StylizeWork(content=synthetic_image(32), styles=refs)

    def load_models() -> None:
        registry.load_all(warm)
        metrics.models_loaded.set(len(registry.models))
        metrics.models_unavailable.set(len(registry.unavailable))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if settings.tune_allocator:
            from stylenorm.runtime import tune_cpu_allocator

            tune_cpu_allocator()
        engine.start()
        jobs.start()
        # load in the background: /healthz answers at once, /readyz turns 200 when loading is done
        threading.Thread(target=load_models, name="stylenorm-loader", daemon=True).start()
        log.info(
            "serving %s on %s (batch ≤ %d, delay %g ms, queue %d)",
            settings.models_dir,
            device,
            settings.max_batch_size,
            settings.max_batch_delay_ms,
            settings.queue_size,
        )
        # the lifespan state reaches uvicorn's protocol (TimedH11Protocol) of this server only
        yield {DRAIN_HOOK: lambda: engine.begin_drain(settings.shutdown_grace_s)}
        await run_in_threadpool(jobs.stop)
        await run_in_threadpool(engine.stop)
        metrics.close()

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
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    TimedH11Protocol.header_timeout_s = settings.header_timeout_s  # uvicorn builds it per connection
    app.state.registry = registry
    app.state.engine = engine
    app.state.jobs = jobs
    app.state.metrics = metrics
    errors.install(app)

    # ------------------------------------------------------------------ auth

    keys = [k.get_secret_value().encode() for k in settings.api_keys]
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
    bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")

    async def require_key(
        key: Annotated[str | None, Security(api_key_header)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        offered = key or (credentials.credentials if credentials else "")
        ok = False
        for k in keys:  # every key is compared, so the time does not tell which one came close
            ok |= secrets.compare_digest(offered.encode(), k)
        if not ok:
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send it as X-API-Key: <key> or Authorization: Bearer <key>",
                {"WWW-Authenticate": 'Bearer realm="stylenorm", APIKey'},
            )

    protected = [Depends(require_key)] if keys else []
    metrics_guard = [] if settings.metrics_public else protected
    common_errors = (401, 404, 422) if keys else (404, 422)
    v1 = APIRouter(prefix="/v1", dependencies=protected, responses=_error_responses(*common_errors))

    # ------------------------------------------------------------------ models

    def summary(served: ServedModel) -> dict[str, Any]:
        card = served.loaded.card
        return {
            "name": card.name,
            "architecture": card.architecture,
            "kind": served.kind,
            "description": card.description,
            "styles": list(card.styles),
        }

    def from_gallery(served: ServedModel) -> bool:
        """Its named styles are images in its folder (else they live in the weights: multistyle)."""
        caps = family_of(served.loaded.card).capabilities(served.loaded.card)
        return bool(caps and caps.gallery)

    def has_thumbnail(served: ServedModel, style: str) -> bool:
        return not from_gallery(served) or (served.loaded.folder / "styles" / f"{style}.png").is_file()

    @v1.get("/models", response_model=ModelList, summary="List the loaded and the unavailable models")
    async def list_models() -> ModelList:
        return ModelList(
            ready=registry.ready,
            available=[
                ModelSummary(**summary(m)) for m in sorted(registry.models.values(), key=lambda m: m.name)
            ],
            unavailable=[UnavailableModel(name=n, reason=r) for n, r in sorted(registry.unavailable.items())],
        )

    @v1.get(
        "/models/{name}", response_model=ModelDetail, summary="One model: card, styles, contract, options"
    )
    async def model_detail(name: str) -> ModelDetail:
        served = registry.get(name)
        card = served.loaded.card
        classes = palette = size = None
        if served.kind in ("synthesize", "generate"):
            from stylenorm.synthesize import model_classes, model_palette, native_size

            classes, size = model_classes(served.loaded), list(native_size(served.loaded))
            palette = model_palette(served.loaded) if served.kind == "synthesize" else None
        return ModelDetail(
            **summary(served),
            contract=dict(card.contract),
            provenance=dict(card.provenance),
            license=card.license,
            arguments=dict(card.arguments),
            thumbnails={
                s: f"/v1/models/{card.name}/styles/{s}/thumbnail"
                for s in card.styles
                if has_thumbnail(served, s)
            },
            options=stylize_options(served) if served.kind in ("stylize", "optimise") else None,
            classes=classes,
            palette=palette,
            size=size,
        )

    @v1.get(
        "/models/{name}/styles/{style}/thumbnail",
        response_class=Response,
        responses={200: {"description": "a small PNG of the style", "content": {"image/png": _IMAGE_SCHEMA}}},
        summary="A thumbnail of a named style (the gallery image, or the style applied to a test picture)",
    )
    async def thumbnail(name: str, style: str, request: Request) -> Response:
        served = registry.get(name)
        card = served.loaded.card
        if style not in card.styles:
            shown = style if len(style) <= 80 else style[:80] + "…"
            raise ApiError(
                404,
                "unknown_style",
                f"model {card.name!r} has no style {shown!r}; its styles: {', '.join(card.styles)}",
            )
        if not has_thumbnail(served, style):
            raise ApiError(404, "not_found", f"style {style!r} of {card.name!r} has no image")
        key = (card.name, style)
        data = thumbnails.get(key)
        if data is None:
            if not from_gallery(served):  # no gallery file: show the style on a test picture
                work = StylizeWork(
                    content=synthetic_image(settings.thumbnail_size), styles=[StyleRef(name=style)]
                )
                image = await engine.run(engine.new_job(served.loaded, "stylize", work))
            else:
                # the path comes from the card's own style list (checked above), never from the request
                path = served.loaded.folder / "styles" / f"{card.styles[card.styles.index(style)]}.png"
                image = await run_in_threadpool(
                    lambda: resize_to(load_image(path, settings.max_pixels), settings.thumbnail_size)
                )
            data = await run_in_threadpool(encode_image, image, "png")
            thumbnails[key] = data
            while len(thumbnails) > 512:
                thumbnails.popitem(last=False)
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"Cache-Control": "public, max-age=3600", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/png", headers=headers)

    # ------------------------------------------------------------------ stylize

    def stylize_model(name: str | None) -> ServedModel:
        if name:
            return registry.get(name, "stylize")
        if (
            settings.default_model in registry.models
            and registry.models[settings.default_model].kind == "stylize"
        ):
            return registry.models[settings.default_model]
        candidates = registry.of_kind("stylize")
        if len(candidates) == 1:
            return candidates[0]
        if registry.loading:
            raise ApiError(503, "not_ready", "models are still loading; retry shortly", {"Retry-After": "2"})
        raise ApiError(
            422,
            "invalid_parameters",
            "name a model (model=…): " + (", ".join(m.name for m in candidates) or "none is loaded"),
        )

    @v1.post(
        "/stylize",
        response_class=Response,
        responses={**_image_responses("the stylized image"), **_error_responses(413, 415, 503, 504)},
        summary="Stylize a content image",
        description=(
            "Multipart form. `content`: the image. Styles: upload `style` files and/or name `styles` (the "
            "model's named styles, see GET /v1/models/{name}). `weights`: one per style, in this order: "
            "**uploaded files first, then named styles**. What each model takes is in its `options` "
            "(GET /v1/models/{name}): fast models take no style; multistyle models take names (mixed by "
            "weights); adain models take uploads and names, weights or one `mask` per style, alpha and "
            "preserve_color; color models take exactly one style and alpha. The content is bounded to "
            "`max_side` (default: the server's limit, never upscaled). Answers the image in `format`."
        ),
    )
    async def stylize_endpoint(
        request: Request,
        content: Annotated[UploadFile, File(description="the content image (PNG, JPEG or WebP)")],
        style: Annotated[
            list[UploadFile] | None, File(description="style images to upload (adain, color)")
        ] = None,
        styles: Annotated[list[str] | None, Form(description="named styles of the model")] = None,
        weights: Annotated[
            list[float] | None,
            Form(description="one weight per style: uploaded files first, then named styles"),
        ] = None,
        alpha: Annotated[
            float, Form(ge=0.0, le=1.0, allow_inf_nan=False, description="content (0) to full style (1)")
        ] = 1.0,
        preserve_color: Annotated[bool, Form(description="keep the content's colours")] = False,
        mask: Annotated[
            list[UploadFile] | None,
            File(
                description="adain: one grayscale mask per style, the content's size; "
                "white = the style's region"
            ),
        ] = None,
        format: Annotated[ImageFormat, Form(description="output format")] = "png",
        quality: Annotated[int, Form(ge=1, le=100, description="JPEG/WebP quality")] = 90,
        max_side: Annotated[
            int | None,
            Form(
                ge=MIN_SIDE,
                le=settings.max_side,
                description=f"bound the longer side (≤ {settings.max_side})",
            ),
        ] = None,
        model: Annotated[
            str | None, Form(description=f"model name (default {settings.default_model})")
        ] = None,
    ) -> Response:
        served = stylize_model(model)
        uploads, names, mask_files = style or [], styles or [], mask or []
        if len(uploads) + len(names) > MAX_STYLES or len(mask_files) > MAX_STYLES:
            raise ApiError(422, "invalid_parameters", f"at most {MAX_STYLES} styles (and masks) per request")
        checked = _check_stylize(served, len(uploads), names, weights, alpha, preserve_color, len(mask_files))
        content_bytes = await content.read()
        style_bytes = [await f.read() for f in uploads]
        mask_bytes = [await f.read() for f in mask_files]
        # refused before any decoding when the queue cannot fit it (the cost of the content as it will
        # be served: its declared size bounded to max_side)
        w, h = declared_size(content_bytes)
        bound = min(max_side or settings.max_side, settings.max_side)
        scale = min(1.0, bound / max(w, h, 1))
        needed = w * h + sum(declared_pixels(b) for b in (*style_bytes, *mask_bytes))
        units = w * h * scale * scale / 1e6
        with (
            engine.admission(served.loaded, "stylize", units, arrived(request)),
            pixels_in_flight.reserve(needed),  # held until the answer is encoded
        ):
            return await _stylize(
                request, served, content_bytes, style_bytes, names, mask_bytes, checked, alpha,
                preserve_color, max_side, format, quality,
            )

    async def _stylize(
        request: Request, served: ServedModel, content_bytes: bytes, style_bytes: list[bytes],
        names: list[str], mask_bytes: list[bytes], checked: list[float] | None, alpha: float,
        preserve_color: bool, max_side: int | None, format: str, quality: int,
    ) -> Response:
        name = served.name
        takes_statistics = family_of(served.loaded.card).takes_statistics

        def prepare() -> StylizeWork:
            image = decode_upload(content_bytes, "content", settings.max_pixels)
            original = (int(image.shape[2]), int(image.shape[3]))
            masks = [
                decode_mask(b, f"mask {i + 1}", original, settings.max_pixels)
                for i, b in enumerate(mask_bytes)
            ] or None
            image = resize_to(image, min(max_side or settings.max_side, settings.max_side))
            h, w = image.shape[2:]
            if min(h, w) < MIN_SIDE:
                raise ApiError(
                    422,
                    "invalid_parameters",
                    f"the content is {w}×{h} after resizing; each side needs at least {MIN_SIDE} pixels",
                )
            if masks is not None:
                masks = [resize_mask(m, (h, w)) for m in masks]
            refs = []
            for i, data in enumerate(style_bytes):
                key = hashlib.sha256(data).hexdigest()
                cached = (name, ("upload", key)) in engine.upload_cache
                image_s = None
                if not cached or (preserve_color and takes_statistics):  # recoloured per content
                    image_s = resize_to(
                        decode_upload(data, f"style {i + 1}", settings.max_pixels), settings.style_max_side
                    )
                    if min(image_s.shape[2:]) < MIN_SIDE:
                        raise ApiError(
                            422,
                            "invalid_parameters",
                            f"style {i + 1} is {image_s.shape[3]}×{image_s.shape[2]}; each side needs "
                            f"at least {MIN_SIDE} pixels",
                        )
                refs.append(StyleRef(key=key, image=image_s, data=data))
            refs += [StyleRef(name=n) for n in names]
            return StylizeWork(image, refs, checked, float(alpha), bool(preserve_color), masks)

        with engine.preparing():  # a forming batch may wait for this request while it is decoded
            work = await run_in_threadpool(prepare)
            job = engine.new_job(served.loaded, "stylize", work, arrived(request))
            engine.submit(job)
        out = await engine.result(job, request.is_disconnected)
        data = await run_in_threadpool(encode_image, out, format, quality)
        return Response(
            data,
            media_type=MEDIA_TYPES[format],
            headers={
                "Cache-Control": "no-store",
                "X-Model": name,
                "X-Batch-Size": str(job.batch_size),
                "Content-Disposition": f'inline; filename="stylized.{"jpg" if format == "jpeg" else format}"',
            },
        )

    # ------------------------------------------------------------------ synthesize / generate

    def model_of_kind(name: str | None, kind: str, arch: str) -> ServedModel:
        if registry.loading and (not name or name not in registry.models):
            raise ApiError(503, "not_ready", "models are still loading; retry shortly", {"Retry-After": "2"})
        available = registry.of_kind(kind)
        if not available:
            raise ApiError(404, "no_model", f"no {arch} model is loaded; this server cannot {kind}")
        if name:
            return registry.get(name, kind)
        if len(available) > 1:
            raise ApiError(
                422,
                "invalid_parameters",
                f"several {arch} models are loaded; name one: {', '.join(m.name for m in available)}",
            )
        return available[0]

    @v1.post(
        "/synthesize",
        response_class=Response,
        responses={**_image_responses("the synthesized image"), **_error_responses(413, 415, 503, 504)},
        summary="Synthesize an image from a semantic label map (spade models)",
        description=(
            "Multipart form. `labels`: a PNG label map, either an index image (pixel value = class index, "
            "or the dataset's own convention when the model's contract has a `label_file`: an ADE20K label "
            "PNG as it comes) or colour-coded in the model's palette (GET /v1/models/{name}: classes, "
            "palette, size). Optional "
            "`style` image, `seed` (the one used is in the X-Seed header)."
        ),
    )
    async def synthesize_endpoint(
        request: Request,
        labels: Annotated[UploadFile, File(description="the label map (PNG)")],
        style: Annotated[UploadFile | None, File(description="optional style image")] = None,
        seed: Annotated[int | None, Form(ge=0, le=2**31 - 1, description="random seed")] = None,
        model: Annotated[str | None, Form(description="a spade model (default: the only one)")] = None,
        format: Annotated[ImageFormat, Form()] = "png",
        quality: Annotated[int, Form(ge=1, le=100)] = 90,
    ) -> Response:
        served = model_of_kind(model, "synthesize", "spade")
        fn = library_function("synthesize")
        from stylenorm.synthesize import labels_from_image

        label_bytes = await labels.read()
        style_bytes = await style.read() if style is not None else None
        used_seed = seed if seed is not None else secrets.randbelow(2**31)

        def prepare() -> tuple[torch.Tensor, torch.Tensor | None]:
            if not label_bytes:
                raise ApiError(422, "corrupt_image", "labels: the upload is empty (0 bytes)")
            try:
                open_image(label_bytes, settings.max_pixels, WEB_FORMATS).close()
            except ImageError as exc:
                raise with_field(exc, "labels") from exc
            label_map = labels_from_image(served.loaded, label_bytes, settings.max_pixels)
            style_img = None
            if style_bytes is not None:
                style_img = resize_to(
                    decode_upload(style_bytes, "style", settings.max_pixels), settings.style_max_side
                )
            return label_map, style_img

        label_map, style_img = await run_in_threadpool(prepare)
        assert fn is not None
        job = engine.new_job(
            served.loaded,
            "synthesize",
            lambda: fn(served.loaded, label_map, style_img, used_seed),
            arrived(request),
        )
        out = await engine.run(job)
        data = await run_in_threadpool(encode_image, out, format, quality)
        return Response(
            data,
            media_type=MEDIA_TYPES[format],
            headers={
                "Cache-Control": "no-store",
                "X-Model": served.name,
                "X-Seed": str(used_seed),
            },
        )

    generate_schema = GenerateRequest.model_json_schema()

    @v1.post(
        "/generate",
        response_model=GenerateResponse,
        responses=_error_responses(400, 415, 503, 504),
        summary="Generate images of a class (cgan models)",
        description=(
            f"Body: JSON or a form with `model`, `class_name`, `count` (1..{MAX_GENERATE}), `seed`, "
            "`format`. "
            "Answers JSON: the images as base64 strings of image files (in `media_type`), in order, and the "
            "seed used (send it back to get the same images)."
        ),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": generate_schema},
                    "application/x-www-form-urlencoded": {"schema": generate_schema},
                },
            }
        },
    )
    async def generate_endpoint(request: Request) -> GenerateResponse:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json"):
            try:
                raw: Any = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from exc
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            raw = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        else:
            raise ApiError(415, "unsupported_media_type", "send the parameters as JSON or as a form")
        if not isinstance(raw, dict):
            raise ApiError(422, "invalid_parameters", "the body must be a JSON object")
        try:
            body = GenerateRequest.model_validate(raw)
        except ValidationError as exc:
            parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]]
            raise ApiError(422, "invalid_parameters", "; ".join(parts)) from None
        served = model_of_kind(body.model, "generate", "cgan")
        from stylenorm.synthesize import model_classes

        classes = model_classes(served.loaded)
        if body.class_name not in classes:
            shown = body.class_name if len(body.class_name) <= 80 else body.class_name[:80] + "…"
            raise ApiError(
                404,
                "unknown_class",
                f"model {served.name!r} has no class {shown!r}; its classes: {', '.join(classes)}",
            )
        fn = library_function("generate")
        assert fn is not None
        used_seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
        job = engine.new_job(
            served.loaded,
            "generate",
            lambda: fn(served.loaded, body.class_name, body.count, used_seed),
            arrived(request),
        )
        out = await engine.run(job)

        def encode_all() -> list[str]:
            return [
                base64.b64encode(encode_image(out[i : i + 1], body.format)).decode()
                for i in range(out.shape[0])
            ]

        return GenerateResponse(
            model=served.name,
            class_name=body.class_name,
            seed=used_seed,
            media_type=MEDIA_TYPES[body.format],
            images=await run_in_threadpool(encode_all),
        )

    add_optimise_routes(v1, settings, registry, jobs)
    app.include_router(v1)

    # ------------------------------------------------------------------ operations

    def health() -> Health:
        return Health(
            status="ok" if registry.ready else "loading",
            models_loaded=len(registry.models),
            models_unavailable=len(registry.unavailable),
            queue_depth=engine.queue_depth,
            version=__version__,
        )

    @app.get("/healthz", response_model=Health, summary="Liveness: 200 while the process is up", tags=["ops"])
    async def healthz() -> Health:
        return health()

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["ops"],
        responses={503: {"model": ErrorBody, "description": "models are still loading"}},
        summary="Readiness: 200 once every loadable model is loaded and warmed, 503 before",
    )
    async def readyz() -> Any:
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
        return health()

    @app.get(
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
            **(_error_responses(401) if metrics_guard else {}),
        },
        summary="Prometheus metrics (prefix stylenorm_)",
    )
    async def prometheus() -> Response:
        metrics.queue_depth.set(engine.queue_depth)
        metrics.models_loaded.set(len(registry.models))
        metrics.models_unavailable.set(len(registry.unavailable))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html",
            headers={"Content-Security-Policy": _PAGE_CSP, "Cache-Control": "no-cache"},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

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
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer and log line carries the id
    return app
