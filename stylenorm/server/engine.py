"""The inference engine: one worker thread per device, a bounded queue, dynamic batching.

Requests become :class:`Job` objects. The worker takes the oldest job and
waits at most ``max_batch_delay_ms`` (counted from that job's arrival) for
more jobs with the same *batch key* — same model, same kind of work, same
content size — up to ``max_batch_size``, then runs them as one forward pass, the family's
``run_batch`` (:mod:`stylenorm.families`) with one :class:`~stylenorm.families.BatchRow` per sample:
its named styles and their mix, or — for families whose styles are statistics (adain, color) — the
mixed (mean, std) of its styles (the mix of the statistics, AdaIN being linear in them), and its alpha.

Jobs with masks, preserve_color or a content large enough to need tiles,
and synthesis/generation jobs, run alone through the library functions. The
results equal :func:`stylenorm.inference.stylize.stylize` for each request (the tests
hold them to 1e-4). Statistics of named styles are computed once per model;
uploaded styles are cached by the SHA-256 of their bytes.

The worker waits for more jobs only while other requests are still being
decoded (:meth:`Engine.preparing`): a lone request never pays the delay.

The event loop never blocks: :meth:`Engine.run` awaits a future the worker
resolves. A full queue is a 503 with Retry-After, a job past its deadline a 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from stylenorm.families import BatchRow, family_of
from stylenorm.families.base import mix_weights, on_device
from stylenorm.imageio import WEB_FORMATS, load_image
from stylenorm.inference.stylize import StyleCache, named_style, resize_to, stylize
from stylenorm.models import LoadedModel
from stylenorm.nets.adain import StyleStats
from stylenorm.runtime import InferencePath
from stylenorm.server.errors import ApiError
from stylenorm.server.metrics import Metrics

log = logging.getLogger("stylenorm.server.engine")



@dataclass
class StyleRef:
    """One style of a stylize request: a named style of the model, or an upload (hash + image)."""

    name: str | None = None
    key: str | None = None  # SHA-256 of the uploaded bytes
    image: Tensor | None = None  # the decoded upload; None when its statistics were already cached
    data: bytes | None = None  # the upload, decoded by the worker if the cache dropped it meanwhile


@dataclass
class StylizeWork:
    """What one stylize request asks for, decoded and checked."""

    content: Tensor  # (1, 3, H, W) in [0, 1]
    styles: list[StyleRef] = field(default_factory=list)
    weights: list[float] | None = None
    alpha: float = 1.0
    preserve_color: bool = False
    masks: list[Tensor] | None = None


@dataclass(eq=False)
class Job:
    """One request waiting for (or in) the worker."""

    model: LoadedModel
    kind: str  # stylize | synthesize | generate
    work: StylizeWork | Callable[[], Tensor]
    key: Hashable | None  # batch key; None: runs alone
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)
    batch_size: int = 1  # how many jobs shared its forward pass (for the response header)

    @property
    def units(self) -> float:
        """Its work in the cost model's units: megapixels of content (stylize), else one job."""
        if isinstance(self.work, StylizeWork):
            h, w = self.work.content.shape[2:]
            return int(h) * int(w) / 1e6
        return 1.0

    @property
    def cost_key(self) -> tuple[str, str]:
        """What its time per unit is learned under: (model, kind)."""
        return self.model.card.name, self.kind


class CostModel:
    """Seconds per unit of work (megapixel, or job) of each (model, kind), learned from real batches.

    Each forward pass big enough to measure (≥ ``min_units``: a warm-up of a few pixels is mostly fixed
    overhead) updates a moving average of the rate and of its deviation, like TCP's round-trip
    estimator: admission plans with ``mean + spread × deviation`` so that a slower-than-average batch
    still ends in time. A pass weighs by its size: ``1 - (1 - smoothing) ** (units / unit)``, so one
    batch of 8 megapixels nearly replaces a small warm-up's figure, while many small passes are needed
    to move it. The first sample's deviation is ``prior_deviation`` × its rate (one small warm-up says
    little about big batches). Unknown work has no estimate, and is admitted.
    """

    def __init__(
        self,
        smoothing: float = 0.3,
        min_units: float = 0.05,
        unit: float = 1.0,
        spread: float = 2.0,
        prior_deviation: float = 0.5,
    ) -> None:
        self.smoothing, self.min_units, self.unit = smoothing, min_units, unit
        self.spread, self.prior_deviation = spread, prior_deviation
        self._stats: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (mean rate, deviation)
        self._lock = threading.Lock()

    def observe(self, key: tuple[str, str], units: float, seconds: float) -> None:
        """A forward pass of units took seconds."""
        if units < self.min_units or seconds <= 0:
            return
        rate = seconds / units
        with self._lock:
            old = self._stats.get(key)
            if old is None:
                self._stats[key] = (rate, self.prior_deviation * rate)
                return
            mean, dev = old
            a = 1.0 - (1.0 - self.smoothing) ** (units / self.unit)
            self._stats[key] = ((1 - a) * mean + a * rate, (1 - a) * dev + a * abs(rate - mean))

    def set_rate(self, key: tuple[str, str], rate: float) -> None:
        """Fix a rate with no deviation (tests, operators who know their hardware)."""
        with self._lock:
            self._stats[key] = (rate, 0.0)

    def mean(self, key: tuple[str, str]) -> float | None:
        """The average seconds per unit of (model, kind), None while not measured."""
        stats = self._stats.get(key)
        return None if stats is None else stats[0]

    def rate(self, key: tuple[str, str]) -> float | None:
        """Seconds per unit to plan with: the mean plus ``spread`` deviations (None: not measured)."""
        stats = self._stats.get(key)
        return None if stats is None else stats[0] + self.spread * stats[1]

    def seconds(self, job: Job) -> float | None:
        """The planned time of job's forward pass (None: not known yet)."""
        rate = self.rate(job.cost_key)
        return None if rate is None else rate * job.units


@dataclass
class _Hold:
    """The planned seconds an admitted request holds in the backlog until its job is queued."""

    seconds: float


# the hold of the request being handled: contextvars follow it into run_in_threadpool's thread
_CURRENT_HOLD: contextvars.ContextVar[_Hold | None] = contextvars.ContextVar("hold", default=None)

DRAIN_MARGIN_S = 1.0  # waiting requests are answered this long before the graceful period ends
# The worker (and the OpenMP threads it starts, which inherit this) runs at a lower CPU priority than the
# event loop: inference is throughput work, while the loop's work — refusing what cannot fit, answering
# health checks, streaming results — is small and must not wait behind a saturated CPU.
WORKER_NICENESS = 5


def _lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by increment (Linux: niceness is per thread; elsewhere a
    no-op, since it would renice the whole process)."""
    if sys.platform != "linux" or increment <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError as exc:  # a sandbox may forbid it: serving works the same, only less responsive
        log.warning("could not lower the inference thread's priority: %s", exc)


async def _watch(disconnected: Callable[[], Any] | None, engine: Engine, every: float = 0.25) -> str:
    """Return "gone" once ``await disconnected()`` is true, "draining" once the engine's drain deadline
    has come (polled every ``every`` seconds)."""
    while True:
        if disconnected is not None and await disconnected():
            return "gone"
        if engine.drain_deadline is not None and time.monotonic() >= engine.drain_deadline:
            return "draining"
        await asyncio.sleep(every)


class Engine:
    """A bounded queue and the worker thread that runs jobs in batches on one device."""

    def __init__(
        self,
        device: str = "cpu",
        path: InferencePath | None = None,
        max_batch_size: int = 8,
        max_batch_delay_ms: float = 5.0,
        queue_size: int = 64,
        request_timeout_s: float = 30.0,
        max_untiled_pixels: int = 4_000_000,
        max_batch_pixels: int = 4_194_304,
        style_max_side: int = 512,
        max_pixels: int = 16_000_000,
        style_cache_size: int = 256,
        metrics: Metrics | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.path = path or InferencePath(None, False)  # float32, contiguous unless the settings say
        self.max_batch_size = max_batch_size
        self.max_batch_delay = max_batch_delay_ms / 1000.0
        self.queue_size = queue_size
        self.request_timeout_s = request_timeout_s
        self.max_untiled_pixels = max_untiled_pixels
        self.max_batch_pixels = max_batch_pixels
        self.style_max_side = style_max_side
        self.max_pixels = max_pixels
        self.metrics = metrics or Metrics()
        self.upload_cache = StyleCache(style_cache_size)
        # named styles are few and fixed: a roomy cache that uploads never evict
        self.named_cache = StyleCache(4096)
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._preparing = 0  # requests being decoded that will be submitted soon
        self.batches_run = 0
        self.drain_deadline: float | None = None  # set when the server starts shutting down
        # admit only what is expected to end this much before its deadline: estimates are averages
        self.admission_margin_s = 0.1 * request_timeout_s
        self.costs = CostModel()
        self._running_until = 0.0  # when the batch in the worker is expected to end (monotonic)
        self._held_s = 0.0  # planned seconds of admitted requests still being decoded (see admission)
        self.refused_late = 0  # jobs refused (503) or dropped (504) because they could not finish in time

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(
            target=self._loop, name=f"stylenorm-worker-{self.device}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop the worker (waits up to timeout seconds)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._cond:  # whatever is still queued after the timeout gets an answer too
            left = list(self._pending)
            self._pending.clear()
        for job in left:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ApiError(503, "shutting_down", "the server is shutting down"))

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for the worker."""
        return len(self._pending)

    # ------------------------------------------------------------------ submitting

    def batch_key(self, model: LoadedModel, work: StylizeWork) -> Hashable | None:
        """Jobs with equal keys may share a forward pass; None: this job runs alone."""
        h, w = work.content.shape[2:]
        family = family_of(model.card)
        alone = not family.batched or work.masks is not None or work.preserve_color
        alone = alone or (family.tiles and h * w > self.max_untiled_pixels)
        return None if alone else (model.card.name, "stylize", int(h), int(w))

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Mark a request as on its way (being decoded): a forming batch waits for it, up to the delay."""
        with self._cond:
            self._preparing += 1
        try:
            yield
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()

    def begin_drain(self, grace_s: float) -> None:
        """The server is shutting down with grace_s to finish: take no new work, and answer what still
        waits 503 shutting_down DRAIN_MARGIN_S before that time (as JSON, not cut off)."""
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + max(0.0, grace_s - DRAIN_MARGIN_S)
            log.info("shutting down: %d queued request(s) have %.0f s to finish", self.queue_depth, grace_s)

    def submit(self, job: Job) -> None:
        """Queue a job; ApiError 503 (queue_full) when the queue is full."""
        with self._cond:
            if self._stopping or self.drain_deadline is not None:
                raise ApiError(503, "shutting_down", "the server is shutting down", {"Retry-After": "5"})
            if len(self._pending) >= self.queue_size:
                raise ApiError(
                    503,
                    "queue_full",
                    f"the inference queue is full ({self.queue_size} requests waiting); retry shortly",
                    {"Retry-After": str(self.retry_after())},
                )
            hold = _CURRENT_HOLD.get()
            if hold is not None:  # admitted before decoding: its hold becomes this job
                self._held_s -= hold.seconds
                hold.seconds = 0.0
            ahead = self._backlog_s()
            own = self.costs.seconds(job)
            if own is not None and time.monotonic() + ahead + own > job.deadline - self.admission_margin_s:
                self.refused_late += 1
                raise self._overloaded(ahead + own, ahead)
            self._pending.append(job)
            self.metrics.queue_depth.set(len(self._pending))
            self._cond.notify_all()

    @contextlib.contextmanager
    def admission(
        self, model: LoadedModel, kind: str, units: float, arrived: float | None = None
    ) -> Iterator[None]:
        """Admit (or refuse, 503 overloaded) a request before anything is decoded, from the work's size
        as its headers declare it, and hold its planned time in the backlog while it is decoded.

        Requests arriving together thus see each other: without the hold, all of them would pass
        while none was queued yet and be refused only after decoding, seconds later. :meth:`submit`
        inside the block takes the hold over (the queued job then counts instead).
        """
        rate = self.costs.rate((model.card.name, kind))
        planned = 0.0 if rate is None else rate * units
        start = time.monotonic() if arrived is None else arrived
        with self._cond:
            if rate is not None:
                ahead = self._backlog_s()
                due = start + self.request_timeout_s - self.admission_margin_s
                if time.monotonic() + ahead + planned > due:
                    self.refused_late += 1
                    raise self._overloaded(ahead + planned, ahead)
            self._held_s += planned
        hold = _Hold(planned)
        token = _CURRENT_HOLD.set(hold)
        try:
            yield
        finally:
            _CURRENT_HOLD.reset(token)
            self._release(hold)

    def _release(self, hold: _Hold) -> None:
        with self._cond:
            self._held_s -= hold.seconds
            hold.seconds = 0.0

    def _overloaded(self, total_s: float, ahead_s: float) -> ApiError:
        return ApiError(
            503,
            "overloaded",
            f"the server cannot finish this request within its deadline ({self.request_timeout_s:g} s): "
            f"about {total_s:.0f} s of work would come first; retry later or send a smaller image",
            {"Retry-After": str(max(1, min(60, math.ceil(ahead_s))))},
        )

    def _backlog_s(self) -> float:
        """Planned seconds of the queued work, of the requests admitted and being decoded, and of the
        batch running now (jobs of unknown cost: 0)."""
        queued = sum(self.costs.seconds(j) or 0.0 for j in self._pending)
        return queued + self._held_s + max(0.0, self._running_until - time.monotonic())

    def withdraw(self, job: Job) -> None:
        """Take a job out of the queue at once (its caller timed out or left) and cancel it."""
        with self._cond:
            if job in self._pending:
                self._pending.remove(job)
                self.metrics.queue_depth.set(len(self._pending))
        job.future.cancel()

    def retry_after(self) -> int:
        """Seconds a rejected client should wait: about one queue's worth of batches."""
        return max(1, min(30, math.ceil(self.queue_size / max(1, self.max_batch_size) * 0.05)))

    async def run(self, job: Job) -> Tensor:
        """Queue a job and await its result without blocking the event loop (503 full, 504 late)."""
        self.submit(job)
        return await self.result(job)

    async def result(self, job: Job, disconnected: Callable[[], Any] | None = None) -> Tensor:
        """Await the result of a submitted job; ApiError 504 once its deadline has passed.

        ``disconnected``: an async callable (Starlette's ``request.is_disconnected``), polled while
        waiting; a client that has gone has its job withdrawn before the worker spends anything on it.
        Once the server shuts down (:meth:`begin_drain`), a request still waiting at the drain deadline
        is answered 503 shutting_down.
        """
        remaining = max(0.0, job.deadline - time.monotonic())
        waiter = asyncio.ensure_future(asyncio.wrap_future(job.future))
        watcher = asyncio.ensure_future(_watch(disconnected, self))
        try:
            done, _ = await asyncio.wait(
                [waiter, watcher], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                return waiter.result()
            self.withdraw(job)  # out of the queue now: the worker never starts it
            if watcher in done and watcher.result() == "gone":  # nobody reads this; the log and metrics do
                raise ApiError(499, "client_closed_request", "the client left while its request waited")
            if watcher in done:
                raise ApiError(
                    503, "shutting_down", "the server is shutting down; retry (another replica)",
                    {"Retry-After": "5"},
                )
            raise self._deadline_exceeded()
        except asyncio.CancelledError:
            # The worker drops jobs past their deadline by cancelling their future; under load it can see
            # the deadline pass before this loop's timer fires, and the wrapped future then ends cancelled.
            # That is the same 504, not a 500. Our own task being cancelled (client gone, shutdown) is not.
            task = asyncio.current_task()
            if job.future.cancelled() and (task is None or task.cancelling() == 0):
                raise self._deadline_exceeded() from None
            self.withdraw(job)
            raise
        finally:
            for t in (waiter, watcher):
                if not t.done():
                    t.cancel()

    def _deadline_exceeded(self) -> ApiError:
        """The 504 of a job past its deadline (built only when one is, not on every request)."""
        return ApiError(
            504,
            "deadline_exceeded",
            f"the request took longer than the server's deadline of {self.request_timeout_s:g} s",
        )

    def new_job(
        self,
        model: LoadedModel,
        kind: str,
        work: StylizeWork | Callable[[], Tensor],
        arrived: float | None = None,
    ) -> Job:
        """A job with its batch key, due request_timeout_s after ``arrived`` (monotonic; default: now)."""
        key = self.batch_key(model, work) if isinstance(work, StylizeWork) else None
        start = time.monotonic() if arrived is None else arrived
        return Job(model, kind, work, key, deadline=start + self.request_timeout_s)

    def run_now(self, job: Job) -> Tensor:
        """Run one job in the calling thread (warm-up), bypassing the queue."""
        job.future.set_running_or_notify_cancel()
        self._execute([job])
        return job.future.result()

    # ------------------------------------------------------------------ the worker

    def _loop(self) -> None:
        _lower_thread_priority(WORKER_NICENESS)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._execute(batch)
            except BaseException:  # never lose the worker; every job already got an answer
                log.exception("worker: unexpected error around a batch")

    def _next_batch(self) -> list[Job] | None:
        """Block until a batch is due; None when stopping and nothing is left."""
        with self._cond:
            while True:
                self._drop_expired()
                if not self._pending:
                    if self._stopping:
                        return None
                    self._cond.wait()
                    continue
                first = self._pending[0]
                if first.key is None or self.max_batch_size == 1:
                    mates = [first]
                else:
                    mates = self._within_pixels(
                        [j for j in self._pending if j.key == first.key][: self.max_batch_size]
                    )
                    wait = first.enqueued + self.max_batch_delay - time.monotonic()
                    # wait only for requests that are on their way: alone, a request never waits
                    coming = self._preparing > 0
                    if len(mates) < self.max_batch_size and wait > 0 and coming and not self._stopping:
                        self._cond.wait(wait)
                        continue
                mates, doomed = self._fit_in_time(mates)
                for job in mates + doomed:
                    self._pending.remove(job)
                self.metrics.queue_depth.set(len(self._pending))
                expected = sum(self.costs.seconds(j) or 0.0 for j in mates)
                self._running_until = time.monotonic() + expected
                break
        for job in doomed:  # it could not finish in time: answered now, never computed
            self.refused_late += 1
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(self._deadline_exceeded())
        # a job whose caller gave up (deadline) was cancelled: skip it
        return [job for job in mates if job.future.set_running_or_notify_cancel()] or []

    def _within_pixels(self, mates: list[Job]) -> list[Job]:
        """The first jobs whose contents hold at most max_batch_pixels together (the first always): a
        forward pass's memory grows with its pixels (about 1.1 kB each for the nets on a CPU)."""
        chosen, pixels = mates[:1], mates[0].units * 1e6
        for job in mates[1:]:
            pixels += job.units * 1e6
            if pixels > self.max_batch_pixels:
                break
            chosen.append(job)
        return chosen

    def _fit_in_time(self, mates: list[Job]) -> tuple[list[Job], list[Job]]:
        """Bound a batch by time: (the jobs that can all finish before their deadlines, the first job
        when even it alone cannot). Jobs of unknown cost always fit; the rest wait for the next batch."""
        now = time.monotonic()
        first = mates[0]
        own = self.costs.seconds(first)
        if own is not None and now + own > first.deadline:
            return [], [first]
        chosen, total, due = [first], own or 0.0, first.deadline
        for job in mates[1:]:
            cost = self.costs.seconds(job) or 0.0
            if now + total + cost > min(due, job.deadline):
                break
            chosen.append(job)
            total += cost
            due = min(due, job.deadline)
        return chosen, []

    def _drop_expired(self) -> None:
        now = time.monotonic()
        late = [j for j in self._pending if j.deadline <= now or j.future.cancelled()]
        for job in late:
            self._pending.remove(job)
            job.future.cancel()
        if late:
            self.metrics.queue_depth.set(len(self._pending))

    def _precision(self, model: LoadedModel | None = None) -> contextlib.AbstractContextManager:
        # the path's autocast where the family allows it (colour transfer's log10 of tiny values does not)
        path = self.path if model is None else family_of(model.card).serving_path(self.path)
        return path.autocast(self.device)

    def _execute(self, jobs: list[Job]) -> None:
        """Run jobs (one batch key, or one job alone) and resolve their futures."""
        if not jobs:
            return
        model = jobs[0].model
        name = model.card.name
        start = time.monotonic()
        for job in jobs:
            self.metrics.queue_wait.labels(name).observe(start - job.enqueued)
        try:
            with torch.inference_mode(), self._precision(model):
                outputs = self._forward(jobs)
        except Exception as exc:
            if len(jobs) > 1:
                # one bad job (or memory for the whole batch) must not fail its neighbours: retry alone
                log.warning(
                    "batch of %d for %s failed (%s); running its jobs one by one", len(jobs), name, exc
                )
                for job in jobs:
                    self._execute([job])
                return
            jobs[0].future.set_exception(exc)
            return
        elapsed = time.monotonic() - start
        planned = [self.costs.seconds(j) for j in jobs]
        if all(p is not None for p in planned) and elapsed > sum(planned):  # type: ignore[arg-type]
            log.info(
                "a batch of %d for %s took %.2f s, planned %.2f s: the cost model adapts",
                len(jobs), name, elapsed, sum(planned),  # type: ignore[arg-type]
            )
        self.costs.observe(jobs[0].cost_key, sum(j.units for j in jobs), elapsed)
        self._running_until = 0.0
        self.batches_run += 1
        self.metrics.batch_size.labels(name).observe(len(jobs))
        self.metrics.inference.labels(name, jobs[0].kind).observe(elapsed)
        for job, out in zip(jobs, outputs, strict=True):
            job.batch_size = len(jobs)
            job.future.set_result(out)

    def _forward(self, jobs: list[Job]) -> list[Tensor]:
        first = jobs[0]
        if not isinstance(first.work, StylizeWork):
            return [first.work().detach().float().cpu()]
        works = [j.work for j in jobs if isinstance(j.work, StylizeWork)]
        if first.key is None:
            return [self._stylize_alone(first.model, works[0])]
        out = self._stylize_batch(first.model, works)
        return [out[i : i + 1].clone() for i in range(out.shape[0])]

    # ------------------------------------------------------------------ style statistics

    def _style_image(self, ref: StyleRef) -> Tensor:
        if ref.image is not None:
            return ref.image
        assert ref.data is not None, "an uploaded style carries its bytes"
        return resize_to(load_image(ref.data, self.max_pixels, WEB_FORMATS), self.style_max_side)

    def style_stats(self, model: LoadedModel, ref: StyleRef) -> StyleStats:
        """The statistics of one style, cached: (mean, std), each (1, C), for adain and color models;
        the colouring statistics per level for wct."""
        if ref.name is not None:
            cache, key = self.named_cache, ("name", ref.name)
        else:
            cache, key = self.upload_cache, ("upload", ref.key)
        stats = cache.get(model.card.name, key)
        self.metrics.style_cache.labels("hit" if stats is not None else "miss").inc()
        if stats is None:
            image = named_style(model, ref.name) if ref.name is not None else self._style_image(ref)
            stats = family_of(model.card).style_stats(model, image.to(self.device))
            cache.put(model.card.name, key, stats)
        return on_device(stats, self.device)

    def precompute_named(self, model: LoadedModel) -> int:
        """Compute the statistics of every gallery style (adain, color, wct models); returns how many."""
        if not family_of(model.card).style_statistics:
            return 0
        done = 0
        with torch.inference_mode(), self._precision(model):
            for name in model.card.styles:
                if (model.folder / "styles" / f"{name}.png").is_file():
                    self.style_stats(model, StyleRef(name=name))
                    done += 1
        return done

    # ------------------------------------------------------------------ stylize

    def _row(self, model: LoadedModel, work: StylizeWork) -> BatchRow:
        """One sample of a batch: its named styles and their mix, or its mixed statistics (families whose
        styles are statistics: a weighted mix of styles is the mix of their (mean, std))."""
        mix = mix_weights(work.weights, len(work.styles)) if work.styles else []
        if not family_of(model.card).style_statistics:
            names = [r.name for r in work.styles if r.name is not None]
            return BatchRow(names=names, mix=mix, alpha=work.alpha)
        stats = [self.style_stats(model, ref) for ref in work.styles]
        mean = sum(m * st[0] for m, st in zip(mix, stats, strict=True))
        std = sum(m * st[1] for m, st in zip(mix, stats, strict=True))
        return BatchRow(stats=(mean, std), alpha=work.alpha)  # type: ignore[arg-type]

    def _stylize_batch(self, model: LoadedModel, works: list[StylizeWork]) -> Tensor:
        """One forward pass for contents of one size -> (N, 3, H, W) float32 in [0, 1] on the CPU."""
        x = torch.cat([w.content for w in works]).to(self.device, torch.float32)
        if family_of(model.card).serving_path(self.path).channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = family_of(model.card).run_batch(model, x, [self._row(model, w) for w in works])
        return out.float().clamp(0.0, 1.0).cpu()

    def _stylize_alone(self, model: LoadedModel, work: StylizeWork) -> Tensor:
        """Masks, colour preservation or tiles: the library's stylize, with cached statistics where the
        family takes them (colour preservation recolours each style image for this content: no cache)."""
        family = family_of(model.card)
        styles: list[Any] = []
        for ref in work.styles:
            if ref.name is not None and not (family.takes_statistics and not work.preserve_color):
                styles.append(ref.name)  # names: the family resolves them (its gallery, or its rows)
            elif family.takes_statistics and not work.preserve_color:
                styles.append(self.style_stats(model, ref))
            else:
                styles.append(self._style_image(ref))
        out = stylize(
            model,
            work.content,
            styles,
            work.weights,
            work.alpha,
            work.preserve_color,
            work.masks,
            None,
            self.max_untiled_pixels,
            dtype=family.serving_path(self.path).dtype,
        )
        return out.float().cpu()
