"""``stylenorm stylize`` (an image or a folder, any model family) and ``stylenorm models`` (the list)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from stylenorm.errors import SpecError
from stylenorm.families import family_of
from stylenorm.imageio import (
    IMAGE_SUFFIXES,
    input_files,
    load_image,
    load_mask,
    output_format,
    resize_mask,
    save_image,
)
from stylenorm.inference.stylize import StyleCache, UnknownStyle, resize_to, stylize
from stylenorm.models import LoadedModel, load
from stylenorm.nets.optimise import OptimiseOptions
from stylenorm.nets.tiling import MIN_TILE
from stylenorm.repository import MODELS_DIR_HELP, models_dir, read_card, scan
from stylenorm.runtime import resolve_device

DEFAULT_MAX_UNTILED = 16_000_000  # above this many content pixels the command tiles by itself


def _style_arg(model: LoadedModel, value: str, size: int | None) -> object:
    """A style file, or a name of the model's gallery (kept as a name: stylize loads styles/<name>.png)."""
    if Path(value).is_file():
        return resize_to(load_image(value), size)
    if value in model.card.styles:
        return value
    known = ", ".join(model.card.styles) or "none"
    raise UnknownStyle(f"{value!r} is neither an image file nor a style of {model.card.name!r} ({known})")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``stylize`` and ``models`` on the ``stylenorm`` command's subparsers."""
    p = subparsers.add_parser(
        "stylize",
        help="stylize an image or a folder of images with a model from the repository",
        description=(
            "Stylize with any repository model. fast: no --style; multistyle: --style NAME ... "
            "(names from the model's card, mixed by --style-weights); adain: --style IMAGE ... with "
            "--style-weights or --mask, --alpha, --preserve-color; optimise (Gatys et al.): --style IMAGE "
            "... with --style-weights or --mask, --preserve-color, --iterations; color: one --style "
            "IMAGE, --alpha. "
            "Options a model does not support are errors. Large images run in exact tiles."
        ),
    )
    p.add_argument("--model", required=True, help="model name (in --models-dir) or path to a model folder")
    p.add_argument("--content", required=True, help="content image, or a folder of them")
    p.add_argument(
        "--style",
        nargs="+",
        action="extend",
        default=None,
        metavar="IMG_OR_NAME",
        help="style images (adain, color) or style names (multistyle)",
    )
    p.add_argument(
        "--style-weights",
        nargs="+",
        action="extend",
        type=float,
        default=None,
        metavar="W",
        help="one weight per style, normalized to sum 1 (mixing)",
    )
    p.add_argument(
        "--alpha", type=float, default=None,
        help="content (0) to full style (1); adain, wct, color (default: the model's own, else 1)",
    )
    p.add_argument(
        "--preserve-color",
        action="store_true",
        help="keep the content's colours (adain: CORAL on the styles; fast, multistyle: "
        "luminance-only transfer)",
    )
    p.add_argument(
        "--mask",
        nargs="+",
        action="extend",
        default=None,
        metavar="M",
        help="one grayscale mask per style, the content's size: each style in its region (adain)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        metavar="S",
        help="bound the content's longer side to S pixels (never upscales; masks follow)",
    )
    p.add_argument(
        "--style-size",
        type=int,
        default=None,
        metavar="S",
        help="bound the style images' longer side to S pixels",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="PX",
        help=f"compute in exact tiles of PX pixels (>= {MIN_TILE}): same result, less memory",
    )
    p.add_argument(
        "--max-untiled-pixels",
        type=int,
        default=DEFAULT_MAX_UNTILED,
        metavar="N",
        help="tile automatically above N content pixels (default %(default)s)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--half", action="store_true", help="float16 autocast (cuda only)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    g = p.add_argument_group("optimise models (Gatys et al.: the pixels are optimised, no trained net)")
    g.add_argument(
        "--iterations",
        type=int,
        default=None,
        metavar="N",
        help=f"optimisation steps (default {OptimiseOptions.iterations}; seconds each on a CPU)",
    )
    g.add_argument(
        "--style-loss",
        choices=("gram", "mean_std"),
        default=None,
        help="match Gram matrices (Gatys et al., default) or per-channel mean and std",
    )
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default=None, help="default lbfgs")
    g.add_argument(
        "--style-weight",
        type=float,
        default=None,
        metavar="W",
        help=f"style against content (content 1; default {OptimiseOptions.style_weight})",
    )
    p.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    p.add_argument(
        "--out",
        required=True,
        help="output file (format from its extension), or a folder when --content is a folder",
    )
    p.set_defaults(func=run_stylize)

    m = subparsers.add_parser("models", help="list the models of the repository (and the broken ones)")
    m.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    m.set_defaults(func=run_models)


def _optimise_options(args: argparse.Namespace, model: LoadedModel) -> OptimiseOptions | None:
    """OptimiseOptions from the flags for an optimise model; those flags for another model are an error."""
    given = {
        key: value
        for key, value in (
            ("iterations", args.iterations),
            ("style_loss", args.style_loss),
            ("optimizer", args.optimizer),
            ("style_weight", args.style_weight),
        )
        if value is not None
    }
    if family_of(model.card).needs_gradients:
        return OptimiseOptions(**given)
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise SpecError(
            f"{flags}: only for optimise models; {model.card.name!r} is {model.card.architecture}"
        )
    return None


def _progress_bar(label: str) -> Callable[[int, int, float], None]:
    """A progress(i, n, loss) callback drawing a tqdm bar on stderr."""
    bar: list[tqdm] = []

    def progress(i: int, n: int, loss: float) -> None:
        if not bar:
            bar.append(tqdm(total=n, desc=label, unit="it", leave=False))
        bar[0].update(1)
        bar[0].set_postfix(loss=f"{loss:.3g}")
        if i == n:
            bar[0].close()

    return progress


def run_stylize(args: argparse.Namespace) -> int:
    """``stylenorm stylize``: write one stylized image per content image; returns the exit status."""
    contents, folder = input_files(args.content, IMAGE_SUFFIXES, "content image")
    out = Path(args.out)
    folder = folder or out.is_dir()  # one content into an existing folder: named as for a folder
    if folder:
        if out.exists() and not out.is_dir():
            raise SpecError(f"--content is a folder, so --out must be a folder; {out} is a file")
        stems = [p.stem for p in contents]
        twins = sorted({s for s in stems if stems.count(s) > 1})
        if twins:
            raise SpecError(
                f"contents named {', '.join(twins)} exist in several formats and would share an output name"
            )
    else:
        output_format(out)  # an unknown extension fails before any work
    if args.tile is not None and args.tile < MIN_TILE:
        raise SpecError(f"--tile must be at least {MIN_TILE} pixels; got {args.tile}")
    model = load(args.model, args.models_dir, resolve_device(args.device))
    optimise = _optimise_options(args, model)
    caps = family_of(model.card).capabilities(model.card)
    if caps is not None and not caps.uploaded_styles:  # names (fast takes none: stylize says so)
        if args.style_size is not None:
            raise SpecError(f"--style-size resizes style images; {model.card.architecture} models take none")
        styles: list = list(args.style or [])
    else:  # style images, bounded like the content
        styles = [_style_arg(model, s, args.style_size) for s in args.style or []]
    alpha = args.alpha if args.alpha is not None else (caps.default_alpha if caps is not None else 1.0)
    cache = StyleCache()  # a folder of contents encodes each style once
    for path in contents:
        content = load_image(path)
        size = tuple(content.shape[2:])
        masks = [load_mask(m, size=size) for m in args.mask] if args.mask else None
        content = resize_to(content, args.size)
        if masks is not None:
            masks = [resize_mask(mk, tuple(content.shape[2:])) for mk in masks]
        extra = {} if optimise is None else {"optimise": optimise, "progress": _progress_bar(path.name)}
        result = stylize(
            model,
            content,
            styles,
            args.style_weights,
            alpha,
            args.preserve_color,
            masks,
            args.tile,
            None if optimise else args.max_untiled_pixels,
            cache=cache,
            half=args.half,
            **extra,
        )
        target = out / f"{path.stem}_{model.card.name}.png" if folder else out
        save_image(result, target, quality=args.quality)
        print(target)
    return 0


def run_models(args: argparse.Namespace) -> int:
    """``stylenorm models``: every model (name, architecture, styles, description), then the broken ones."""
    root = models_dir(args.models_dir)
    found, broken = scan(root, verify=True)  # weights checked too, as the server does when loading
    if not found and not broken:
        print(f"no models in {root}")
        return 0
    rows = []
    for name, folder in found.items():
        card = read_card(folder)
        rows.append((name, card.architecture, ", ".join(card.styles) or "-", card.description or "-"))
    if rows:
        header = ("NAME", "ARCHITECTURE", "STYLES", "DESCRIPTION")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        for r in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    if broken:
        print(f"\nbroken models ({len(broken)}):")
        for folder_name, error in broken.items():
            print(f"  {folder_name}: {error}")
    return 0
