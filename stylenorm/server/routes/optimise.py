"""``POST /v1/optimise`` and ``/v1/jobs/{id}``: style transfer by optimisation as polled jobs.

An optimisation (Gatys et al.) takes seconds to minutes, so the request only
checks and decodes the uploads (4xx at once for a caller's mistake), queues a
job in the :class:`~stylenorm.server.jobs.JobRunner` and answers ``202`` with
the job's URLs. ``GET /v1/jobs/{id}`` gives its state and progress,
``GET /v1/jobs/{id}/result`` the image once done (``409 not_done`` with
``Retry-After`` before), ``DELETE /v1/jobs/{id}`` cancels it. Jobs run on their
own thread, one at a time: the stylize batcher keeps serving meanwhile.
"""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures (their bounds come from
# the settings in router()'s scope).
import math
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from stylenorm.families.optimise import MAX_OPTIMISE_STYLES
from stylenorm.imageio import encode_image, resize_mask
from stylenorm.inference.stylize import MIN_SIDE, resize_to, stylize
from stylenorm.nets.optimise import OptimiseOptions, StyleLoss
from stylenorm.server.errors import ApiError
from stylenorm.server.jobs import Job, JobRunner
from stylenorm.server.registry import Registry, ServedModel
from stylenorm.server.schemas import MEDIA_TYPES, ImageFormat
from stylenorm.server.settings import Settings
from stylenorm.server.state import StateDep
from stylenorm.server.uploads import check_weights, decode_mask, decode_upload


class JobStatus(BaseModel):
    """Where a job is."""

    id: str
    model: str
    state: str = Field(description="queued, running, done, failed or cancelled")
    step: int = Field(description="iterations done")
    steps: int = Field(description="iterations asked for")
    loss: float | None = Field(None, description="the last iteration's loss")
    elapsed_s: float = Field(description="seconds since the job started (0 while queued)")
    queue_position: int | None = Field(None, description="jobs ahead of it (while queued)")
    status_url: str
    result_url: str
    error: dict[str, Any] | None = Field(None, description="status, code and message of a failed job")


def job_status(job: Job, runner: JobRunner) -> JobStatus:
    """The JSON view of a job."""
    error = None if job.error is None else dict(zip(("status", "code", "message"), job.error, strict=True))
    return JobStatus(
        id=job.id,
        model=job.model,
        state=job.state,
        step=job.step,
        steps=job.steps,
        loss=None if job.loss is None or not math.isfinite(job.loss) else job.loss,
        elapsed_s=round(job.elapsed_s(), 3),
        queue_position=runner.position(job.id) if job.state == "queued" else None,
        status_url=f"/v1/jobs/{job.id}",
        result_url=f"/v1/jobs/{job.id}/result",
        error=error,
    )


def optimise_model(registry: Registry, name: str | None) -> ServedModel:
    """The named optimise model, or the only one."""
    if name:
        return registry.get(name, "optimise")
    candidates = registry.of_kind("optimise")
    if len(candidates) == 1:
        return candidates[0]
    if registry.loading:
        raise ApiError(503, "not_ready", "models are still loading; retry shortly", {"Retry-After": "2"})
    if not candidates:
        raise ApiError(404, "no_model", "no optimise model is loaded (stylenorm import optimise makes one)")
    raise ApiError(422, "invalid_parameters", "name a model: " + ", ".join(m.name for m in candidates))


def router(settings: Settings) -> APIRouter:
    """The optimisation and job routes (under /v1); their bounds come from the settings."""
    v1 = APIRouter(prefix="/v1")

    @v1.post(
        "/optimise",
        status_code=202,
        response_model=JobStatus,
        summary="Stylize by optimisation (Gatys et al.): a job, polled",
        description=(
            "Multipart form: `content`, one or more `style` images, optional `weights` (mix) or one `mask` "
            "per style (regions), `iterations`, `style_loss` (gram or mean_std), `preserve_color`, "
            "`max_side`, `format`. Answers 202 with the job's `status_url` and `result_url`; the image is "
            "computed on a queue of its own (one job at a time), so stylize requests are not held up. "
            "Seconds per iteration grow with the pixels."
        ),
    )
    async def optimise_endpoint(
        state: StateDep,
        content: Annotated[UploadFile, File(description="the content image (PNG, JPEG or WebP)")],
        style: Annotated[list[UploadFile], File(description="style images (1 or more)")],
        weights: Annotated[list[float] | None, Form(description="one weight per style (mixing)")] = None,
        mask: Annotated[
            list[UploadFile] | None, File(description="one grayscale mask per style; white = its region")
        ] = None,
        iterations: Annotated[
            int, Form(ge=1, le=settings.optimise_max_iterations, description="optimisation iterations")
        ] = min(100, settings.optimise_max_iterations),
        style_loss: Annotated[
            StyleLoss, Form(description="Gram matrices or per-channel mean and std")
        ] = "gram",
        style_weight: Annotated[
            float, Form(ge=0.0, le=1e4, allow_inf_nan=False, description="style against content (1)")
        ] = OptimiseOptions.style_weight,
        preserve_color: Annotated[bool, Form(description="keep the content's colours")] = False,
        max_side: Annotated[
            int | None,
            Form(ge=MIN_SIDE, le=settings.optimise_max_side, description="bound the longer side"),
        ] = None,
        format: Annotated[ImageFormat, Form(description="output format")] = "png",
        quality: Annotated[int, Form(ge=1, le=100, description="JPEG/WebP quality")] = 90,
        model: Annotated[str | None, Form(description="an optimise model (default: the only one)")] = None,
    ) -> JSONResponse:
        served, runner = optimise_model(state.registry, model), state.jobs
        mask_files = mask or []
        if len(style) > MAX_OPTIMISE_STYLES:
            raise ApiError(422, "invalid_parameters", f"at most {MAX_OPTIMISE_STYLES} styles per job")
        if mask_files and (weights or len(mask_files) != len(style)):
            raise ApiError(
                422,
                "invalid_parameters",
                f"give one mask per style ({len(style)}), and no weights with masks",
            )
        checked = check_weights(weights, len(style))
        options = OptimiseOptions(iterations=iterations, style_loss=style_loss, style_weight=style_weight)
        content_bytes = await content.read()
        style_bytes = [await f.read() for f in style]
        mask_bytes = [await f.read() for f in mask_files]
        bound = min(max_side or settings.optimise_max_side, settings.optimise_max_side)

        def prepare() -> tuple[Any, list[Any], list[Any] | None]:
            image = decode_upload(content_bytes, "content", settings.max_pixels)
            original = (int(image.shape[2]), int(image.shape[3]))
            image = resize_to(image, bound)
            h, w = image.shape[2:]
            if min(h, w) < MIN_SIDE:
                raise ApiError(
                    422, "invalid_parameters", f"the content is {w}×{h}; each side needs {MIN_SIDE} pixels"
                )
            styles = []
            for i, data in enumerate(style_bytes):
                s = resize_to(
                    decode_upload(data, f"style {i + 1}", settings.max_pixels), settings.style_max_side
                )
                if min(s.shape[2:]) < MIN_SIDE:
                    raise ApiError(422, "invalid_parameters", f"style {i + 1} needs {MIN_SIDE} pixels a side")
                styles.append(s)
            masks = [
                resize_mask(decode_mask(b, f"mask {i + 1}", original, settings.max_pixels), (h, w))
                for i, b in enumerate(mask_bytes)
            ] or None
            return image, styles, masks

        image, styles, masks = await run_in_threadpool(prepare)
        loaded = served.loaded

        def work(job: Job) -> bytes:
            out = stylize(
                loaded,
                image,
                styles,
                checked,
                preserve_color=preserve_color,
                masks=masks,
                optimise=options,
                progress=job.progress,
            )
            return encode_image(out, format, quality)

        extension = "jpg" if format == "jpeg" else format
        job = runner.submit(served.name, iterations, MEDIA_TYPES[format], f"optimised.{extension}", work)
        status = job_status(job, runner)
        return JSONResponse(status.model_dump(), status_code=202, headers={"Location": status.status_url})

    @v1.get("/jobs/{job_id}", response_model=JobStatus, summary="A job's state and progress")
    async def job_endpoint(job_id: str, state: StateDep) -> JobStatus:
        return job_status(state.jobs.get(job_id), state.jobs)

    @v1.get(
        "/jobs/{job_id}/result",
        response_class=Response,
        summary="A finished job's image (409 while it runs; its error once failed)",
        responses={200: {"description": "the image", "content": {t: {} for t in MEDIA_TYPES.values()}}},
    )
    async def job_result(job_id: str, state: StateDep) -> Response:
        job = state.jobs.get(job_id)
        if job.state == "done" and job.result is not None:
            return Response(
                job.result,
                media_type=job.media_type,
                headers={
                    "Cache-Control": "no-store",
                    "Content-Disposition": f'inline; filename="{job.filename}"',
                },
            )
        if job.error is not None:
            status, code, message = job.error
            raise ApiError(status, code, message)
        done = job.step / job.steps if job.steps else 0.0
        raise ApiError(
            409,
            "not_done",
            f"the job is {job.state} ({job.step}/{job.steps} iterations, {done:.0%})",
            {"Retry-After": "2"},
        )

    @v1.delete("/jobs/{job_id}", status_code=202, response_model=JobStatus, summary="Cancel a job")
    async def cancel_job(job_id: str, state: StateDep) -> JobStatus:
        return job_status(state.jobs.cancel(job_id), state.jobs)

    return v1


__all__ = ["JobStatus", "job_status", "optimise_model", "router"]
