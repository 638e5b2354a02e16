"""Import published checkpoints of the two reference implementations into model folders.

* pytorch/examples ``fast_neural_style`` (``candy.pth``, ``mosaic.pth`` … or a
  newly trained ``.model``): a plain TransformerNet state dict on [0, 255]
  pixels with a linear output. The published files also carry pre-0.4
  ``in*.running_mean/var`` buffers that the net never used: they are dropped
  and everything else must fit exactly.
* naoto0804/pytorch-AdaIN: ``decoder.pth`` and ``vgg_normalised.pth``; the
  encoder keeps the layers up to relu4_1 and the AdaIN layer uses the port's
  convention (unbiased variance + ε for content and style), so our outputs
  equal the port's.
* NVlabs/SPADE: ``latest_net_G.pth``, the generator (legacy spectral-norm
  ``weight_orig``/``weight_u``/``weight_v``, sync-BN buffers under
  ``param_free_norm.``) renamed to :class:`~stylenorm.nets.spade.SPADEGenerator`'s
  keys; in eval mode the outputs equal the official generator's. A dataset
  layout (``ade20k``, ``cityscapes``, ``coco-stuff``: :mod:`stylenorm.data.layouts`)
  sets the label channels, the generator's size, class names, palette and the
  card's ``label_file``, so the dataset's own label PNGs synthesize correctly.

Files are read with ``torch.load(weights_only=True)``: tensors only, never
pickled code. The result is a ``models/<name>/`` folder (card + safetensors)
that :func:`stylenorm.models.load` reads like any trained model.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stylenorm.data.layouts import (
    LAYOUT_PRESETS,
    DatasetLayout,
    default_palette,
    get_layout,
    label_file,
    layouts_with_channels,
)
from stylenorm.errors import MissingWeightsError
from stylenorm.models import weights_to_save
from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder
from stylenorm.nets.spade import SPECTRAL_KEYS, UPSAMPLINGS, SPADEGenerator
from stylenorm.repository import CARD, ModelCard, ModelError, check_name, save_model

# pre-0.4 InstanceNorm2d saved running buffers it never used; pytorch/examples deletes them the same way
LEGACY_IN_KEY = re.compile(r"(^|\.)in\d+\.running_(mean|var)$")
FAST_ARGUMENTS: dict[str, Any] = {"norm": "instance", "pixel_scale": 255.0, "output": "linear"}
ADAIN_ARGUMENTS: dict[str, Any] = {
    "encoder": {"fmt": "normalised", "depth": 19, "last": "relu4_1", "seed": 0},
    "eps": 1e-5,
    "unbiased": True,
}
_VGG_NORMALISED_CONVS = (0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)
_WRAPPER_KEYS = ("state_dict", "model")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: Path, what: str = "checkpoint") -> dict[str, Tensor]:
    """A plain {key: tensor} state dict from a .pth file, loaded with weights_only (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"{what} {path} not found; give the path of the downloaded .pth file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))  # torch names the class or function it refused
        what = f" ({found.group(1)})" if found else ""
        raise ModelError(
            f"refused to load {path}: it holds Python objects other than tensors{what}, and only plain "
            f"state dicts are imported (torch.load weights_only=True never runs pickled code). "
            f"Re-save just the weights, torch.save(model.state_dict(), file), and import that"
        ) from exc
    except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError … for non-checkpoints
        raise ModelError(
            f"{path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {exc}); "
            f"expected a .pth file written by torch.save(state_dict)"
        ) from exc
    for key in _WRAPPER_KEYS:  # training scripts often wrap the weights with optimizer state etc.
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    not_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise ModelError(f"{path}: entries that are not tensors: {_some(not_tensors)}; expected a state dict")
    return {str(k): v for k, v in obj.items()}


def strip_legacy_instance_norm_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the ``in<k>.running_mean/var`` buffers old (pre-0.4) InstanceNorm2d layers saved."""
    return {k: v for k, v in state.items() if not LEGACY_IN_KEY.search(k)}


def _some(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" … ({len(keys)} in all)" if len(keys) > limit else "")


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: Path, what: str) -> None:
    """Load state into module, all keys and shapes exactly; a ModelError names what does not fit."""
    wanted = module.state_dict()
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(wanted[k].shape)})"
        for k in set(wanted) & set(state)
        if state[k].shape != wanted[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_some(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_some(wrong)}")
    if problems:
        raise ModelError(f"{source} is not a {what}: {'; '.join(problems)}")
    module.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)


def _target(models_dir: Path, name: str, overwrite: bool) -> Path:
    folder = Path(models_dir) / check_name(name)
    if (folder / CARD).exists() and not overwrite:
        raise ModelError(f"model folder {folder} already exists; choose another --name or remove it first")
    return folder


def _style_name(pth: Path, style_name: str | None) -> str:
    if style_name is not None:
        return check_name(style_name)
    # file stems like "Mosaic" or "epoch_2_Sat_Feb.model" are made into valid names
    stem = re.sub(r"[^a-z0-9._-]+", "-", pth.stem.lower()).strip("-._")[:64]
    return stem or "style"


# The licences the sources publish their weights under (recorded in the card; --license overrides, e.g.
# for weights someone retrained). Check the terms of the file you actually have.
FAST_LICENSE = "BSD-3-Clause (pytorch/examples, the repository the weights come from)"
ADAIN_LICENSE = "MIT (naoto0804/pytorch-AdaIN)"
SPADE_LICENSE = "CC-BY-NC-SA-4.0 (NVlabs/SPADE: non-commercial use only)"


def import_fast_neural_style(
    pth: Path,
    models_dir: Path,
    name: str,
    style_name: str | None = None,
    *,
    overwrite: bool = False,
    license: str = FAST_LICENSE,
) -> Path:
    """pytorch/examples fast_neural_style .pth -> models_dir/name (architecture ``fast``); returns the folder.

    The net keeps the original's numbers: input RGB [0, 1] is scaled to
    [0, 255] inside, the linear output is divided by 255 and clamped to
    [0, 1], and the output has the input's size.
    """
    pth = Path(pth)
    folder = _target(models_dir, name, overwrite)
    style = _style_name(pth, style_name)
    state = strip_legacy_instance_norm_keys(read_checkpoint(pth, "fast-neural-style weights"))
    net = TransformerNet(**FAST_ARGUMENTS)
    load_strict(net, state, pth, "pytorch/examples fast_neural_style TransformerNet state dict")
    card = ModelCard(
        name=name,
        architecture="fast",
        arguments=dict(FAST_ARGUMENTS),
        styles=[style],
        provenance={
            "source": pth.name,
            "source_sha256": file_sha256(pth),
            "note": "imported from pytorch/examples fast_neural_style",
        },
        description=f"fast neural style '{style}' (Johnson et al. 2016, instance norm), from {pth.name}",
        license=license,
    )
    save_model(folder, card, weights_to_save(card, net))
    return folder


def _vgg_normalised_state(vgg: Path, encoder: VGGEncoder) -> dict[str, Tensor]:
    """The keys of vgg_normalised.pth that the encoder (to relu4_1) uses, as ``<index>.weight/bias``."""
    state = read_checkpoint(vgg, "vgg_normalised weights")
    known = {f"{i}.{p}" for i in _VGG_NORMALISED_CONVS for p in ("weight", "bias")}
    unexpected = sorted(set(state) - known)
    if unexpected:
        raise ModelError(
            f"{vgg} is not pytorch-AdaIN's vgg_normalised.pth (keys 0.weight … 51.bias): "
            f"unexpected keys {_some(unexpected)}"
        )
    wanted = encoder.features.state_dict()
    return {k: v for k, v in state.items() if k in wanted}  # layers past relu4_1 are not needed


def import_pytorch_adain(
    decoder: Path,
    vgg: Path,
    models_dir: Path,
    name: str,
    *,
    overwrite: bool = False,
    license: str = ADAIN_LICENSE,
) -> Path:
    """pytorch-AdaIN decoder.pth + vgg_normalised.pth -> models_dir/name (architecture ``adain``)."""
    decoder, vgg = Path(decoder), Path(vgg)
    folder = _target(models_dir, name, overwrite)
    encoder = VGGEncoder(**ADAIN_ARGUMENTS["encoder"])
    net = AdaINNet(encoder, eps=ADAIN_ARGUMENTS["eps"], unbiased=ADAIN_ARGUMENTS["unbiased"])
    load_strict(
        net.encoder.features,
        _vgg_normalised_state(vgg, encoder),
        vgg,
        "vgg_normalised.pth with the layers up to relu4_1 (keys 0 … 29)",
    )
    load_strict(
        net.decoder,
        read_checkpoint(decoder, "AdaIN decoder weights"),
        decoder,
        "pytorch-AdaIN decoder state dict (18 keys, 1.weight … 28.bias)",
    )
    card = ModelCard(
        name=name,
        architecture="adain",
        arguments={k: (dict(v) if isinstance(v, dict) else v) for k, v in ADAIN_ARGUMENTS.items()},
        provenance={
            "decoder": decoder.name,
            "decoder_sha256": file_sha256(decoder),
            "vgg": vgg.name,
            "vgg_sha256": file_sha256(vgg),
            "note": "imported from naoto0804/pytorch-AdaIN (its AdaIN convention: unbiased var + eps)",
        },
        description=f"AdaIN arbitrary style transfer (Huang & Belongie 2017) from {decoder.name}, {vgg.name}",
        license=license,
    )
    save_model(folder, card, weights_to_save(card, net))
    return folder


def make_optimisation_model(
    models_dir: Path,
    name: str,
    *,
    encoder: str = "hed",
    encoder_weights: Path | None = None,
    last: str = "relu4_1",
    overwrite: bool = False,
    license: str | None = None,
) -> Path:
    """A Gatys optimisation model folder (architecture ``optimise``): the pretrained VGG up to ``last``,
    stored in float16 (what serving needs, so no other package is), with the encoder's provenance."""
    from stylenorm.nets import load_vgg_weights
    from stylenorm.nets.optimise import OptimisationModel
    from stylenorm.nets.vgg import encoder_provenance
    from stylenorm.repository import state_dtype

    if encoder == "random":
        raise ModelError(
            "an optimisation model needs pretrained encoder weights (hed, torchvision); not random"
        )
    folder = _target(models_dir, name, overwrite)
    depth = 16 if encoder == "hed" else 19
    vgg = load_vgg_weights(VGGEncoder(depth=depth, last=last, fmt=encoder), encoder_weights)
    model = OptimisationModel(vgg)
    spec = {"fmt": encoder, "depth": depth, "last": last, "seed": 0}
    provenance = encoder_provenance(encoder, depth, encoder_weights)
    card = ModelCard(
        name=name,
        architecture="optimise",
        arguments={"encoder": spec},
        provenance={
            "encoder": provenance,
            "weights_dtype": "float16",
            "note": "no training: Gatys et al. 2016 optimise the pixels against this encoder",
        },
        contract={
            "input": "RGB float in [0, 1], (1, 3, H, W)",
            "output": "same",
            "style": "style images, RGB float in [0, 1]",
        },
        description=f"Style transfer by optimisation (Gatys et al. 2016) with the VGG-{depth} {encoder} "
        "encoder: any style, slow (seconds to minutes per image).",
        license=license or provenance.get("license", ""),
    )
    save_model(folder, card, state_dtype(weights_to_save(card, model), torch.float16))
    return folder


_PARAM_FREE = ".param_free_norm."


def _layout_hint(layouts: list[DatasetLayout] | None = None) -> str:
    """The presets (all, or those given) as flags, for errors about the checkpoint's label channels."""
    chosen = list(LAYOUT_PRESETS.values()) if layouts is None else layouts
    return "; ".join(f"--layout {p.name} ({p.title}: {p.flags()}, {p.semantic_nc} channels)" for p in chosen)


def spade_key_from_official(key: str) -> str:
    """An NVlabs/SPADE generator key -> ours (spectral-norm parametrization, flat norm buffers)."""
    for ours, theirs in SPECTRAL_KEYS:
        if key.endswith("." + theirs):
            return key[: -len(theirs)] + ours
    return key.replace(_PARAM_FREE, ".")


def read_class_names(path: str | Path, n: int) -> list[str]:
    """A JSON list of n distinct class names (or {"classes": [...]}) from path."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"class file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"class file {path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("classes")
    if not isinstance(data, list) or not all(isinstance(c, str) and c for c in data):
        raise ModelError(f"class file {path} must hold a JSON list of class names")
    if len(data) != n or len(set(data)) != n:
        raise ModelError(f"class file {path} must name {n} distinct classes (label_nc); it has {len(data)}")
    return list(data)


def _spade_shape_checks(
    state: Mapping[str, Tensor],
    pth: Path,
    semantic_nc: int,
    parts: str,
    ngf: int | None,
    upsampling: str,
    layout: DatasetLayout | None = None,
) -> int:
    """Clear errors for the settings a checkpoint contradicts (before the key-by-key comparison); returns
    ngf (the checkpoint's when ngf is None)."""
    fc = state.get("fc.weight")
    if fc is None:
        raise ModelError(
            f"{pth} is not a SPADE generator state dict: it has no fc.weight (keys: {_some(sorted(state))})"
        )
    if fc.dim() == 2:
        raise ModelError(
            f"{pth} is a --use_vae generator (fc is a Linear layer on z): importing it needs its encoder "
            "net_E as well, which is not supported; import a generator trained without the VAE"
        )
    channels = int(fc.shape[1])
    if channels != semantic_nc and layout is not None:
        fits = layouts_with_channels(channels)
        advice = (
            f"it fits {_layout_hint(fits)}"
            if fits
            else f"no dataset layout has {channels} channels: import it without --layout, with --label-nc, "
            "--contain-dontcare and --no-instance to match"
        )
        raise ModelError(
            f"{pth} takes {channels} label channels, but layout {layout.name} ({layout.title}) gives "
            f"{parts} = {semantic_nc}: this checkpoint was not trained on {layout.title}'s layout; {advice}"
        )
    if channels != semantic_nc:
        raise ModelError(
            f"{pth} takes {channels} label channels, but {parts} = {semantic_nc}; set --label-nc, "
            f"--contain-dontcare and --no-instance to match, or use a dataset layout ({_layout_hint()})"
        )
    if ngf is None:
        ngf = int(fc.shape[0]) // 16
    if fc.shape[0] != 16 * ngf:
        raise ModelError(
            f"{pth} has ngf {fc.shape[0] // 16} (fc has {fc.shape[0]} outputs); use --ngf {fc.shape[0] // 16}"
        )
    has_up4 = any(k.startswith("up_4.") for k in state)
    if has_up4 != (upsampling == "most"):
        wanted = "most" if has_up4 else "normal (or more)"
        raise ModelError(
            f"{pth} was trained with num_upsampling_layers {wanted}; use "
            f"--num-upsampling-layers {wanted.split()[0]}"
        )
    return ngf


def import_spade(
    pth: Path,
    models_dir: Path,
    name: str,
    label_nc: int | None = None,
    *,
    layout: str | None = None,
    ngf: int | None = None,
    num_upsampling_layers: str | None = None,
    crop_size: int | None = None,
    aspect_ratio: float | None = None,
    use_instance: bool | None = None,
    contain_dontcare: bool | None = None,
    norm: str = "spade:sync_batch:3x3",
    classes: list[str] | None = None,
    overwrite: bool = False,
    license: str = SPADE_LICENSE,
) -> Path:
    """NVlabs/SPADE ``latest_net_G.pth`` -> models_dir/name (architecture ``spade``); returns the folder.

    ``layout`` (``ade20k``, ``cityscapes``, ``coco-stuff``) presets what the
    official release of that dataset was trained with: label_nc, the
    don't-care and instance channels, crop size, aspect ratio and upsampling
    layers, the class names and palette, and the label-file convention the
    card records (``layout``, ``label_file``), so that the dataset's label
    PNGs read correctly at synthesis (ADE20K: file value v is class v − 1,
    0 is don't-care). Arguments given explicitly override the preset.

    Without a layout, label_nc is required and the label channels are label_nc
    one-hot classes (+1 don't-care if ``contain_dontcare``) (+1 instance
    edges, last, if ``use_instance``, the official default), and a label
    PNG's pixel value is the class. ngf (None: the checkpoint's), hidden width
    and spectral norm are read from the checkpoint; ``norm`` must have the
    checkpoint's statistics (``spade:sync_batch:3x3`` for the official
    ``spectralspadesyncbatch3x3``, ``spade:instance:3x3`` for
    ``spadeinstance3x3``). The card names the classes ``class_0`` … unless
    ``classes`` are given (or the layout's) and gives them a deterministic
    distinct palette (or the layout's).
    """
    pth = Path(pth)
    folder = _target(models_dir, name, overwrite)
    preset = get_layout(layout) if layout is not None else None
    if preset is None and label_nc is None:
        raise ModelError(
            "give label_nc (the number of classes, --label-nc) or a dataset layout (--layout "
            "ade20k|cityscapes|coco-stuff)"
        )
    if preset is not None:
        label_nc = preset.label_nc if label_nc is None else label_nc
        use_instance = preset.use_instance if use_instance is None else use_instance
        contain_dontcare = preset.contain_dontcare if contain_dontcare is None else contain_dontcare
        num_upsampling_layers = num_upsampling_layers or preset.num_upsampling_layers
        crop_size = preset.crop_size if crop_size is None else crop_size
        aspect_ratio = preset.aspect_ratio if aspect_ratio is None else aspect_ratio
    assert label_nc is not None
    use_instance = True if use_instance is None else use_instance
    contain_dontcare = False if contain_dontcare is None else contain_dontcare
    num_upsampling_layers = num_upsampling_layers or "normal"
    crop_size = 256 if crop_size is None else crop_size
    aspect_ratio = 1.0 if aspect_ratio is None else aspect_ratio
    if label_nc < 1:
        raise ModelError(f"label_nc must be positive; got {label_nc}")
    if num_upsampling_layers not in UPSAMPLINGS:
        raise ModelError(
            f"num_upsampling_layers must be one of {', '.join(UPSAMPLINGS)}; got {num_upsampling_layers!r}"
        )
    same_classes = preset is not None and label_nc == preset.label_nc
    if classes is not None:
        names = list(classes)
    elif preset is not None and same_classes:
        names = list(preset.classes)
    elif preset is not None:
        raise ModelError(
            f"label_nc {label_nc} is not layout {preset.name}'s {preset.label_nc} classes, whose names it "
            f"would set; give {label_nc} class names (--classes) or drop --label-nc"
        )
    else:
        names = [f"class_{i}" for i in range(label_nc)]
    if len(names) != label_nc or len(set(names)) != label_nc:
        raise ModelError(f"give {label_nc} distinct class names (label_nc); got {len(names)}")
    official = read_checkpoint(pth, "SPADE generator weights (latest_net_G.pth)")
    semantic_nc = label_nc + int(contain_dontcare) + int(use_instance)
    parts = (
        f"label_nc {label_nc}"
        + (" + 1 don't-care" if contain_dontcare else "")
        + (" + 1 instance-edge channel" if use_instance else "")
    )
    ngf = _spade_shape_checks(official, pth, semantic_nc, parts, ngf, num_upsampling_layers, preset)
    hidden_key = "head_0.norm_0.mlp_shared.0.weight"
    hidden = int(official[hidden_key].shape[0]) if hidden_key in official else 128
    spectral = "head_0.conv_0.weight_orig" in official
    arguments: dict[str, Any] = {
        "label_nc": label_nc,
        "ngf": ngf,
        "z_dim": 256,
        "num_upsampling_layers": num_upsampling_layers,
        "crop_size": crop_size,
        "aspect_ratio": aspect_ratio,
        "norm": norm,
        "use_vae": False,
        "hidden": hidden,
        "contain_dontcare": contain_dontcare,
        "use_instance": use_instance,
        "spectral": spectral,
    }
    net = SPADEGenerator(**arguments)
    state = {spade_key_from_official(k): v for k, v in official.items()}
    theirs_batch = any(k.endswith(_PARAM_FREE + "running_mean") for k in official)
    ours_batch = any(k.endswith(".running_mean") for k in net.state_dict())
    if theirs_batch != ours_batch:
        hint = (
            (
                "it normalizes with batch statistics (param_free_norm running_mean/var): use --norm "
                "spade:sync_batch:3x3 (or spade:batch:3x3)"
            )
            if theirs_batch
            else (
                "it has no running statistics, so its SPADE layers use instance statistics: use --norm "
                "spade:instance:3x3"
            )
        )
        raise ModelError(f"{pth} does not fit --norm {norm}: {hint}")
    load_strict(net, state, pth, f"NVlabs/SPADE generator ({norm}, {parts}, ngf {ngf})")
    h, w = net.out_size
    dontcare = f" ({label_nc} = don't-care)" if contain_dontcare else ""
    palette = [list(c) for c in preset.palette] if preset and same_classes else default_palette(label_nc)
    contract: dict[str, Any] = {
        "classes": names,
        "palette": palette,
        "size": [h, w],
        "input": f"label map (1, H, W) of class indices 0..{label_nc - 1}{dontcare}, or an index / "
        "palette-coloured PNG",
        "output": "RGB float in [0, 1], (N, 3, H, W)",
    }
    note = (
        "imported from NVlabs/SPADE; class k is channel k of the official one-hot (ADE20K: "
        "file label k+1, file label 0 is don't-care; COCO-Stuff and Cityscapes: file label k)"
    )
    if preset is not None:
        convention = label_file(label_nc, contain_dontcare, preset.label_shift)  # the preset's, or overridden
        contract["layout"] = preset.name
        contract["label_file"] = convention.card()
        contract["input"] = (
            f"label map (1, H, W) of class indices 0..{label_nc - 1}{dontcare}, a {preset.title} label "
            f"PNG ({convention.describe(label_nc)}) or a palette-coloured PNG"
        )
        note = (
            f"imported from NVlabs/SPADE with the {preset.title} layout; class names: {preset.source}; "
            f"label files: {convention.describe(label_nc)}"
        )
    card = ModelCard(
        name=name,
        architecture="spade",
        arguments=arguments,
        contract=contract,
        provenance={"source": pth.name, "source_sha256": file_sha256(pth), "note": note},
        description=f"SPADE generator ({norm}, {label_nc} classes, {w}×{h}) imported from {pth.name}"
        + (f", {preset.title} layout" if preset is not None else ""),
        license=license,
    )
    save_model(folder, card, weights_to_save(card, net))
    return folder


__all__ = [
    "import_fast_neural_style",
    "import_pytorch_adain",
    "import_spade",
    "read_checkpoint",
    "read_class_names",
    "spade_key_from_official",
    "strip_legacy_instance_norm_keys",
]
