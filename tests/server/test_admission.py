"""Admission by cost: under overload the engine refuses early what cannot finish in time, never starts
work that is already late or whose client has gone, and its queue holds only live work.

The work is a stand-in of known cost (a job that sleeps): what is tested is the engine's arithmetic
and timing, not a model's speed. Real models feed the same cost model with their measured batches.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
import torch

from stylenorm.models import LoadedModel, load
from stylenorm.server.engine import CostModel, Engine
from stylenorm.server.errors import ApiError

SLEEP = 0.2  # seconds of work per job


@pytest.fixture(scope="module")
def model(models_dir: Path) -> LoadedModel:
    return load("fast", models_dir)


class Counter:
    """Slow work that counts how often it really ran."""

    def __init__(self) -> None:
        self.ran = 0
        self.lock = threading.Lock()

    def __call__(self) -> torch.Tensor:
        with self.lock:
            self.ran += 1
        time.sleep(SLEEP)
        return torch.zeros(1, 3, 4, 4)


def _engine(timeout: float = 1.0, queue: int = 64) -> Engine:
    engine = Engine(max_batch_size=1, queue_size=queue, request_timeout_s=timeout)
    engine.start()
    return engine


async def _ask(engine: Engine, model: LoadedModel, work: Counter) -> tuple[str, float]:
    started = time.monotonic()
    try:
        await engine.run(engine.new_job(model, "synthesize", work))
        return "ok", time.monotonic() - started
    except ApiError as exc:
        return f"{exc.status} {exc.code}", time.monotonic() - started


def test_the_cost_model_learns_seconds_per_unit_and_ignores_tiny_samples() -> None:
    costs = CostModel(smoothing=0.5, min_units=0.05)
    key = ("m", "stylize")
    costs.observe(key, 0.001, 5.0)  # a 32-px warm-up: overhead, not a rate
    assert costs.rate(key) is None
    costs.observe(key, 1.0, 2.0)
    assert costs.mean(key) == pytest.approx(2.0) and costs.rate(key) == pytest.approx(2.0 + 2 * 1.0)
    costs.observe(key, 1.0, 4.0)
    assert costs.mean(key) == pytest.approx(3.0)
    # a sample weighs by its size: 3 units at smoothing 0.5 count as 1 - 0.5³ = 0.875
    costs.observe(key, 3.0, 3 * 11.0)
    assert costs.mean(key) == pytest.approx(0.125 * 3.0 + 0.875 * 11.0)
    # the deviation follows: a steady rate shrinks it towards 0, so the plan approaches the mean
    for _ in range(20):
        costs.observe(key, 1.0, 5.0)
    assert costs.rate(key) == pytest.approx(5.0, rel=1e-3)


def test_overload_gives_goodput_and_early_503s_never_wasted_work(model: LoadedModel) -> None:
    """32 simultaneous requests of 0.2 s each against a 1 s deadline on one worker: the engine admits
    what fits with its 10 % margin (4), answers the rest 503 at once, and everything it starts finishes
    in time."""
    engine = _engine(timeout=1.0)
    work = Counter()
    try:
        asyncio.run(_ask(engine, model, work))  # learns the cost: one job, 0.2 s
        work.ran = 0

        async def burst() -> list[tuple[str, float]]:
            return await asyncio.gather(*(_ask(engine, model, work) for _ in range(32)))

        results = asyncio.run(burst())
    finally:
        engine.stop()
    served = [t for r, t in results if r == "ok"]
    refused = [t for r, t in results if r == "503 overloaded"]
    assert len(served) >= 2, results  # goodput under overload
    assert len(served) + len(refused) == 32, results  # no 504s: nothing admitted missed its deadline
    assert all(t < 1.0 for t in served) and max(refused) < 0.5, results  # 503s come at once
    assert work.ran == len(served)  # no image computed and thrown away


def test_a_job_that_can_no_longer_finish_is_answered_504_without_running(model: LoadedModel) -> None:
    """Admitted while it could still finish, it waits behind work of unknown length; when its turn comes
    there is no longer time for it: it is answered 504 then, and never computed."""
    engine = _engine(timeout=5.0)
    work = Counter()

    def blocker() -> torch.Tensor:  # a kind whose cost the engine has not learned
        time.sleep(0.95)
        return torch.zeros(1, 3, 4, 4)

    engine.costs.set_rate((model.card.name, "synthesize"), SLEEP)  # the victim's cost is known
    try:

        async def scenario() -> str:
            running = asyncio.ensure_future(engine.run(engine.new_job(model, "generate", blocker)))
            await asyncio.sleep(0.05)
            victim = engine.new_job(model, "synthesize", work)
            victim.deadline = time.monotonic() + 1.0  # fits now (margin 0.5 s); not after the blocker
            engine.submit(victim)
            try:
                await engine.result(victim)
                outcome = "ok"
            except ApiError as exc:
                outcome = f"{exc.status} {exc.code}"
            await running
            return outcome

        outcome = asyncio.run(scenario())
    finally:
        engine.stop()
    assert outcome == "504 deadline_exceeded" and work.ran == 0 and engine.refused_late == 1


def test_a_caller_that_gives_up_leaves_the_queue_at_once(model: LoadedModel) -> None:
    engine = _engine(timeout=5.0)
    work = Counter()
    gate, started = threading.Event(), threading.Event()

    def blocker() -> torch.Tensor:  # says when the worker has it
        started.set()
        gate.wait(10)
        return torch.zeros(1, 3, 4, 4)

    try:

        async def scenario() -> tuple[int, int, str]:
            running = asyncio.ensure_future(engine.run(engine.new_job(model, "synthesize", blocker)))
            while not started.is_set():  # the worker holds the blocker: it has left the queue
                await asyncio.sleep(0.01)
            gone = asyncio.Event()

            async def disconnected() -> bool:
                return gone.is_set()

            waiting = engine.new_job(model, "synthesize", work)
            engine.submit(waiting)
            asked = asyncio.ensure_future(engine.result(waiting, disconnected))
            await asyncio.sleep(0.1)
            depth_before = engine.queue_depth
            gone.set()  # the client hangs up
            try:
                await asked
                outcome = "ok"
            except ApiError as exc:
                outcome = f"{exc.status} {exc.code}"
            depth_after = engine.queue_depth
            gate.set()
            await running
            return depth_before, depth_after, outcome

        before, after, outcome = asyncio.run(scenario())
    finally:
        gate.set()
        engine.stop()
    assert (before, after) == (1, 0) and outcome == "499 client_closed_request"
    assert work.ran == 0  # its work never started


def test_the_pixel_budget_bounds_decoded_images_in_flight(models_dir: Path) -> None:
    from stylenorm.server.uploads import PixelBudget, declared_pixels
    from tests.server.conftest import image_bytes, live_server

    assert declared_pixels(image_bytes(40, 30)) == 1200 and declared_pixels(b"junk") == 0
    budget = PixelBudget(5000)
    with budget.reserve(3000):
        with pytest.raises(ApiError) as busy, budget.reserve(3000):
            pass
        assert busy.value.status == 503 and busy.value.code == "busy" and budget.in_use == 3000
    assert budget.in_use == 0
    with pytest.raises(ApiError) as big, budget.reserve(6000):
        pass
    assert big.value.status == 413
    with live_server(models_dir, max_pixels_in_flight=2000) as server:
        post = server.client.post
        small = post("/v1/stylize", files={"content": ("a.png", image_bytes(40, 40), "image/png")},
                     data={"model": "fast"})
        assert small.status_code == 200
        large = post("/v1/stylize", files={"content": ("a.png", image_bytes(50, 50), "image/png")},
                     data={"model": "fast"})
        assert large.status_code == 413 and large.json()["error"]["code"] == "image_too_large"


def test_a_request_that_cannot_fit_is_refused_before_it_is_decoded(models_dir: Path, monkeypatch) -> None:
    """With a learned cost that makes any 64×64 image too slow, /v1/stylize answers 503 overloaded and
    never decodes the upload (the refusal costs the server nothing)."""
    from stylenorm.server.routes import stylize as app_module
    from tests.server.conftest import image_bytes, live_server

    decoded = []
    real = app_module.decode_upload

    def counting(*args, **kwargs):
        decoded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "decode_upload", counting)
    with live_server(models_dir, request_timeout_s=2.0) as server:
        server.engine.costs.set_rate(("fast", "stylize"), 1000.0)  # 1000 s per megapixel
        decoded.clear()
        r = server.client.post("/v1/stylize", files={"content": ("a.png", image_bytes(64, 64), "image/png")},
                               data={"model": "fast"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"]
        assert decoded == []


def test_requests_being_decoded_hold_their_planned_time(model: LoadedModel) -> None:
    """Admission counts the requests it admitted that are still decoding: of two that arrive together
    only one fits, and the second is refused at once, not after its decode. The hold passes to the
    queued job on submit, and is given back when a request ends before submitting (a decode error)."""
    engine = Engine(max_batch_size=1, request_timeout_s=10.0)  # not started: the queue just holds jobs
    engine.costs.set_rate((model.card.name, "synthesize"), 6.0)  # 6 s per job; margin 1 s
    with engine.admission(model, "synthesize", 1.0):
        assert engine._backlog_s() == pytest.approx(6.0)
        with pytest.raises(ApiError) as refused, engine.admission(model, "synthesize", 1.0):
            pass
        assert refused.value.status == 503 and refused.value.code == "overloaded"
        job = engine.new_job(model, "synthesize", Counter())
        engine.submit(job)  # the queued job replaces the hold: counted once
        assert engine._backlog_s() == pytest.approx(6.0)
    assert engine._backlog_s() == pytest.approx(6.0)
    engine.withdraw(job)
    with pytest.raises(ValueError), engine.admission(model, "synthesize", 1.0):
        raise ValueError("the upload did not decode")
    assert engine._backlog_s() == 0.0


def test_a_batch_stops_at_max_batch_pixels(model: LoadedModel) -> None:
    """A forward pass's memory grows with its pixels: five waiting 640×480 contents (0.31 MP each) under
    a 1 MP bound run as batches of 3 and 2, whatever max_batch_size allows; one content above the bound
    still runs (alone)."""
    from stylenorm.server.engine import StylizeWork

    engine = Engine(max_batch_size=8, max_batch_pixels=1_000_000)  # not started: batches are taken by hand
    for _ in range(5):
        engine.submit(engine.new_job(model, "stylize", StylizeWork(torch.rand(1, 3, 480, 640))))
    sizes = [len(engine._next_batch() or []) for _ in range(2)]
    assert sizes == [3, 2] and engine.queue_depth == 0
    engine.submit(engine.new_job(model, "stylize", StylizeWork(torch.rand(1, 3, 1200, 1000))))
    assert len(engine._next_batch() or []) == 1


def test_the_stated_memory_bound_adds_the_forward_pass_and_the_pixel_budget() -> None:
    from stylenorm.server.settings import FORWARD_BYTES_PER_PIXEL, UPLOAD_BYTES_PER_PIXEL, Settings

    settings = Settings(max_batch_pixels=2_000_000, max_untiled_pixels=3_000_000, max_pixels_in_flight=10**7)
    assert settings.memory_bound(10**9) == (
        10**9 + 3_000_000 * FORWARD_BYTES_PER_PIXEL + 10**7 * UPLOAD_BYTES_PER_PIXEL
    )
