"""``stylenorm synthesize`` (label map -> image, spade models) and ``stylenorm generate`` (cgan models)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylenorm.errors import SpecError
from stylenorm.families import family_of, of_kind
from stylenorm.imageio import input_files, load_image, output_format, save_image
from stylenorm.models import load
from stylenorm.repository import MODELS_DIR_HELP
from stylenorm.runtime import resolve_device

_LABEL_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``synthesize`` and ``generate`` on the ``stylenorm`` command's subparsers."""
    p = subparsers.add_parser(
        "synthesize",
        help="synthesize images from semantic label maps with a spade model",
        description=(
            "Synthesize an image from a label map with a spade model. Label maps are index PNGs (pixel "
            "value = class index; for a model imported with a dataset layout, the dataset's own label "
            "files, e.g. ADE20K's value v = class v-1 with 0 don't-care, per the card's label_file) or "
            "PNGs colour-coded in the model's palette (see its card: classes, palette, size); a map of "
            "the model's aspect ratio is resized to its size. --style steers models trained with "
            "--use-vae."
        ),
    )
    p.add_argument("--model", required=True, help="model name (in --models-dir) or path to a model folder")
    p.add_argument("--labels", required=True, help="label-map PNG, or a folder of them")
    p.add_argument("--style", default=None, metavar="IMG", help="style image (models with an encoder only)")
    p.add_argument("--seed", type=int, default=None, help="seed of z (encoder models without --style)")
    p.add_argument("--out", required=True, help="output image (format from its extension), or a folder")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    p.set_defaults(func=run_synthesize)

    g = subparsers.add_parser(
        "generate",
        help="generate images of a class with a cgan model",
        description="Write N images of one class (names in the model's card) as OUT/<class>_<seed>_<i>.png.",
    )
    g.add_argument("--model", required=True, help="model name (in --models-dir) or path to a model folder")
    g.add_argument("--class", dest="class_name", required=True, metavar="NAME", help="class name")
    g.add_argument("--n", type=int, default=1, help="number of images (default 1)")
    g.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    g.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    g.set_defaults(func=run_generate)





def run_synthesize(args: argparse.Namespace) -> int:
    """``stylenorm synthesize``: one image per label map; returns the exit status."""
    from stylenorm.inference.synthesize import labels_from_image, synthesize

    files, folder = input_files(args.labels, _LABEL_SUFFIXES, "label map")
    out = Path(args.out)
    folder = folder or out.is_dir()
    if folder and out.exists() and not out.is_dir():
        raise SpecError(f"--labels is a folder, so --out must be a folder; {out} is a file")
    if not folder:
        output_format(out)  # an unknown extension fails before any work
    if args.seed is not None and args.seed < 0:
        raise SpecError(f"--seed must be ≥ 0; got {args.seed}")
    model = load(args.model, args.models_dir, resolve_device(args.device))
    if family_of(model.card).kind != "synthesize":
        wanted = " or ".join(of_kind("synthesize"))
        raise SpecError(
            f"stylenorm synthesize needs a {wanted} model; {model.card.name!r} is {model.card.architecture!r}"
        )
    style = load_image(args.style) if args.style is not None else None
    if style is not None and getattr(model.module, "encoder", None) is None:
        raise SpecError(
            f"--style needs a model with a style encoder (trained with --use-vae); {model.card.name!r} has "
            "none, so drop --style"
        )
    for path in files:
        labels = labels_from_image(model, path)
        image = synthesize(model, labels, style, args.seed)
        target = out / f"{path.stem}_{model.card.name}.png" if folder else out
        save_image(image, target, quality=args.quality)
        print(target)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """``stylenorm generate``: N images of a class into a folder; returns the exit status."""
    import secrets

    from stylenorm.inference.synthesize import MAX_GENERATE, generate

    if not 1 <= args.n <= MAX_GENERATE:
        raise SpecError(f"--n must be in 1..{MAX_GENERATE}; got {args.n}")
    if args.seed is not None and args.seed < 0:
        raise SpecError(f"--seed must be ≥ 0; got {args.seed}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out must be a folder; {out} is a file")
    model = load(args.model, args.models_dir, resolve_device(args.device))
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    images = generate(model, args.class_name, args.n, seed)
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in args.class_name) or "class"
    for i in range(images.shape[0]):
        target = out / f"{safe}_{seed}_{i:03d}.png"
        save_image(images[i : i + 1], target)
        print(target)
    if args.seed is None:
        print(f"seed {seed}")
    return 0
