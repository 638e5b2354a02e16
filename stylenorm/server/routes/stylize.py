"""``POST /v1/stylize``: decode and check the uploads, queue the job for the engine's batcher, answer
the image. Admission (503 overloaded) and the pixel budget (503 busy / 413) come before any decoding."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures, and their bounds
# (max_side ≤ settings.max_side) come from the settings in router()'s scope.
import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from stylenorm.families import family_of
from stylenorm.families.base import MAX_STYLES
from stylenorm.imageio import encode_image, resize_mask
from stylenorm.inference.stylize import MIN_SIDE, resize_to
from stylenorm.server.engine import StyleRef, StylizeWork
from stylenorm.server.errors import ApiError
from stylenorm.server.registry import ServedModel
from stylenorm.server.responses import error_responses, image_responses
from stylenorm.server.schemas import MEDIA_TYPES, ImageFormat
from stylenorm.server.settings import Settings
from stylenorm.server.state import ServerState, StateDep
from stylenorm.server.uploads import declared_pixels, declared_size, decode_mask, decode_upload
from stylenorm.server.validation import arrived, check_stylize, stylize_options


def stylize_model(state: ServerState, name: str | None) -> ServedModel:
    """The named stylize model, else the default one, else the only one."""
    registry, settings = state.registry, state.settings
    if name:
        return registry.get(name, "stylize")
    if (
        settings.default_model in registry.models
        and registry.models[settings.default_model].kind == "stylize"
    ):
        return registry.models[settings.default_model]
    candidates = registry.of_kind("stylize")
    if len(candidates) == 1:
        return candidates[0]
    if registry.loading:
        raise ApiError(503, "not_ready", "models are still loading; retry shortly", {"Retry-After": "2"})
    raise ApiError(
        422,
        "invalid_parameters",
        "name a model (model=…): " + (", ".join(m.name for m in candidates) or "none is loaded"),
    )


def router(settings: Settings) -> APIRouter:
    """The stylize route (under /v1); its bounds come from the settings."""
    v1 = APIRouter(prefix="/v1")

    @v1.post(
        "/stylize",
        response_class=Response,
        responses={**image_responses("the stylized image"), **error_responses(413, 415, 503, 504)},
        summary="Stylize a content image",
        description=(
            "Multipart form. `content`: the image. Styles: upload `style` files and/or name `styles` (the "
            "model's named styles, see GET /v1/models/{name}). `weights`: one per style, in this order: "
            "**uploaded files first, then named styles**. What each model takes is in its `options` "
            "(GET /v1/models/{name}): fast models take no style; multistyle models take names (mixed by "
            "weights); adain models take uploads and names, weights or one `mask` per style, alpha and "
            "preserve_color; color models take exactly one style and alpha. The content is bounded to "
            "`max_side` (default: the server's limit, never upscaled). Answers the image in `format`."
        ),
    )
    async def stylize_endpoint(
        request: Request,
        state: StateDep,
        content: Annotated[UploadFile, File(description="the content image (PNG, JPEG or WebP)")],
        style: Annotated[
            list[UploadFile] | None, File(description="style images to upload (adain, color)")
        ] = None,
        styles: Annotated[list[str] | None, Form(description="named styles of the model")] = None,
        weights: Annotated[
            list[float] | None,
            Form(description="one weight per style: uploaded files first, then named styles"),
        ] = None,
        alpha: Annotated[
            float | None,
            Form(
                ge=0.0, le=1.0, allow_inf_nan=False,
                description="content (0) to full style (1); default: the model's `default_alpha` (1 unless "
                "its card says otherwise)",
            ),
        ] = None,
        preserve_color: Annotated[bool, Form(description="keep the content's colours")] = False,
        mask: Annotated[
            list[UploadFile] | None,
            File(
                description="adain: one grayscale mask per style, the content's size; "
                "white = the style's region"
            ),
        ] = None,
        format: Annotated[ImageFormat, Form(description="output format")] = "png",
        quality: Annotated[int, Form(ge=1, le=100, description="JPEG/WebP quality")] = 90,
        max_side: Annotated[
            int | None,
            Form(
                ge=MIN_SIDE,
                le=settings.max_side,
                description=f"bound the longer side (≤ {settings.max_side})",
            ),
        ] = None,
        model: Annotated[
            str | None, Form(description=f"model name (default {settings.default_model})")
        ] = None,
    ) -> Response:
        served = stylize_model(state, model)
        if alpha is None:
            alpha = stylize_options(served).default_alpha
        uploads, names, mask_files = style or [], styles or [], mask or []
        if len(uploads) + len(names) > MAX_STYLES or len(mask_files) > MAX_STYLES:
            raise ApiError(422, "invalid_parameters", f"at most {MAX_STYLES} styles (and masks) per request")
        checked = check_stylize(served, len(uploads), names, weights, alpha, preserve_color, len(mask_files))
        content_bytes = await content.read()
        style_bytes = [await f.read() for f in uploads]
        mask_bytes = [await f.read() for f in mask_files]
        # refused before any decoding when the queue cannot fit it (the cost of the content as it will
        # be served: its declared size bounded to max_side)
        w, h = declared_size(content_bytes)
        bound = min(max_side or settings.max_side, settings.max_side)
        scale = min(1.0, bound / max(w, h, 1))
        needed = w * h + sum(declared_pixels(b) for b in (*style_bytes, *mask_bytes))
        units = w * h * scale * scale / 1e6
        with (
            state.engine.admission(served.loaded, "stylize", units, arrived(request)),
            state.pixels_in_flight.reserve(needed),  # held until the answer is encoded
        ):
            return await run_stylize(
                state,
                request,
                served,
                content_bytes,
                style_bytes,
                names,
                mask_bytes,
                checked,
                alpha,
                preserve_color,
                max_side,
                format,
                quality,
            )

    return v1


async def run_stylize(
    state: ServerState,
    request: Request,
    served: ServedModel,
    content_bytes: bytes,
    style_bytes: list[bytes],
    names: list[str],
    mask_bytes: list[bytes],
    checked: list[float] | None,
    alpha: float,
    preserve_color: bool,
    max_side: int | None,
    format: str,
    quality: int,
) -> Response:
    """Decode the uploads (a worker thread), queue the job, await it and encode the answer."""
    settings, engine = state.settings, state.engine
    name = served.name
    takes_statistics = family_of(served.loaded.card).takes_statistics

    def prepare() -> StylizeWork:
        image = decode_upload(content_bytes, "content", settings.max_pixels)
        original = (int(image.shape[2]), int(image.shape[3]))
        masks = [
            decode_mask(b, f"mask {i + 1}", original, settings.max_pixels) for i, b in enumerate(mask_bytes)
        ] or None
        image = resize_to(image, min(max_side or settings.max_side, settings.max_side))
        h, w = image.shape[2:]
        if min(h, w) < MIN_SIDE:
            raise ApiError(
                422,
                "invalid_parameters",
                f"the content is {w}×{h} after resizing; each side needs at least {MIN_SIDE} pixels",
            )
        if masks is not None:
            masks = [resize_mask(m, (h, w)) for m in masks]
        refs = []
        for i, data in enumerate(style_bytes):
            key = hashlib.sha256(data).hexdigest()
            cached = (name, ("upload", key)) in engine.upload_cache
            image_s = None
            if not cached or (preserve_color and takes_statistics):  # recoloured per content
                image_s = resize_to(
                    decode_upload(data, f"style {i + 1}", settings.max_pixels), settings.style_max_side
                )
                if min(image_s.shape[2:]) < MIN_SIDE:
                    raise ApiError(
                        422,
                        "invalid_parameters",
                        f"style {i + 1} is {image_s.shape[3]}×{image_s.shape[2]}; each side needs "
                        f"at least {MIN_SIDE} pixels",
                    )
            refs.append(StyleRef(key=key, image=image_s, data=data))
        refs += [StyleRef(name=n) for n in names]
        return StylizeWork(image, refs, checked, float(alpha), bool(preserve_color), masks)

    with engine.preparing():  # a forming batch may wait for this request while it is decoded
        work = await run_in_threadpool(prepare)
        job = engine.new_job(served.loaded, "stylize", work, arrived(request))
        engine.submit(job)
    out = await engine.result(job, request.is_disconnected)
    data = await run_in_threadpool(encode_image, out, format, quality)
    return Response(
        data,
        media_type=MEDIA_TYPES[format],
        headers={
            "Cache-Control": "no-store",
            "X-Model": name,
            "X-Batch-Size": str(job.batch_size),
            "Content-Disposition": f'inline; filename="stylized.{"jpg" if format == "jpeg" else format}"',
        },
    )
