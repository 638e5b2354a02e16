"""Start and stop: the engine and job threads, models loaded and warmed in the background, the drain
hook uvicorn's protocol calls on SIGTERM, and an orderly stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from stylenorm.families import family_of
from stylenorm.families.base import test_pattern
from stylenorm.models import LoadedModel
from stylenorm.server.engine import StyleRef, StylizeWork
from stylenorm.server.protocol import DRAIN_HOOK
from stylenorm.server.registry import ServedModel
from stylenorm.server.state import ServerState

log = logging.getLogger("stylenorm.server")

WARMUP_SIDE = 256  # the measured warm-up pass: 0.066 MP, above the cost model's smallest sample


def warmup_work(model: LoadedModel, side: int = 32) -> StylizeWork:
    """A small request the model's family chooses (its first named style, or a test picture)."""
    refs = [
        StyleRef(name=st) if isinstance(st, str) else StyleRef(key="warm-up", image=st)
        for st in family_of(model.card).warmup_styles(model)
    ]
    return StylizeWork(content=test_pattern(side), styles=refs)


def warm(state: ServerState, served: ServedModel) -> None:
    """Precompute a model's named style statistics and run it once (twice for stylize models: the
    second pass, big enough to measure, seeds the engine's cost model)."""
    model, engine = served.loaded, state.engine
    if served.kind == "stylize":
        engine.precompute_named(model)
    if not state.settings.warmup:
        return
    with torch.inference_mode():
        if served.kind == "stylize":
            engine.run_now(engine.new_job(model, "stylize", warmup_work(model)))
            engine.run_now(engine.new_job(model, "stylize", warmup_work(model, WARMUP_SIDE)))
        elif served.kind == "synthesize":
            from stylenorm.inference.synthesize import native_size, synthesize

            h, w = native_size(model)
            synthesize(model, torch.zeros(1, h, w, dtype=torch.long), None, 0)
        elif served.kind == "generate":
            from stylenorm.inference.synthesize import generate, model_classes

            generate(model, model_classes(model)[0], 1, 0)


def load_models(state: ServerState) -> None:
    """Load and warm every model of the repository (the loader thread)."""
    state.registry.load_all(lambda served: warm(state, served))
    state.metrics.models_loaded.set(len(state.registry.models))
    state.metrics.models_unavailable.set(len(state.registry.unavailable))


def lifespan(state: ServerState) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Any]]]:
    """The application's lifespan: start the threads and the background loading; on shutdown, stop the
    jobs and the engine (which answers what is still queued)."""
    settings = state.settings

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if settings.tune_allocator:
            from stylenorm.runtime import tune_cpu_allocator

            tune_cpu_allocator()
        state.engine.start()
        state.jobs.start()
        log.info("models run on %s: %s", state.engine.device, state.engine.path.describe())
        # load in the background: /healthz answers at once, /readyz turns 200 when loading is done
        threading.Thread(target=load_models, args=(state,), name="stylenorm-loader", daemon=True).start()
        log.info(
            "serving %s on %s (batch ≤ %d, delay %g ms, queue %d)",
            settings.models_dir,
            state.engine.device,
            settings.max_batch_size,
            settings.max_batch_delay_ms,
            settings.queue_size,
        )
        # the lifespan state reaches uvicorn's protocol (TimedH11Protocol) of this server only
        yield {DRAIN_HOOK: lambda: state.engine.begin_drain(settings.shutdown_grace_s)}
        await run_in_threadpool(state.jobs.stop)
        await run_in_threadpool(state.engine.stop)
        state.metrics.close()

    return run
