"""``stylenorm serve`` as a user runs it: a subprocess on a free loopback port, settings by flags and env."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stylenorm.cli import build_parser
from tests.server.conftest import image_bytes

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(models_dir: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "stylenorm.cli",
        "serve",
        "--port",
        str(port),
        "--models-dir",
        str(models_dir),
        "--log-level",
        "info",
        *flags,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"stylenorm serve exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("stylenorm serve did not get ready")


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM, then the log: uvicorn shuts down gracefully and re-raises the signal (status 0 or -15)."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, out)
    assert "Application shutdown complete" in out, out
    return out


def test_serve_flags_parse() -> None:
    args = build_parser().parse_args(
        ["serve", "--port", "9000", "--workers", "2", "--cors-origin", "http://a.example"]
    )
    assert args.port == 9000 and args.workers == 2 and args.host == "127.0.0.1"
    from stylenorm.server.cli import settings_from_args

    settings = settings_from_args(args)
    assert settings.cors_origins == ["http://a.example"]


def test_the_drain_comes_from_the_setting_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenorm.server.cli import settings_from_args

    monkeypatch.setenv("STYLENORM_SHUTDOWN_GRACE_S", "12")
    assert settings_from_args(build_parser().parse_args(["serve"])).shutdown_grace_s == 12.0
    flagged = build_parser().parse_args(["serve", "--timeout-graceful-shutdown", "7"])
    assert settings_from_args(flagged).shutdown_grace_s == 7.0


def test_bad_settings_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from stylenorm.cli import main

    assert main(["serve", "--max-batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "max_batch_size" in err and "Traceback" not in err


def test_stylenorm_serve_runs_and_stops_on_sigterm(models_dir: Path) -> None:
    proc, url = _serve(models_dir, "--max-batch-size", "4", env={"STYLENORM_API_KEYS": "cli-key"})
    try:
        _wait_ready(proc, url)
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401  # the env setting is in force
        r = httpx.post(
            f"{url}/v1/stylize",
            files={"content": ("c.png", image_bytes(32, 32))},
            data={"model": "color", "styles": "warm"},
            headers={"X-API-Key": "cli-key"},
            timeout=30,
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert "server" not in r.headers  # no server banner
    finally:
        log = _stop(proc)
    assert "loaded and warmed" in log and "model lost" in log  # our loggers reach the console


@pytest.mark.slow
def test_several_workers_share_metrics(models_dir: Path) -> None:
    proc, url = _serve(models_dir, "--workers", "2")
    try:
        _wait_ready(proc, url, timeout=120)
        ok = 0
        deadline = time.monotonic() + 120
        while ok < 6 and time.monotonic() < deadline:
            r = httpx.post(
                f"{url}/v1/stylize",
                files={"content": ("c.png", image_bytes(32, 32))},
                data={"model": "fast"},
                timeout=30,
            )
            if r.status_code == 503:  # each process loads its own models: the other may still be loading
                assert r.json()["error"]["code"] == "not_ready" and r.headers["retry-after"]
                time.sleep(0.2)
                continue
            assert r.status_code == 200
            ok += 1
        text = httpx.get(f"{url}/metrics", timeout=10).text
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith("stylenorm_requests_total{") and 'route="/v1/stylize"' in ln and '"200"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) == 6.0  # summed over both processes
    finally:
        log = _stop(proc)
    assert "loaded and warmed" in log and "model lost" in log  # our loggers reach the console


def test_workers_get_a_startup_friendly_healthcheck_and_our_keepalive(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """uvicorn's supervisor kills a worker that misses a 5 s ping; one still importing torch under CPU load
    misses it, and was restarted forever (seen in `make stress`): serve hands it the setting instead."""
    import uvicorn

    from stylenorm.cli import main

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    assert main(["serve", "--workers", "2", "--models-dir", str(models_dir)]) == 0
    assert seen["workers"] == 2 and seen["timeout_worker_healthcheck"] == 60
    assert seen["timeout_keep_alive"] == 15.0 and seen["app"] == "stylenorm.server.app:create_app"
    monkeypatch.setenv("STYLENORM_WORKER_HEALTHCHECK_TIMEOUT_S", "120")
    before = dict(os.environ)
    assert main(["serve", "--workers", "2", "--models-dir", str(models_dir)]) == 0
    assert seen["timeout_worker_healthcheck"] == 120
    assert dict(os.environ) == before  # the STYLENORM_* hand-over to the workers is undone
