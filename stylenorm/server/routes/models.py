"""``GET /v1/models``, ``/v1/models/{name}`` and a named style's thumbnail."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.
import hashlib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from stylenorm.families import family_of
from stylenorm.families.base import test_pattern
from stylenorm.imageio import encode_image, load_image
from stylenorm.inference.stylize import resize_to
from stylenorm.server.engine import StyleRef, StylizeWork
from stylenorm.server.errors import ApiError
from stylenorm.server.registry import ServedModel
from stylenorm.server.responses import IMAGE_SCHEMA
from stylenorm.server.schemas import ModelDetail, ModelList, ModelSummary, UnavailableModel
from stylenorm.server.state import StateDep
from stylenorm.server.validation import stylize_options, unknown_style

router = APIRouter(prefix="/v1")
EXAMPLE_MAP = "example.png"  # in a spade model's folder: a label map to start painting from


def summary(served: ServedModel) -> dict[str, Any]:
    card = served.loaded.card
    return {
        "name": card.name,
        "architecture": card.architecture,
        "kind": served.kind,
        "description": card.description,
        "styles": list(card.styles),
    }


def from_gallery(served: ServedModel) -> bool:
    """Its named styles are images in its folder (else they live in the weights: multistyle)."""
    caps = family_of(served.loaded.card).capabilities(served.loaded.card)
    return bool(caps and caps.gallery)


def example_map(served: ServedModel) -> Path | None:
    """A synthesis model's example label map: ``example.png`` in its folder, painted in its palette."""
    path = served.loaded.folder / EXAMPLE_MAP
    return path if served.kind == "synthesize" and path.is_file() else None


def has_thumbnail(served: ServedModel, style: str) -> bool:
    return not from_gallery(served) or (served.loaded.folder / "styles" / f"{style}.png").is_file()


@router.get("/models", response_model=ModelList, summary="List the loaded and the unavailable models")
async def list_models(state: StateDep) -> ModelList:
    registry = state.registry
    return ModelList(
        ready=registry.ready,
        available=[
            ModelSummary(**summary(m)) for m in sorted(registry.models.values(), key=lambda m: m.name)
        ],
        unavailable=[UnavailableModel(name=n, reason=r) for n, r in sorted(registry.unavailable.items())],
    )


@router.get(
    "/models/{name}", response_model=ModelDetail, summary="One model: card, styles, contract, options"
)
async def model_detail(name: str, state: StateDep) -> ModelDetail:
    served = state.registry.get(name)
    card = served.loaded.card
    classes = palette = size = None
    if served.kind in ("synthesize", "generate"):
        from stylenorm.inference.synthesize import model_classes, model_palette, native_size

        classes, size = model_classes(served.loaded), list(native_size(served.loaded))
        palette = model_palette(served.loaded) if served.kind == "synthesize" else None
    return ModelDetail(
        **summary(served),
        contract=dict(card.contract),
        provenance=dict(card.provenance),
        license=card.license,
        arguments=dict(card.arguments),
        thumbnails={
            s: f"/v1/models/{card.name}/styles/{s}/thumbnail" for s in card.styles if has_thumbnail(served, s)
        },
        options=stylize_options(served) if served.kind in ("stylize", "optimise") else None,
        classes=classes,
        palette=palette,
        size=size,
        example=f"/v1/models/{card.name}/example" if example_map(served) else None,
    )


@router.get(
    "/models/{name}/styles/{style}/thumbnail",
    response_class=Response,
    responses={200: {"description": "a small PNG of the style", "content": {"image/png": IMAGE_SCHEMA}}},
    summary="A thumbnail of a named style (the gallery image, or the style applied to a test picture)",
)
async def thumbnail(name: str, style: str, request: Request, state: StateDep) -> Response:
    settings, engine, thumbnails = state.settings, state.engine, state.thumbnails
    served = state.registry.get(name)
    card = served.loaded.card
    if style not in card.styles:
        raise unknown_style(card, style)
    if not has_thumbnail(served, style):
        raise ApiError(404, "not_found", f"style {style!r} of {card.name!r} has no image")
    key = (card.name, style)
    data = thumbnails.get(key)
    if data is None:
        if not from_gallery(served):  # no gallery file: show the style on a test picture
            work = StylizeWork(content=test_pattern(settings.thumbnail_size), styles=[StyleRef(name=style)])
            image = await engine.run(engine.new_job(served.loaded, "stylize", work))
        else:
            # the path comes from the card's own style list (checked above), never from the request
            path = served.loaded.folder / "styles" / f"{card.styles[card.styles.index(style)]}.png"
            image = await run_in_threadpool(
                lambda: resize_to(load_image(path, settings.max_pixels), settings.thumbnail_size)
            )
        data = await run_in_threadpool(encode_image, image, "png")
        thumbnails[key] = data
        while len(thumbnails) > 512:
            thumbnails.popitem(last=False)
    return cached_png(data, request)


def cached_png(data: bytes, request: Request) -> Response:
    """A PNG that browsers may keep for an hour, revalidated by its ETag (304 when unchanged)."""
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"Cache-Control": "public, max-age=3600", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/png", headers=headers)


@router.get(
    "/models/{name}/example",
    response_class=Response,
    responses={
        200: {"description": "a label map PNG in the model's palette", "content": {"image/png": IMAGE_SCHEMA}}
    },
    summary="An example label map of a synthesis model, to start painting from",
)
async def example(name: str, request: Request, state: StateDep) -> Response:
    path = example_map(state.registry.get(name))
    if path is None:
        raise ApiError(404, "not_found", f"model {name!r} has no example label map")
    data = await run_in_threadpool(path.read_bytes)
    return cached_png(data, request)
