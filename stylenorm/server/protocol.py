"""uvicorn's HTTP/1.1 protocol with a header deadline: a connection must send its request line and
headers within ``header_timeout_s`` of its first byte (or of opening), or it is closed.

uvicorn (0.55) closes idle keep-alive connections but has no read timeout before a request starts: a
client that connects and sends nothing, or half a header line, held its connection (and a file
descriptor) for as long as it liked — 300 such connections stayed open 90 s in the overload probe.
The body is the application's: :class:`~stylenorm.server.middleware.BodyLimitMiddleware` times out a body
that stops arriving. ``stylenorm serve`` and the test server run uvicorn with ``http=PROTOCOL``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "stylenorm.server.protocol:TimedH11Protocol"
DRAIN_HOOK = "stylenorm.begin_drain"  # lifespan-state key of the app's "the server is shutting down" hook
log = logging.getLogger("stylenorm.server")


class TimedH11Protocol(H11Protocol):
    """H11Protocol closing connections whose request headers do not arrive within ``header_timeout_s``,
    and telling the application when the server starts shutting down: uvicorn asks every open
    connection to shut down as its graceful period begins, and the app's lifespan state holds the
    hook (``DRAIN_HOOK``) that makes its engine drain (idempotent)."""

    header_timeout_s = 10.0  # set from the settings by create_app (one value per process)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._waiting_for_headers() or self.timeout_keep_alive_task is not None:
            return  # a request is being served, or an idle keep-alive wait (uvicorn's own timer) is on
        if not self.transport.is_closing():
            log.info("closed a connection that sent no complete headers in %g s", self.header_timeout_s)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._waiting_for_headers():
            self._arm()  # the first bytes of a request: its headers have header_timeout_s from now
        super().data_received(data)
        if not self._waiting_for_headers() and self._header_timer is not None:
            self._header_timer.cancel()  # the headers are complete: the request is the app's now
            self._header_timer = None

    def shutdown(self) -> None:
        hook: Callable[[], None] | None = self.app_state.get(DRAIN_HOOK)
        if hook is not None:
            hook()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


__all__ = ["PROTOCOL", "TimedH11Protocol"]
