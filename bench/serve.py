"""Load benchmark of the HTTP server: throughput and latency with dynamic batching on and off.

Starts ``stylenorm serve`` on loopback (a subprocess, settings by STYLENORM_*
environment variables) over a temporary model repository holding the
repository's ``color-transfer`` model and a ``fast`` model with random weights,
then sends N stylize requests (64×64 contents) at each concurrency, closed
loop, to two servers running side by side: one batching (``--max-batch`` /
``--delay-ms``), one not (max batch 1), measured back to back per cell. Mean
batch size comes from the servers' /metrics.

    .venv/bin/python bench/serve.py [--requests 100] [--concurrency 1,4,16] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from stylenorm.models import build, weights_to_save
from stylenorm.repository import ModelCard, save_model

ROOT = Path(__file__).resolve().parents[1]
COLOR_STYLES = ("sunset", "ocean", "forest", "desert", "neon")


def make_repository(root: Path) -> Path:
    """A temporary repository: color-transfer (copied) and a fast model with random weights."""
    models = root / "models"
    models.mkdir(parents=True)
    shipped = Path(__file__).resolve().parents[1] / "models"
    shutil.copytree(shipped / "color-transfer", models / "color-transfer")
    torch.manual_seed(0)
    card = ModelCard(name="fast-bench", architecture="fast", description="random weights, for benchmarks")
    save_model(models / card.name, card, weights_to_save(card, build(card)))
    return models


def contents(n: int = 8, size: int = 64) -> list[bytes]:
    """n different PNG contents of size × size."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``stylenorm serve`` in a subprocess."""

    def __init__(
        self, models: Path, max_batch: int, delay_ms: float, queue: int, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "STYLENORM_MODELS_DIR": str(models),
            "STYLENORM_MAX_BATCH_SIZE": str(max_batch),
            "STYLENORM_MAX_BATCH_DELAY_MS": str(delay_ms),
            "STYLENORM_QUEUE_SIZE": str(queue),
            "STYLENORM_LOG_LEVEL": "warning",
            "STYLENORM_DEVICE": "cpu",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stylenorm.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"stylenorm serve exited with {self.proc.returncode}: {self.proc.stderr.read()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("stylenorm serve did not get ready in 120 s")
            time.sleep(0.2)

    def batch_stats(self, model: str) -> tuple[float, float]:
        """(sum, count) of the batch-size histogram of one model."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        values = {}
        for kind in ("sum", "count"):
            m = re.search(rf'^stylenorm_batch_size_{kind}\{{model="{re.escape(model)}"\}} (\S+)$', text, re.M)
            values[kind] = float(m.group(1)) if m else 0.0
        return values["sum"], values["count"]

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def load(
    url: str, model: str, n: int, concurrency: int, images: list[bytes], style: str | None = None
) -> tuple[list[float], int, float]:
    """n requests, `concurrency` at a time (closed loop) -> (latencies in s, errors, wall seconds)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            data = {"model": model}
            if style is not None:
                data["styles"] = style
            elif model == "color-transfer":
                data["styles"] = COLOR_STYLES[i % len(COLOR_STYLES)]
            t0 = time.perf_counter()
            try:
                r = await client.post(
                    "/v1/stylize", files={"content": ("c.png", images[i % len(images)])}, data=data
                )
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return latencies, errors, wall


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation."""
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run(args: argparse.Namespace) -> list[dict]:
    """Every (model, concurrency, mode) cell -> rows of the table.

    Both servers run side by side and the two modes of each cell are measured
    back to back, so a change in the machine's load hits both alike.
    """
    images = contents(8, args.size)
    rows = []
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    models = [m.strip() for m in args.models.split(",")]
    modes = (("batching", args.max_batch), ("no batching", 1))
    with tempfile.TemporaryDirectory(prefix="stylenorm-bench-") as tmp:
        repo = make_repository(Path(tmp))
        servers: dict[str, Server] = {}
        try:
            for mode, max_batch in modes:
                servers[mode] = Server(repo, max_batch, args.delay_ms, queue=max(64, 4 * max(concurrencies)))
            for model in models:
                for server in servers.values():  # warm the whole path once
                    asyncio.run(load(server.url, model, min(8, args.requests), 2, images))
                for c in concurrencies:
                    for mode, _ in modes:
                        server = servers[mode]
                        s0, n0 = server.batch_stats(model)
                        lat, errors, wall = asyncio.run(load(server.url, model, args.requests, c, images))
                        s1, n1 = server.batch_stats(model)
                        rows.append(
                            {
                                "mode": mode,
                                "model": model,
                                "concurrency": c,
                                "requests": args.requests,
                                "throughput": args.requests / wall,
                                "p50": 1000 * percentile(lat, 50),
                                "p95": 1000 * percentile(lat, 95),
                                "p99": 1000 * percentile(lat, 99),
                                "errors": errors,
                                "batch": (s1 - s0) / (n1 - n0) if n1 > n0 else float("nan"),
                            }
                        )
                        r = rows[-1]
                        note = f"  {mode:<11} {model:<14} c={c:<3} {r['throughput']:8.1f} req/s"
                        print(note, file=sys.stderr)
        finally:
            for server in servers.values():
                server.stop()
    return rows


def table(rows: list[dict], args: argparse.Namespace) -> str:
    """The Markdown report."""
    head = [
        f"# stylenorm serve load benchmark ({datetime.date.today().isoformat()})",
        "",
        f"`{' '.join(['bench/serve.py', *sys.argv[1:]])}` — {args.size}×{args.size} PNG contents, "
        f"batching = max batch {args.max_batch}, delay {args.delay_ms:g} ms; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs. Client and server share the machine.",
        "",
        "| mode | model | concurrency | requests | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| errors | mean batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines = [
        f"| {r['mode']} | {r['model']} | {r['concurrency']} | {r['requests']} | {r['throughput']:.1f} | "
        f"{r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} | {r['batch']:.2f} |"
        for r in rows
    ]
    return "\n".join(head + lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=100, help="requests per cell (default %(default)s)")
    p.add_argument("--concurrency", default="1,4,16", help="comma-separated (default %(default)s)")
    p.add_argument(
        "--models", default="color-transfer,fast-bench", help="comma-separated (default %(default)s)"
    )
    p.add_argument("--max-batch", type=int, default=8, help="max batch when batching (default %(default)s)")
    p.add_argument(
        "--delay-ms", type=float, default=5.0, help="batch delay when batching (default %(default)s)"
    )
    p.add_argument("--size", type=int, default=64, help="content side in pixels (default %(default)s)")
    p.add_argument("--markdown", default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    if args.requests < 1:
        p.error("--requests must be at least 1")
    report = table(run(args), args)
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
