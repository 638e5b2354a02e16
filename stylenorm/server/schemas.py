"""Pydantic schemas of the API's JSON bodies (requests and responses), as shown in OpenAPI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ImageFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_GENERATE = 16


class ErrorDetail(BaseModel):
    """What went wrong."""

    status: int = Field(description="the HTTP status, repeated")
    code: str = Field(description="a stable snake_case code, e.g. unknown_model, queue_full")
    message: str = Field(description="what was wrong and what would be right, for people")
    request_id: str | None = Field(
        None, description="the request's X-Request-ID (also on the server's log lines for it)"
    )


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class StylizeOptions(BaseModel):
    """Which /v1/stylize parameters a model takes."""

    named_styles: bool = Field(description="styles may be picked by name (the model's styles)")
    uploaded_styles: bool = Field(description="style images may be uploaded")
    max_styles: int | None = Field(description="most styles per request (None: any number)")
    min_styles: int = Field(description="fewest styles per request")
    weights: bool = Field(description="several styles may be mixed with weights")
    alpha: bool = Field(description="alpha (content 0 .. style 1) is taken")
    default_alpha: float = Field(1.0, description="the alpha a request without one gets (the model's own)")
    preserve_color: bool = Field(description="preserve_color is taken")
    masks: bool = Field(description="one mask per style may be uploaded")


class ModelSummary(BaseModel):
    """One loaded model, as listed."""

    name: str
    architecture: str
    kind: Literal["stylize", "optimise", "synthesize", "generate"] = Field(
        description="the endpoint that serves it"
    )
    description: str
    styles: list[str] = Field(description="named styles (gallery or multistyle rows)")


class UnavailableModel(BaseModel):
    """A model folder that was found but could not be served."""

    name: str = Field(description="the model (or folder) name")
    reason: str


class ModelList(BaseModel):
    """The response of GET /v1/models."""

    ready: bool = Field(description="loading has finished")
    available: list[ModelSummary]
    unavailable: list[UnavailableModel]


class ModelDetail(ModelSummary):
    """The response of GET /v1/models/{name}: its card, styles, contract and options."""

    model_config = ConfigDict(protected_namespaces=())

    contract: dict[str, Any]
    provenance: dict[str, Any]
    license: str = Field("", description="the weights' licence as the card records it ('': not recorded)")
    arguments: dict[str, Any]
    thumbnails: dict[str, str] = Field(description="style name -> thumbnail URL")
    options: StylizeOptions | None = Field(description="stylize options (stylize models only)")
    classes: list[str] | None = Field(None, description="class names (spade, cgan)")
    palette: list[list[int]] | None = Field(None, description="one RGB colour per class (spade)")
    size: list[int] | None = Field(None, description="label map size [H, W] (spade)")
    example: str | None = Field(
        None, description="URL of an example label map to start painting from (spade models that ship one)"
    )


class GenerateRequest(BaseModel):
    """The body of POST /v1/generate (JSON or form)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(None, description="a cgan model; default: the only one loaded")
    class_name: str = Field(description="one of the model's classes")
    count: int = Field(1, ge=1, le=MAX_GENERATE, description=f"images to generate, 1..{MAX_GENERATE}")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="random seed; default: a fresh one")
    format: ImageFormat = "png"


class GenerateResponse(BaseModel):
    """Generated images, base64-encoded, in order."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    class_name: str
    seed: int = Field(description="the seed used: send it back to get the same images")
    media_type: str
    images: list[str] = Field(description="base64 of each image file")


class Health(BaseModel):
    """Liveness / readiness."""

    status: str
    models_loaded: int
    models_unavailable: int
    queue_depth: int
    version: str = Field(description="the stylenorm version serving")
