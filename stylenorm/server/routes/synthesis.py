"""``POST /v1/synthesize`` (label map -> image, spade models) and ``POST /v1/generate`` (class ->
images, cgan models)."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.
import base64
import json
import secrets
from typing import Annotated, Any

import torch
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from stylenorm.imageio import WEB_FORMATS, ImageError, encode_image, open_image
from stylenorm.inference.stylize import resize_to
from stylenorm.server.errors import ApiError
from stylenorm.server.registry import Registry, ServedModel, library_function
from stylenorm.server.responses import error_responses, image_responses
from stylenorm.server.schemas import MAX_GENERATE, MEDIA_TYPES, GenerateRequest, GenerateResponse, ImageFormat
from stylenorm.server.state import StateDep
from stylenorm.server.uploads import decode_upload, with_field
from stylenorm.server.validation import arrived

router = APIRouter(prefix="/v1")


def model_of_kind(registry: Registry, name: str | None, kind: str, arch: str) -> ServedModel:
    """The named model of a kind, or the only one."""
    if registry.loading and (not name or name not in registry.models):
        raise ApiError(503, "not_ready", "models are still loading; retry shortly", {"Retry-After": "2"})
    available = registry.of_kind(kind)
    if not available:
        raise ApiError(404, "no_model", f"no {arch} model is loaded; this server cannot {kind}")
    if name:
        return registry.get(name, kind)
    if len(available) > 1:
        raise ApiError(
            422,
            "invalid_parameters",
            f"several {arch} models are loaded; name one: {', '.join(m.name for m in available)}",
        )
    return available[0]


@router.post(
    "/synthesize",
    response_class=Response,
    responses={**image_responses("the synthesized image"), **error_responses(413, 415, 503, 504)},
    summary="Synthesize an image from a semantic label map (spade models)",
    description=(
        "Multipart form. `labels`: a PNG label map, either an index image (pixel value = class index, "
        "or the dataset's own convention when the model's contract has a `label_file`: an ADE20K label "
        "PNG as it comes) or colour-coded in the model's palette (GET /v1/models/{name}: classes, "
        "palette, size). Optional "
        "`style` image, `seed` (the one used is in the X-Seed header)."
    ),
)
async def synthesize_endpoint(
    request: Request,
    state: StateDep,
    labels: Annotated[UploadFile, File(description="the label map (PNG)")],
    style: Annotated[UploadFile | None, File(description="optional style image")] = None,
    seed: Annotated[int | None, Form(ge=0, le=2**31 - 1, description="random seed")] = None,
    model: Annotated[str | None, Form(description="a spade model (default: the only one)")] = None,
    format: Annotated[ImageFormat, Form()] = "png",
    quality: Annotated[int, Form(ge=1, le=100)] = 90,
) -> Response:
    settings, engine = state.settings, state.engine
    served = model_of_kind(state.registry, model, "synthesize", "spade")
    fn = library_function("synthesize")
    from stylenorm.inference.synthesize import labels_from_image

    label_bytes = await labels.read()
    style_bytes = await style.read() if style is not None else None
    used_seed = seed if seed is not None else secrets.randbelow(2**31)

    def prepare() -> tuple[torch.Tensor, torch.Tensor | None]:
        if not label_bytes:
            raise ApiError(422, "corrupt_image", "labels: the upload is empty (0 bytes)")
        try:
            open_image(label_bytes, settings.max_pixels, WEB_FORMATS).close()
        except ImageError as exc:
            raise with_field(exc, "labels") from exc
        label_map = labels_from_image(served.loaded, label_bytes, settings.max_pixels)
        style_img = None
        if style_bytes is not None:
            style_img = resize_to(
                decode_upload(style_bytes, "style", settings.max_pixels), settings.style_max_side
            )
        return label_map, style_img

    label_map, style_img = await run_in_threadpool(prepare)
    assert fn is not None
    job = engine.new_job(
        served.loaded,
        "synthesize",
        lambda: fn(served.loaded, label_map, style_img, used_seed),
        arrived(request),
    )
    out = await engine.run(job)
    data = await run_in_threadpool(encode_image, out, format, quality)
    return Response(
        data,
        media_type=MEDIA_TYPES[format],
        headers={
            "Cache-Control": "no-store",
            "X-Model": served.name,
            "X-Seed": str(used_seed),
        },
    )


generate_schema = GenerateRequest.model_json_schema()


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses=error_responses(400, 415, 503, 504),
    summary="Generate images of a class (cgan models)",
    description=(
        f"Body: JSON or a form with `model`, `class_name`, `count` (1..{MAX_GENERATE}), `seed`, "
        "`format`. "
        "Answers JSON: the images as base64 strings of image files (in `media_type`), in order, and the "
        "seed used (send it back to get the same images)."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": generate_schema},
                "application/x-www-form-urlencoded": {"schema": generate_schema},
            },
        }
    },
)
async def generate_endpoint(request: Request, state: StateDep) -> GenerateResponse:
    engine = state.engine
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            raw: Any = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from exc
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        raw = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    else:
        raise ApiError(415, "unsupported_media_type", "send the parameters as JSON or as a form")
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_parameters", "the body must be a JSON object")
    try:
        body = GenerateRequest.model_validate(raw)
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]]
        raise ApiError(422, "invalid_parameters", "; ".join(parts)) from None
    served = model_of_kind(state.registry, body.model, "generate", "cgan")
    from stylenorm.inference.synthesize import model_classes

    classes = model_classes(served.loaded)
    if body.class_name not in classes:
        shown = body.class_name if len(body.class_name) <= 80 else body.class_name[:80] + "…"
        raise ApiError(
            404,
            "unknown_class",
            f"model {served.name!r} has no class {shown!r}; its classes: {', '.join(classes)}",
        )
    fn = library_function("generate")
    assert fn is not None
    used_seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    job = engine.new_job(
        served.loaded,
        "generate",
        lambda: fn(served.loaded, body.class_name, body.count, used_seed),
        arrived(request),
    )
    out = await engine.run(job)

    def encode_all() -> list[str]:
        return [
            base64.b64encode(encode_image(out[i : i + 1], body.format)).decode() for i in range(out.shape[0])
        ]

    return GenerateResponse(
        model=served.name,
        class_name=body.class_name,
        seed=used_seed,
        media_type=MEDIA_TYPES[body.format],
        images=await run_in_threadpool(encode_all),
    )
