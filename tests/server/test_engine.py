"""The batching engine: batched results equal the library's unbatched stylize, per request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch

from stylenorm.inference.stylize import stylize
from stylenorm.models import LoadedModel, load
from stylenorm.server.engine import Engine, StyleRef, StylizeWork
from stylenorm.server.errors import ApiError

TOL = 1e-4


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


@pytest.fixture(scope="module")
def loaded(models_dir: Path) -> dict[str, LoadedModel]:
    return {name: load(name, models_dir) for name in ("fast", "multi", "adain", "color")}


def _library_styles(work: StylizeWork) -> list:
    return [ref.name if ref.name is not None else ref.image for ref in work.styles]


def _cases(loaded: dict[str, LoadedModel]) -> list[tuple[LoadedModel, StylizeWork]]:
    up1, up2 = _image(24, 20, 101), _image(20, 28, 102)
    a1, a2 = StyleRef(key="u1", image=up1), StyleRef(key="u2", image=up2)
    n = StyleRef  # named
    cases = []
    for i in range(3):
        cases.append((loaded["fast"], StylizeWork(_image(32, 32, i))))
    for i, (names, weights) in enumerate(
        [
            (["a"], None),
            (["b", "c"], [1.0, 2.0]),
            (["c"], None),
            (["a", "b", "c"], None),
            (["b", "b"], [1.0, 1.0]),
        ]
    ):
        cases.append(
            (loaded["multi"], StylizeWork(_image(32, 32, 10 + i), [n(name=s) for s in names], weights))
        )
    adain = [
        ([n(name="warm")], None, 1.0),
        ([n(name="warm")], None, 0.3),
        ([a1], None, 1.0),
        ([n(name="warm"), n(name="cool")], [1.0, 3.0], 0.8),
        ([a1, n(name="grass")], [2.0, 1.0], 1.0),
        ([a2, a1], None, 0.5),
    ]
    for i, (refs, weights, alpha) in enumerate(adain):
        cases.append((loaded["adain"], StylizeWork(_image(32, 32, 20 + i), refs, weights, alpha)))
    cases.append(
        (loaded["adain"], StylizeWork(_image(32, 48, 30), [n(name="cool")], None, 0.9))
    )  # other size
    color = [([n(name="cool")], 1.0), ([a2], 0.5), ([n(name="grass")], 0.0), ([a1], 1.0)]
    for i, (refs, alpha) in enumerate(color):
        cases.append((loaded["color"], StylizeWork(_image(32, 32, 40 + i), refs, None, alpha)))
    # alone: colour preservation and masks go through the library function itself
    cases.append((loaded["adain"], StylizeWork(_image(32, 32, 50), [a1], None, 1.0, preserve_color=True)))
    cases.append(
        (loaded["multi"], StylizeWork(_image(32, 32, 51), [n(name="b")], None, 1.0, preserve_color=True))
    )
    left = torch.zeros(32, 32)
    left[:, :16] = 1
    cases.append(
        (
            loaded["adain"],
            StylizeWork(_image(32, 32, 52), [n(name="warm"), a2], None, 1.0, masks=[left, 1 - left]),
        )
    )
    return cases


def test_batched_results_equal_unbatched_stylize(loaded: dict[str, LoadedModel]) -> None:
    engine = Engine(max_batch_size=8, max_batch_delay_ms=50)
    for model in loaded.values():
        engine.precompute_named(model)
    cases = _cases(loaded)
    jobs = [engine.new_job(model, "stylize", work) for model, work in cases]
    for job in jobs:  # queued before the worker starts, so batches form deterministically
        engine.submit(job)
    engine.start()
    try:
        outputs = [job.future.result(timeout=120) for job in jobs]
    finally:
        engine.stop()
    sizes = {}
    for (model, work), job, out in zip(cases, jobs, outputs, strict=True):
        expected = stylize(
            model,
            work.content,
            _library_styles(work),
            work.weights,
            work.alpha,
            work.preserve_color,
            work.masks,
        )
        assert out.shape == expected.shape
        diff = (out - expected).abs().max().item()
        assert diff <= TOL, (model.card.name, work.weights, work.alpha, diff)
        sizes.setdefault(model.card.name, []).append(job.batch_size)
    # every family really ran batched, and the alone jobs alone
    for name in ("fast", "multi", "adain", "color"):
        assert max(sizes[name]) > 1, (name, sizes[name])
    assert jobs[-1].batch_size == 1 and jobs[-2].batch_size == 1 and jobs[-3].batch_size == 1
    assert engine.batches_run < len(jobs)


def test_styles_change_the_result_so_the_comparison_means_something(loaded: dict[str, LoadedModel]) -> None:
    content = _image(32, 32, 0)
    for name, (s1, s2) in {
        "multi": ("a", "b"),
        "adain": ("warm", "cool"),
        "color": ("warm", "grass"),
    }.items():
        one, two = (stylize(loaded[name], content, [s]) for s in (s1, s2))
        assert (one - two).abs().max() > 100 * TOL, name


def test_style_statistics_are_cached(loaded: dict[str, LoadedModel]) -> None:
    engine = Engine()
    assert engine.precompute_named(loaded["adain"]) == 3
    hits = engine.named_cache.hits
    engine.style_stats(loaded["adain"], StyleRef(name="warm"))
    assert engine.named_cache.hits == hits + 1
    style = _image(24, 24, 7)
    first = engine.style_stats(loaded["adain"], StyleRef(key="k", image=style))
    # the second time the upload is known by its hash: no image needed at all
    second = engine.style_stats(loaded["adain"], StyleRef(key="k", image=None, data=b"unused"))
    assert torch.equal(first[0], second[0]) and engine.upload_cache.hits == 1


def test_full_queue_and_deadline(loaded: dict[str, LoadedModel]) -> None:
    engine = Engine(queue_size=1, request_timeout_s=0.05)  # not started: nothing leaves the queue
    work = StylizeWork(_image(32, 32, 0))
    engine.submit(engine.new_job(loaded["fast"], "stylize", work))
    with pytest.raises(ApiError) as full:
        engine.submit(engine.new_job(loaded["fast"], "stylize", work))
    assert full.value.status == 503 and full.value.code == "queue_full"
    assert int(full.value.headers["Retry-After"]) >= 1

    late = Engine(request_timeout_s=0.05)

    async def wait() -> None:
        await late.run(late.new_job(loaded["fast"], "stylize", work))

    start = time.monotonic()
    with pytest.raises(ApiError) as timeout:
        asyncio.run(wait())
    assert timeout.value.status == 504 and time.monotonic() - start < 5
    late.start()  # the worker drops the expired job instead of running it
    time.sleep(0.1)
    late.stop()
    assert late.batches_run == 0 and late.queue_depth == 0


def test_a_job_the_worker_drops_as_late_is_a_504_even_before_the_callers_timer(
    loaded: dict[str, LoadedModel],
) -> None:
    """Under load the worker can cancel an expired job before the event loop's timer fires: the caller
    must still answer 504 (it raised CancelledError, a 500, in a stress run)."""
    import threading

    engine = Engine(request_timeout_s=30)  # not started: the job stays queued
    job = engine.new_job(loaded["fast"], "stylize", StylizeWork(_image(32, 32, 0)))
    engine.submit(job)
    threading.Timer(0.1, job.future.cancel).start()  # what the worker does with a job past its deadline

    async def wait() -> None:
        await engine.result(job)

    with pytest.raises(ApiError) as late:
        asyncio.run(wait())
    assert late.value.status == 504 and late.value.code == "deadline_exceeded"

    async def cancelled_caller() -> None:  # the caller's own cancellation still propagates
        other = engine.new_job(loaded["fast"], "stylize", StylizeWork(_image(32, 32, 1)))
        task = asyncio.ensure_future(engine.result(other))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled_caller())
