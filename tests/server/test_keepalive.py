"""Idle keep-alive connections outlive the clients' own idle expiry (the cause of a flaky CI run).

httpx expires an idle pooled connection after 5 s and uvicorn used to close it after 5 s too: a request
sent on a connection idle for just under 5 s could meet the server's close ("Server disconnected
without sending a response"). The server now keeps idle connections for ``keepalive_timeout_s``
(default 15 s), comfortably above the clients' expiry, so the client always gives up first.
"""

from __future__ import annotations

import socket
import time

import httpx

from stylenorm.server.settings import Settings
from tests.server.conftest import LiveServer, http_answer

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


def test_the_default_keepalive_outlasts_common_client_expiry() -> None:
    default = Settings.model_fields["keepalive_timeout_s"].default
    client_expiry = httpx.Limits().keepalive_expiry  # what httpx (and our tests' clients) use
    assert client_expiry is not None and default >= client_expiry + 5


def test_an_idle_connection_is_still_served_after_the_clients_expiry(server: LiveServer) -> None:
    idle = httpx.Limits().keepalive_expiry + 1.0  # 6 s: past the point where uvicorn's 5 s default closed it
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(REQUEST)
        assert http_answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(idle)
        sock.sendall(REQUEST)
        assert http_answer(sock).startswith(b"HTTP/1.1 200")  # the same connection, still open
