"""What the routes share, built once per application: settings, metrics, the model registry, the
engine, the optimisation jobs, the pixel budget and the thumbnail cache. Routes take it as a
dependency (``state: StateDep``); nothing else is global."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from stylenorm.server.engine import Engine
from stylenorm.server.jobs import JobRunner
from stylenorm.server.metrics import Metrics
from stylenorm.server.registry import Registry
from stylenorm.server.settings import Settings
from stylenorm.server.uploads import PixelBudget


@dataclass
class ServerState:
    """One application's parts."""

    settings: Settings
    metrics: Metrics
    registry: Registry
    engine: Engine
    jobs: JobRunner
    pixels_in_flight: PixelBudget
    thumbnails: OrderedDict[tuple[str, str], bytes] = field(default_factory=OrderedDict)

    @classmethod
    def build(cls, settings: Settings) -> ServerState:
        """The parts for these settings (nothing started: the lifespan starts the engine and loads)."""
        metrics = Metrics()
        device = settings.resolved_device()
        path = settings.inference_path()
        engine = Engine(
            device=device,
            path=path,
            max_batch_size=settings.max_batch_size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            queue_size=settings.queue_size,
            request_timeout_s=settings.request_timeout_s,
            max_untiled_pixels=settings.max_untiled_pixels,
            max_batch_pixels=settings.max_batch_pixels,
            style_max_side=settings.style_max_side,
            max_pixels=settings.max_pixels,
            style_cache_size=settings.style_cache_size,
            metrics=metrics,
        )
        jobs = JobRunner(
            max_queued=settings.optimise_queue_size,
            keep_s=settings.job_keep_s,
            max_kept=settings.job_max_kept,
            time_limit_s=settings.optimise_time_limit_s,
        )
        registry = Registry(settings.models_dir, device, path)
        return cls(settings, metrics, registry, engine, jobs, PixelBudget(settings.max_pixels_in_flight))


def server_state(request: Request) -> ServerState:
    """The dependency: the state of the application serving this request."""
    return request.app.state.server


StateDep = Annotated[ServerState, Depends(server_state)]
