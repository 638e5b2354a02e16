"""Checks of a stylize request against what its model's family takes, before anything is decoded."""

from __future__ import annotations

from fastapi import Request

from stylenorm.families import family_of
from stylenorm.repository import ModelCard
from stylenorm.server.errors import ApiError
from stylenorm.server.registry import ServedModel
from stylenorm.server.schemas import StylizeOptions
from stylenorm.server.uploads import check_weights


def arrived(request: Request) -> float | None:
    """When the request's body was in (monotonic): its deadline counts from there, not from the upload's
    start (the first header byte, set by the metrics middleware, when the body time is unknown)."""
    return request.scope.get("stylenorm.body_complete") or request.scope.get("stylenorm.arrived")


def unknown_style(card: ModelCard, name: str) -> ApiError:
    """The 404 of a style name the model does not have (the name shortened, the valid ones listed)."""
    shown = name if len(name) <= 80 else name[:80] + "…"
    return ApiError(
        404,
        "unknown_style",
        f"model {card.name!r} has no style {shown!r}; its styles: {', '.join(card.styles)}",
    )


def stylize_options(served: ServedModel) -> StylizeOptions:
    """What /v1/stylize (or /v1/optimise) takes for this model, as its family says (the web page builds
    its controls from it)."""
    caps = family_of(served.loaded.card).capabilities(served.loaded.card)
    assert caps is not None, "only stylize and optimise models have options"
    return StylizeOptions(
        named_styles=caps.named_styles,
        uploaded_styles=caps.uploaded_styles,
        max_styles=caps.max_styles,
        min_styles=caps.min_styles,
        weights=caps.weights,
        alpha=caps.alpha,
        default_alpha=caps.default_alpha,
        preserve_color=caps.preserve_color,
        masks=caps.masks,
    )


def check_stylize(
    served: ServedModel,
    uploads: int,
    names: list[str],
    weights: list[float] | None,
    alpha: float,
    preserve_color: bool,
    masks: int,
) -> list[float] | None:
    """Refuse what the model does not take (422) and unknown style names (404), before any decoding."""
    card = served.loaded.card
    arch, opts = card.architecture, stylize_options(served)
    gallery = bool((caps := family_of(card).capabilities(card)) and caps.gallery)
    total = uploads + len(names)
    bad = "invalid_parameters"
    if uploads and not opts.uploaded_styles:
        what = "take style names (styles=…)" if opts.named_styles else "have their style built in"
        raise ApiError(422, bad, f"{arch} models {what}; they take no uploaded style images")
    if names and not opts.named_styles:
        raise ApiError(
            422,
            bad,
            f"model {card.name!r} has no named styles; upload a style image instead"
            if opts.uploaded_styles
            else f"{arch} models have their style built in; send no style",
        )
    for n in names:
        if n not in card.styles:
            raise unknown_style(card, n)
        # a gallery family's named styles are images; the name was checked against the card above
        if gallery and not (served.loaded.folder / "styles" / f"{n}.png").is_file():
            raise ApiError(404, "unknown_style", f"style {n!r} of model {card.name!r} has no gallery image")
    if total < opts.min_styles:
        raise ApiError(
            422,
            bad,
            f"{arch} model {card.name!r} needs at least {opts.min_styles} style "
            f"(upload style files or name styles: {', '.join(card.styles) or 'none'})",
        )
    if opts.max_styles is not None and total > opts.max_styles:
        raise ApiError(422, bad, f"{arch} models take at most {opts.max_styles} style(s); got {total}")
    if weights and not opts.weights:
        raise ApiError(422, bad, f"{arch} models take no style weights")
    checked = check_weights(weights, total)
    if alpha != 1.0 and not opts.alpha:
        raise ApiError(422, bad, f"{arch} models take no alpha (it must be 1)")
    if preserve_color and not opts.preserve_color:
        raise ApiError(422, bad, f"{arch} models take no preserve_color")
    if masks:
        if not opts.masks:
            raise ApiError(422, bad, f"{arch} models take no masks")
        if masks != total:
            raise ApiError(422, bad, f"need one mask per style: {total} styles, {masks} masks")
        if checked is not None:
            raise ApiError(
                422, bad, "give weights or masks, not both: masks already decide each style's share"
            )
    return checked
