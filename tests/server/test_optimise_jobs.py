"""POST /v1/optimise and /v1/jobs: style transfer by optimisation as a bounded queue of polled jobs.

The runner's rules (one at a time, queue bound, cancel, time limit, expiry, shutdown) are tested with
work functions the test controls; the HTTP tests use a small random-VGG optimise model.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

from stylenorm.imageio import load_image
from stylenorm.inference.stylize import stylize
from stylenorm.models import load
from stylenorm.nets.optimise import OptimiseOptions
from stylenorm.repository import ModelCard, save_model
from stylenorm.server.errors import ApiError
from stylenorm.server.jobs import Job, JobRunner
from tests.server.conftest import image_bytes, live_server, make_models

# ------------------------------------------------------------------------------------------ the runner


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _steps(n: int, gate: threading.Event | None = None, delay: float = 0.0):
    """Work of n progress steps; waits for gate (if any) before each."""

    def work(job: Job) -> bytes:
        for i in range(1, n + 1):
            if gate is not None:
                gate.wait(5)
            time.sleep(delay)
            job.progress(i, n, 1.0 / i)
        return b"image-%d" % n

    return work


@pytest.fixture()
def runner():
    r = JobRunner(max_queued=2, keep_s=60, max_kept=8, time_limit_s=30)
    r.start()
    yield r
    r.stop()


def test_jobs_run_one_at_a_time_in_order_with_progress(runner: JobRunner) -> None:
    gate = threading.Event()
    first = runner.submit("m", 3, "image/png", "a.png", _steps(3, gate))
    second = runner.submit("m", 2, "image/png", "b.png", _steps(2))
    _wait(lambda: first.state == "running")
    assert second.state == "queued" and runner.position(second.id) == 0 and runner.running == 1
    gate.set()
    _wait(lambda: second.state == "done")
    assert first.state == "done" and first.result == b"image-3" and first.step == 3
    assert first.finished is not None and second.started is not None and second.started >= first.finished
    assert runner.get(first.id) is first


def test_a_full_queue_is_503_with_retry_after(runner: JobRunner) -> None:
    gate = threading.Event()
    running = runner.submit("m", 1, "image/png", "x.png", _steps(1, gate))
    _wait(lambda: running.state == "running")
    runner.submit("m", 1, "image/png", "x.png", _steps(1))
    runner.submit("m", 1, "image/png", "x.png", _steps(1))
    with pytest.raises(ApiError) as err:
        runner.submit("m", 1, "image/png", "x.png", _steps(1))
    assert err.value.status == 503 and err.value.code == "queue_full" and "Retry-After" in err.value.headers
    gate.set()


def test_cancel_stops_a_running_job_at_its_next_step_and_drops_a_queued_one(runner: JobRunner) -> None:
    gate = threading.Event()
    running = runner.submit("m", 100, "image/png", "x.png", _steps(100, delay=0.01))
    queued = runner.submit("m", 1, "image/png", "x.png", _steps(1, gate))
    _wait(lambda: running.step >= 2)
    runner.cancel(queued.id)
    assert queued.state == "cancelled"
    runner.cancel(running.id)
    _wait(lambda: running.state == "cancelled")
    assert running.step < 100 and running.result is None and running.error[:2] == (409, "cancelled")


def test_a_job_past_its_time_limit_fails_with_504() -> None:
    r = JobRunner(max_queued=2, keep_s=60, max_kept=8, time_limit_s=0.2)
    r.start()
    try:
        job = r.submit("m", 1000, "image/png", "x.png", _steps(1000, delay=0.01))
        _wait(lambda: job.state == "failed")
        assert job.error is not None and job.error[:2] == (504, "deadline_exceeded")
        assert 0.2 <= job.elapsed_s() < 5
    finally:
        r.stop()


def test_a_failing_job_reports_its_error_and_the_runner_carries_on(runner: JobRunner) -> None:
    def boom(job: Job) -> bytes:
        raise RuntimeError("a bug")

    bad = runner.submit("m", 1, "image/png", "x.png", boom)
    good = runner.submit("m", 1, "image/png", "x.png", _steps(1))
    _wait(lambda: good.state == "done")
    assert bad.state == "failed" and bad.error is not None and bad.error[:2] == (500, "internal_error")


def test_finished_jobs_expire_by_age_and_by_count() -> None:
    r = JobRunner(max_queued=10, keep_s=0.3, max_kept=2, time_limit_s=30)
    r.start()
    try:
        jobs = [r.submit("m", 1, "image/png", "x.png", _steps(1)) for _ in range(4)]
        _wait(lambda: all(j.state == "done" for j in jobs))
        kept = []
        for j in jobs:
            with contextlib.suppress(ApiError):
                kept.append(r.get(j.id))
        assert kept == jobs[2:]  # the two newest
        time.sleep(0.4)
        with pytest.raises(ApiError) as err:
            r.get(jobs[3].id)
        assert err.value.status == 404 and err.value.code == "unknown_job"
    finally:
        r.stop()


def test_stop_cancels_the_running_and_the_queued_jobs() -> None:
    r = JobRunner(max_queued=5, keep_s=60, max_kept=8, time_limit_s=30)
    r.start()
    running = r.submit("m", 1000, "image/png", "x.png", _steps(1000, delay=0.01))
    queued = r.submit("m", 1, "image/png", "x.png", _steps(1))
    _wait(lambda: running.state == "running")
    started = time.monotonic()
    r.stop()
    assert time.monotonic() - started < 5
    assert running.state == "cancelled" and queued.state == "cancelled"
    with pytest.raises(ApiError) as err:
        r.submit("m", 1, "image/png", "x.png", _steps(1))
    assert err.value.code == "shutting_down"


# ------------------------------------------------------------------------------------------ HTTP


@pytest.fixture(scope="module")
def optimise_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_models(tmp_path_factory.mktemp("optimise") / "models", broken=False)
    encoder = {"fmt": "random", "depth": 16, "last": "relu3_1", "seed": 3}
    save_model(
        root / "gatys", ModelCard(name="gatys", architecture="optimise", arguments={"encoder": encoder}), {}
    )
    return root


def _poll(
    client: httpx.Client, status: dict, until: tuple[str, ...] = ("done", "failed", "cancelled")
) -> dict:
    deadline = time.monotonic() + 60
    while status["state"] not in until:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
        r = client.get(status["status_url"])
        assert r.status_code == 200, r.text
        status = r.json()
    return status


def test_an_optimise_job_through_http_equals_the_library(optimise_models: Path) -> None:
    content, style = image_bytes(64, 48, seed=1), image_bytes(40, 40, seed=2)
    with live_server(optimise_models) as server:
        client = server.client
        detail = client.get("/v1/models/gatys").json()
        assert detail["kind"] == "optimise" and detail["options"]["uploaded_styles"]
        assert not detail["options"]["alpha"] and detail["options"]["masks"]
        r = client.post(
            "/v1/optimise",
            files=[("content", ("c.png", content, "image/png")), ("style", ("s.png", style, "image/png"))],
            data={"iterations": "4"},
        )
        assert r.status_code == 202, r.text
        status = r.json()
        assert r.headers["location"] == status["status_url"] and status["steps"] == 4
        early = client.get(status["result_url"])
        if status["state"] != "done" and early.status_code == 409:
            assert early.json()["error"]["code"] == "not_done" and early.headers["retry-after"]
        done = _poll(client, status)
        assert done["state"] == "done" and done["step"] == 4 and done["error"] is None
        image = client.get(status["result_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    want = stylize(
        load(optimise_models / "gatys"),
        load_image(content),
        [load_image(style)],
        optimise=OptimiseOptions(iterations=4),
    )
    got = load_image(image.content)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 2 / 255 + 1e-6  # PNG rounding, thread-count differences


def test_stylize_is_served_while_a_job_runs_and_delete_cancels_it(optimise_models: Path) -> None:
    content, style = image_bytes(256, 256, seed=3), image_bytes(64, 64, seed=4)
    with live_server(optimise_models, optimise_max_iterations=2000, max_side=256) as server:
        client = server.client
        r = client.post(
            "/v1/optimise",
            files=[("content", ("c.png", content, "image/png")), ("style", ("s.png", style, "image/png"))],
            data={"iterations": "2000"},
        )
        status = _poll(client, r.json(), until=("running",))
        _poll(client, status, until=("running",))
        stylized = client.post(
            "/v1/stylize",
            files={"content": ("c.png", image_bytes(64, 64), "image/png")},
            data={"model": "fast"},
        )
        assert stylized.status_code == 200  # the batcher is not held up by the job
        assert client.get(status["status_url"]).json()["state"] == "running"
        cancelled = client.delete(status["status_url"])
        assert cancelled.status_code == 202
        final = _poll(client, cancelled.json())
        assert final["state"] == "cancelled" and final["step"] < 2000
        result = client.get(status["result_url"])
        assert result.status_code == 409 and result.json()["error"]["code"] == "cancelled"


def test_optimise_mistakes_are_4xx_at_once(optimise_models: Path) -> None:
    content, style = image_bytes(64, 48), image_bytes(40, 40, seed=2)
    with live_server(optimise_models) as server:
        client = server.client
        png = "image/png"
        cases = [
            ({"files": [("content", ("c.png", content, png))]}, 422),  # no style
            (
                {"files": [("content", ("c.png", b"not an image", png)), ("style", ("s.png", style, png))]},
                415,
            ),
            (
                {
                    "files": [("content", ("c.png", content, png)), ("style", ("s.png", style, png))],
                    "data": {"iterations": "100000"},
                },
                422,
            ),
            (
                {
                    "files": [
                        ("content", ("c.png", content, png)),
                        ("style", ("s.png", style, png)),
                        ("mask", ("m.png", content, png)),
                        ("mask", ("n.png", content, png)),
                    ]
                },
                422,
            ),
            (
                {
                    "files": [("content", ("c.png", content, png)), ("style", ("s.png", style, png))],
                    "data": {"model": "fast"},
                },
                422,
            ),  # not an optimise model
        ]
        for kwargs, want in cases:
            r = client.post("/v1/optimise", **kwargs)
            assert r.status_code == want, (kwargs.get("data"), r.text)
        assert server.app.state.server.jobs.queued == 0 and server.app.state.server.jobs.running == 0
        missing = client.get("/v1/jobs/no-such-job")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_job"


def test_without_an_optimise_model_the_endpoint_is_404(server) -> None:
    r = server.client.post(
        "/v1/optimise",
        files=[
            ("content", ("c.png", image_bytes(), "image/png")),
            ("style", ("s.png", image_bytes(), "image/png")),
        ],
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_model"


def test_the_result_image_is_bounded_by_optimise_max_side(optimise_models: Path) -> None:
    content, style = image_bytes(200, 100, seed=5), image_bytes(40, 40, seed=2)
    with live_server(optimise_models, optimise_max_side=64) as server:
        client = server.client
        r = client.post(
            "/v1/optimise",
            files=[("content", ("c.png", content, "image/png")), ("style", ("s.png", style, "image/png"))],
            data={"iterations": "1", "format": "jpeg"},
        )
        done = _poll(client, r.json())
        image = client.get(done["result_url"])
        assert image.headers["content-type"] == "image/jpeg"
        assert tuple(load_image(image.content).shape[2:]) == (32, 64)
        too_big = client.post(
            "/v1/optimise",
            files=[("content", ("c.png", content, "image/png")), ("style", ("s.png", style, "image/png"))],
            data={"max_side": "128"},
        )
        assert too_big.status_code == 422
    assert torch.is_tensor(load_image(image.content))
