"""Long jobs (style transfer by optimisation): queued apart from the batcher, run one at a time, polled.

A stylize request is answered within its deadline by the batching engine; an
optimisation takes seconds to minutes, so it must neither hold a connection
open nor stall the batcher. :class:`JobRunner` keeps a bounded queue of such
jobs (503 ``queue_full`` beyond it), runs them one at a time on its own thread,
records each one's progress, and keeps finished results for ``keep_s`` seconds
(at most ``max_kept`` of them, the oldest dropped first). A job that runs past
``time_limit_s`` is stopped; a deleted job stops at its next iteration. Job ids
are random (128 bits): knowing one is what lets a client read its result.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from stylenorm.errors import StylenormError
from stylenorm.nets.optimise import Cancelled
from stylenorm.server.errors import ApiError

log = logging.getLogger("stylenorm.server.jobs")

State = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED = ("done", "failed", "cancelled")


@dataclass
class Job:
    """One long job: what it is, where it is, and (once done) its result."""

    id: str
    model: str
    steps: int
    media_type: str
    filename: str
    state: State = "queued"
    step: int = 0
    loss: float | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    error: tuple[int, str, str] | None = None  # (status, code, message) of a failed job
    result: bytes | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def elapsed_s(self) -> float:
        """Seconds since the job started (0 while queued)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def progress(self, step: int, steps: int, loss: float) -> None:
        """The work's progress callback: records the step; raises Cancelled once the job is to stop."""
        self.step, self.steps, self.loss = step, steps, loss
        if self.cancel.is_set():
            raise Cancelled(f"cancelled after {step} of {steps} iterations")


Work = Callable[[Job], bytes]


class JobRunner:
    """A bounded queue of long jobs and the one thread that runs them."""

    def __init__(self, max_queued: int, keep_s: float, max_kept: int, time_limit_s: float) -> None:
        self.max_queued, self.keep_s, self.max_kept = max_queued, keep_s, max_kept
        self.time_limit_s = time_limit_s
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # every job still known, oldest first
        self._work: dict[str, Work] = {}
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="stylenorm-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is queued and running; wait for the thread (a running job stops at its next step)."""
        with self._cond:
            self._stopping = True
            for job in self._jobs.values():
                job.cancel.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None
            for job_id in list(self._queue):
                self._finish(
                    self._jobs[job_id], "cancelled", (503, "shutting_down", "the server is stopping")
                )
            self._queue.clear()

    # ---------------------------------------------------------------- API

    @property
    def queued(self) -> int:
        """Jobs waiting to run."""
        with self._cond:
            return len(self._queue)

    @property
    def running(self) -> int:
        """Jobs running now (0 or 1)."""
        with self._cond:
            return sum(1 for j in self._jobs.values() if j.state == "running")

    def position(self, job_id: str) -> int | None:
        """How many jobs wait ahead of a queued job (None when it is not queued)."""
        with self._cond:
            try:
                return self._queue.index(job_id)
            except ValueError:
                return None

    def submit(self, model: str, steps: int, media_type: str, filename: str, work: Work) -> Job:
        """Queue work; 503 queue_full (with Retry-After) when max_queued jobs already wait."""
        with self._cond:
            self._expire()
            if self._stopping:
                raise ApiError(503, "shutting_down", "the server is stopping", {"Retry-After": "5"})
            if len(self._queue) >= self.max_queued:
                raise ApiError(
                    503,
                    "queue_full",
                    f"{len(self._queue)} optimisation jobs are waiting; retry later",
                    {"Retry-After": "30"},
                )
            job = Job(secrets.token_urlsafe(16), model, steps, media_type, filename)
            self._jobs[job.id] = job
            self._work[job.id] = work
            self._queue.append(job.id)
            self._cond.notify_all()
            return job

    def get(self, job_id: str) -> Job:
        """The job; 404 unknown_job when it never existed or has expired."""
        with self._cond:
            self._expire()
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "unknown_job", "no such job (finished jobs are kept for a limited time)")
        return job

    def cancel(self, job_id: str) -> Job:
        """Stop a job: a queued one at once, a running one at its next iteration; forget a finished one."""
        job = self.get(job_id)
        with self._cond:
            if job.state == "queued":
                self._queue.remove(job.id)
                self._finish(job, "cancelled", (409, "cancelled", "the job was cancelled"))
            elif job.state == "running":
                job.cancel.set()
            else:
                self._forget(job.id)
        return job

    # ---------------------------------------------------------------- internals

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._jobs[self._queue.popleft()]
                work = self._work.pop(job.id)
                job.state, job.started = "running", time.monotonic()
            timer = threading.Timer(self.time_limit_s, job.cancel.set)
            timer.daemon = True
            timer.start()
            outcome: State = "failed"
            error: tuple[int, str, str] | None = None
            result = None
            try:
                result = work(job)
                outcome = "done"
            except Cancelled:
                if job.elapsed_s() >= self.time_limit_s:
                    error = (504, "deadline_exceeded", f"the job ran longer than {self.time_limit_s:g} s")
                    outcome = "failed"
                else:
                    outcome, error = "cancelled", (409, "cancelled", "the job was cancelled")
            except ApiError as exc:
                error = (exc.status, exc.code, exc.message)
            except StylenormError as exc:
                error = (422, "invalid_parameters", str(exc))
            except Exception:  # a bug: logged with its traceback, the runner carries on
                log.exception("optimisation job %s failed", job.id)
                error = (500, "internal_error", "the job failed; the traceback is in the server log")
            finally:
                timer.cancel()
            with self._cond:
                job.result = result
                self._finish(job, outcome, error)
                log.info(
                    "job %s %s after %.1f s (%d/%d steps)",
                    job.id,
                    outcome,
                    job.elapsed_s(),
                    job.step,
                    job.steps,
                )

    def _finish(self, job: Job, state: State, error: tuple[int, str, str] | None) -> None:
        job.state, job.error, job.finished = state, error, time.monotonic()
        self._work.pop(job.id, None)
        self._expire()

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._work.pop(job_id, None)

    def _expire(self) -> None:
        """Drop finished jobs older than keep_s, then the oldest finished ones beyond max_kept."""
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for job in finished:
            if job.finished is not None and now - job.finished > self.keep_s:
                self._forget(job.id)
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for job in finished[: max(0, len(finished) - self.max_kept)]:
            self._forget(job.id)


__all__ = ["FINISHED", "Job", "JobRunner"]
