"""Stalled clients are let go: silent and half-header connections are closed, a stalled body gets 408,
an over-limit body that stalls gets its 413 within the drain bound, and a slow upload's deadline starts
when the body is in (it is not the server's time)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.server.conftest import LiveServer, http_answer, image_bytes, live_server, settings_for

pytestmark = pytest.mark.usefixtures("models_dir")


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within seconds, and what it sent before."""
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, data
            data += chunk
    except TimeoutError:
        return False, data
    except ConnectionResetError:
        return True, data


@pytest.fixture(scope="module")
def strict(models_dir: Path):
    with live_server(models_dir, header_timeout_s=1.0, body_timeout_s=1.0) as server:
        yield server


def test_silent_and_half_header_connections_are_closed(strict) -> None:
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", strict.port)) as silent,
        socket.create_connection(("127.0.0.1", strict.port)) as half,
    ):
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: te")
        assert _closed_within(silent, 5)[0] and _closed_within(half, 5)[0]
    assert time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", strict.port)) as ok:  # a prompt client is served
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        closed, data = _closed_within(ok, 5)
        assert closed and data.startswith(b"HTTP/1.1 200")


def test_the_header_deadline_does_not_cut_keep_alive_waits(strict) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            assert http_answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(2.5)  # idle longer than the header deadline, shorter than the keep-alive


def _multipart_head(length: int) -> bytes:
    return (
        b"POST /v1/stylize HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=XyZ\r\n" + f"Content-Length: {length}\r\n\r\n".encode()
    )


def test_a_stalled_body_is_answered_408_in_our_json(strict) -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(_multipart_head(len(body) + 5000) + body)  # promises 5000 more bytes, sends none
        started = time.monotonic()
        closed, data = _closed_within(sock, 10)
    assert closed and time.monotonic() - started < 5
    assert data.startswith(b"HTTP/1.1 408") and b'"code":"request_timeout"' in data.replace(b" ", b"")


def test_an_over_limit_chunked_body_that_stalls_still_gets_its_413(models_dir: Path) -> None:
    with live_server(models_dir, max_upload_bytes=2048, body_timeout_s=1.0) as server:
        head = (
            b"POST /v1/stylize HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n"
        )
        chunk = b"x" * 4096
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")  # then silence
            started = time.monotonic()
            closed, data = _closed_within(sock, 15)
        assert closed and data.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 8


def test_a_slow_upload_does_not_spend_the_request_deadline(models_dir: Path) -> None:
    """The deadline (2 s here) counts from the body's last byte: a 4 s upload is still served."""
    png = image_bytes(32, 32)
    parts = (
        b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nfast\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--XyZ--\r\n"
    )
    with live_server(models_dir, request_timeout_s=2.0, body_timeout_s=3.0) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                _multipart_head(len(parts)).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n")
            )
            pieces = [parts[i : i + len(parts) // 4 + 1] for i in range(0, len(parts), len(parts) // 4 + 1)]
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(1.0)
            _closed, data = _closed_within(sock, 20)
        assert data.startswith(b"HTTP/1.1 200"), data[:300]


def test_a_client_leaving_mid_body_is_counted_as_gone_not_as_a_bad_request(strict) -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(_multipart_head(len(body) + 5000) + body)
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while True:
        text = strict.client.get("/metrics").text
        rows = [line for line in text.splitlines() if 'route="/v1/stylize"' in line]
        gone = [line for line in rows if 'status="499"' in line]
        if gone or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert gone and not any(
        'route="/v1/stylize"' in line and 'status="400"' in line for line in text.splitlines()
    ), text


def test_on_shutdown_a_waiting_request_gets_our_json_503_before_the_graceful_period_ends(
    models_dir: Path,
) -> None:
    """The worker is busy past the grace period; a request waiting behind it is answered 503
    shutting_down (JSON) 1 s before uvicorn would cancel it with a bare 500."""
    import threading

    import httpx

    from stylenorm.server.engine import Job

    server = LiveServer(settings_for(models_dir, shutdown_grace_s=3.0)).start()
    try:
        engine = server.engine
        release, running = threading.Event(), threading.Event()

        def busy() -> object:
            running.set()
            release.wait(20)
            import torch

            return torch.zeros(1, 3, 4, 4)

        some_model = server.app.state.server.registry.models["fast"].loaded
        blocker: Job = engine.new_job(some_model, "generate", busy)
        engine.submit(blocker)
        assert running.wait(10)  # the worker is busy with it (and it has left the queue)
        answer: dict[str, httpx.Response] = {}

        def ask() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                files = {"content": ("a.png", image_bytes(32, 32), "image/png")}
                answer["r"] = c.post("/v1/stylize", files=files, data={"model": "fast"})

        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 20
        while engine.queue_depth < 1:  # the request is queued behind the busy worker
            assert time.monotonic() < deadline and asker.is_alive(), answer
            time.sleep(0.05)
        started = time.monotonic()
        server.server.should_exit = True  # what SIGTERM does
        asker.join(15)
        took = time.monotonic() - started
        r = answer["r"]
        assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down", r.text
        assert 0.5 <= took <= 3.0, took  # grace 3 s, answered 1 s before its end
    finally:
        release.set()
        server.thread.join(15)
        server.sock.close()
