"""``X-Request-ID``: each request gets an id, accepted from the caller or generated, for logs and errors.

A proxy or client that already tags requests (nginx's ``$request_id``, a tracing client) sends the
header and the server uses it; otherwise the server makes one (32 hex digits). The id is answered in
the ``X-Request-ID`` response header, put in every error body (``error.request_id``) and on every log
line written while the request is handled (:data:`stylenorm.logs.request_id`). An offered id that is
not 1-128 characters of ``A-Z a-z 0-9 . _ : -`` is replaced, so the header cannot inject into logs.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stylenorm.logs import request_id

HEADER = "X-Request-ID"
SCOPE_KEY = "stylenorm.request_id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def accepted_or_new(offered: str | None) -> str:
    """The caller's id when it is well formed, else a new random one."""
    if offered and _VALID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI, outermost: sets the request's id (scope, context variable) and answers it as a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), None
        )
        rid = accepted_or_new(offered)
        scope[SCOPE_KEY] = rid
        # each request runs in its own task (its own copy of the context): no reset needed, and the
        # catch-all error handler (outside this middleware) still sees the id
        request_id.set(rid)

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_header)
