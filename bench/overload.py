"""The overload run of issue 13: many large requests at once against the shipped models, defaults.

Starts ``stylenorm serve`` (default settings, the repository's ``models/``) on loopback, sends
``--requests`` stylize requests of a ``--size`` JPEG (1024×768 by default) to ``--model`` from
``--clients`` concurrent clients, and reports what a user and an operator see: how many were served
(200), refused early (503, with how fast the refusal came), timed out (504) or failed otherwise;
the served requests' latency; the images the server computed (``stylenorm_batch_size`` sum) against
those it delivered — the difference is work thrown away; and the server's peak resident memory.

    .venv/bin/python bench/overload.py [--requests 200] [--clients 32] [--model eight-styles] \\
        [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photo(width: int, height: int) -> bytes:
    """A smooth photo-like JPEG (gradients and shapes; noise would make the encoder's job unusual)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 37.0) * np.cos(y / 23.0)], axis=-1)
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


class PeakRSS(threading.Thread):
    """Polls a process's resident memory (VmRSS) until stopped; keeps the peak in bytes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(OSError, AttributeError):  # the process may just have ended
                self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.05)


def _metric_sum(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def _run(
    url: str, requests: int, clients: int, model: str, style: str, photo: bytes
) -> list[tuple[int, float, str]]:
    results: list[tuple[int, float, str]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    # the multipart body is encoded once: the clients share this machine's CPUs with the server, and
    # should spend as little of them as they can
    data = {"model": model, "format": "jpeg"}
    if style:
        data["styles"] = style
    template = httpx.Request(
        "POST", url + "/v1/stylize", files={"content": ("p.jpg", photo, "image/jpeg")}, data=data
    )
    body, content_type = template.read(), template.headers["content-type"]

    async def client(c: httpx.AsyncClient) -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.monotonic()
            try:
                r = await c.post("/v1/stylize", content=body, headers={"content-type": content_type})
                code = r.json()["error"]["code"] if r.status_code != 200 else ""
                results.append((r.status_code, time.monotonic() - started, code))
            except httpx.HTTPError as exc:
                results.append((0, time.monotonic() - started, type(exc).__name__))

    # one client, one connection per simulated user (creating an httpx client loads a CA bundle: 32 of
    # them kept this process busy for a second while the server's first answers waited to be read)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
        await asyncio.gather(*(client(c) for _ in range(clients)))
    return results


@dataclass
class Outcome:
    """What one overload run saw."""

    results: list[tuple[int, float, str]]  # (status, seconds, error code) per request; status 0: no answer
    wall_s: float
    computed: float  # images the server computed (its batch sizes summed)
    idle_rss: int  # the server's resident memory once ready, before the load (bytes)
    peak_rss: int  # its peak during the load

    def by_answer(self) -> dict[str, list[float]]:
        """Latencies grouped by "status code" ("200", "503 overloaded", ...)."""
        by: dict[str, list[float]] = {}
        for status, seconds, code in self.results:
            by.setdefault(f"{status} {code}".strip(), []).append(seconds)
        return by


def _rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]


def overload(
    requests: int = 200,
    clients: int = 32,
    model: str = "eight-styles",
    style: str = "leopard",
    size: tuple[int, int] = (1024, 768),
    models_dir: Path = ROOT / "models",
    env: dict[str, str] | None = None,
) -> Outcome:
    """Start ``stylenorm serve`` on loopback (settings from the environment, else the defaults), wait for
    /readyz, send the load, and stop the server."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stylenorm", "serve", "--port", str(port), "--models-dir", str(models_dir)],
        env={"STYLENORM_LOG_LEVEL": "warning", **os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.5)
        before = _metric_sum(httpx.get(url + "/metrics").text, "stylenorm_batch_size_sum")
        idle = _rss(server.pid)
        rss = PeakRSS(server.pid)
        rss.start()
        started = time.monotonic()
        results = asyncio.run(_run(url, requests, clients, model, style, _photo(*size)))
        wall = time.monotonic() - started
        rss.stopped.set()
        computed = _metric_sum(httpx.get(url + "/metrics").text, "stylenorm_batch_size_sum") - before
    finally:
        server.terminate()
        server.wait(60)
    return Outcome(results, wall, computed, idle, max(rss.peak, idle))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--model", default="eight-styles")
    p.add_argument("--style", default="leopard", help="a named style (multistyle), '' for none")
    p.add_argument("--size", default="1024x768")
    p.add_argument("--markdown", default=None, help="append the table to this file")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    try:
        run = overload(args.requests, args.clients, args.model, args.style, (width, height))
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    by = run.by_answer()
    served = by.get("200", [])
    rows = [
        f"| {key} | {len(t)} | {np.percentile(t, 50):.2f} | {np.percentile(t, 95):.2f} | {max(t):.2f} |"
        for key, t in sorted(by.items())
    ]
    report = "\n".join(
        [
            f"Overload run: {args.requests} × {args.size} JPEG to `{args.model}` "
            f"({args.style or 'no style'}), {args.clients} clients, default settings, {os.cpu_count()} CPUs; "
            f"{run.wall_s:.0f} s.",
            "",
            "| answer | count | p50 s | p95 s | max s |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Images computed {run.computed:.0f}, delivered {len(served)} "
            f"(thrown away: {run.computed - len(served):.0f}); "
            f"server RSS idle {run.idle_rss / 2**30:.2f} GiB, peak {run.peak_rss / 2**30:.2f} GiB.",
        ]
    )
    print(report)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")


if __name__ == "__main__":
    main()
