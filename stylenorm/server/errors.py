"""One JSON error body everywhere: ``{"error": {"status", "code", "message", "request_id"}}``.

``request_id`` is the request's ``X-Request-ID`` (:mod:`stylenorm.server.request_id`): quote it when
reporting a problem; the server's log lines for that request carry the same id.

Library exceptions map to status codes here (see ``ERROR_TABLE``); FastAPI's own
404/405/422 and Starlette's 400 for a malformed body are rewritten to the same
body. A caller's mistake is never a 500: the catch-all handler is for real bugs
and logs the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.imageio import CorruptImage, ImageError, ImageTooLarge, UnsupportedImage
from stylenorm.inference.stylize import UnknownStyle
from stylenorm.logs import request_id

log = logging.getLogger("stylenorm.server")

# (status, code, when) — the contract, also printed in the README of the server.
ERROR_TABLE: tuple[tuple[int, str, str], ...] = (
    (400, "bad_request", "the body is not valid multipart/form or JSON"),
    (401, "unauthorized", "API keys are configured and none (or a wrong one) was sent"),
    (404, "not_found", "no such route"),
    (404, "unknown_model", "the model name is not loaded (also any name that looks like a path)"),
    (404, "unknown_style", "the style name is not one of the model's styles"),
    (404, "unknown_class", "the class name is not one of the model's classes"),
    (404, "no_model", "no model of the kind this endpoint needs (spade, cgan) is loaded"),
    (404, "unknown_job", "no such optimisation job, or it finished longer ago than job_keep_s"),
    (405, "method_not_allowed", "wrong HTTP method for the route"),
    (408, "request_timeout", "the request body stopped arriving for longer than body_timeout_s"),
    (409, "not_done", "the job has not finished yet; retry after Retry-After seconds"),
    (409, "cancelled", "the job was cancelled"),
    (413, "payload_too_large", "the request body is larger than max_upload_bytes"),
    (413, "image_too_large", "an image has more pixels than max_pixels, or is a decompression bomb"),
    (415, "unsupported_media_type", "an upload is not a PNG, JPEG or WebP image"),
    (422, "corrupt_image", "an image is truncated or damaged"),
    (422, "invalid_parameters", "a parameter is missing, out of range, or does not fit the model"),
    (499, "client_closed_request", "the client left while its request waited (its work was never started)"),
    (500, "internal_error", "a bug: the traceback is in the server log"),
    (503, "queue_full", "the inference queue is full; retry after Retry-After seconds"),
    (503, "overloaded", "the queued work would not let this request finish within its deadline"),
    (503, "busy", "decoded images would pass max_pixels_in_flight; retry after Retry-After seconds"),
    (503, "not_ready", "models are still loading; retry after Retry-After seconds"),
    (503, "shutting_down", "the server is stopping; its queued jobs are cancelled"),
    (
        504,
        "deadline_exceeded",
        "the request waited longer than request_timeout_s (a job: optimise_time_limit_s)",
    ),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with its HTTP status, machine-readable code and human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The JSON error body (with the current request's id, inside a request)."""
    detail: dict[str, Any] = {"status": status, "code": code, "message": message}
    rid = request_id.get()
    if rid:
        detail["request_id"] = rid
    return {"error": detail}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSONResponse with the error body."""
    return JSONResponse(error_body(status, code, message), status_code=status, headers=dict(headers or {}))


def from_library(exc: StylenormError) -> ApiError:
    """Map a stylenorm exception raised on a request's data to an ApiError."""
    message = str(exc)
    if isinstance(exc, ImageTooLarge):
        return ApiError(413, "image_too_large", message)
    if isinstance(exc, UnsupportedImage):
        return ApiError(415, "unsupported_media_type", message)
    if isinstance(exc, CorruptImage | ImageError):
        return ApiError(422, "corrupt_image", message)
    if isinstance(exc, UnknownStyle):
        return ApiError(404, "unknown_style", message)
    # stylenorm.inference.synthesize's UnknownClass, not imported here to stay light
    if type(exc).__name__ == "UnknownClass":
        return ApiError(404, "unknown_class", message)
    if isinstance(exc, ShapeError | SpecError):
        return ApiError(422, "invalid_parameters", message)
    return ApiError(422, "invalid_parameters", message)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one JSON body."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        request.scope.setdefault("stylenorm.failure", exc.code)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StylenormError)
    async def _library(request: Request, exc: StylenormError) -> JSONResponse:
        return await _api(request, from_library(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await _api(request, ApiError(422, "invalid_parameters", _validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; the API is described at /docs"
        return await _api(request, ApiError(exc.status_code, code, message, exc.headers))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # this handler answers outside the request-id middleware: it adds the header itself
        rid = request.scope.get("stylenorm.request_id")
        return error_response(
            500,
            "internal_error",
            "internal server error; the traceback is in the server log",
            {"X-Request-ID": rid} if rid else None,
        )
