"""``stylenorm import …`` (published checkpoints -> model folders) and ``stylenorm export`` (ONNX)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylenorm.errors import SpecError

_MODELS_DIR_HELP = "model repository (default: the repository's models/)"
# the export check runs at a batch and size unlike the export sample (2 × 64 × 64), so frozen shapes show
CHECK_SHAPE = (3, 3, 44, 50)
CHECK_TOLERANCE = 1e-3


def _models_dir(args: argparse.Namespace) -> Path:
    from stylenorm.models import DEFAULT_MODELS_DIR

    return Path(args.models_dir) if args.models_dir else DEFAULT_MODELS_DIR


def _import_fast(args: argparse.Namespace) -> int:
    from stylenorm.importers import import_fast_neural_style

    folder = import_fast_neural_style(
        Path(args.weights), _models_dir(args), args.name, args.style_name, overwrite=args.overwrite
    )
    print(f"imported {args.weights} as model {args.name!r}: {folder}")
    return 0


def _import_adain(args: argparse.Namespace) -> int:
    from stylenorm.importers import import_pytorch_adain

    folder = import_pytorch_adain(
        Path(args.decoder), Path(args.vgg), _models_dir(args), args.name, overwrite=args.overwrite
    )
    print(f"imported {args.decoder} + {args.vgg} as model {args.name!r}: {folder}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from stylenorm.export import check_onnx, export_onnx
    from stylenorm.models import load

    if args.format != "onnx":  # argparse choices already refuse others; kept for direct callers
        raise SpecError(f"unknown export format {args.format!r}; supported: onnx")
    model = load(args.model, args.models_dir)
    paths = export_onnx(model, Path(args.out), opset=args.opset)
    for p in paths:
        print(f"wrote {p}")
    g = torch.Generator().manual_seed(0)
    sample: torch.Tensor | tuple[torch.Tensor, ...] = torch.rand(*CHECK_SHAPE, generator=g)
    if model.card.architecture == "adain":
        sample = (sample, torch.rand(1, 3, 40, 36, generator=g))
    worst = check_onnx(model, paths, sample)
    print(f"onnxruntime check at {CHECK_SHAPE}: max abs diff {worst:.3g}")
    if not worst <= CHECK_TOLERANCE:
        print(f"error: the ONNX export differs from the model by more than {CHECK_TOLERANCE}")
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``import fast-neural-style``, ``import pytorch-adain`` and ``export``."""
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

    for p in (fast, adain):
        p.add_argument("--models-dir", default=None, help=_MODELS_DIR_HELP)
        p.add_argument("--overwrite", action="store_true", help="replace a model folder of that name")

    exp = subparsers.add_parser("export", help="export a model to ONNX and check it with onnxruntime")
    exp.add_argument("--model", required=True, help="model name in --models-dir, or a model folder")
    exp.add_argument("--format", default="onnx", choices=["onnx"])
    exp.add_argument("--out", required=True, help="FILE.onnx (AdaIN also writes FILE.encoder.onnx)")
    exp.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    exp.add_argument("--models-dir", default=None, help=_MODELS_DIR_HELP)
    exp.set_defaults(func=_export)
