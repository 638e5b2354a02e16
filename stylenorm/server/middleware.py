"""The server's own ASGI middleware: the request body's limit and timeout (413, 408, a bounded drain),
and the security headers. Request ids and metrics have theirs in :mod:`.request_id` and :mod:`.metrics`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stylenorm.server.errors import error_body

log = logging.getLogger("stylenorm.server")


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
