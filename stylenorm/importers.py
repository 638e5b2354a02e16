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

from stylenorm.errors import MissingWeightsError
from stylenorm.models import weights_to_save
from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder
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


def import_fast_neural_style(
    pth: Path, models_dir: Path, name: str, style_name: str | None = None, *, overwrite: bool = False
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
    decoder: Path, vgg: Path, models_dir: Path, name: str, *, overwrite: bool = False
) -> Path:
    """pytorch-AdaIN decoder.pth + vgg_normalised.pth -> models_dir/name (architecture ``adain``)."""
    decoder, vgg = Path(decoder), Path(vgg)
    folder = _target(models_dir, name, overwrite)
    encoder = VGGEncoder(**ADAIN_ARGUMENTS["encoder"])
    net = AdaINNet(encoder, eps=ADAIN_ARGUMENTS["eps"], unbiased=ADAIN_ARGUMENTS["unbiased"])
    load_strict(
        net.encoder.features, _vgg_normalised_state(vgg, encoder), vgg,
        "vgg_normalised.pth with the layers up to relu4_1 (keys 0 … 29)",
    )
    load_strict(
        net.decoder, read_checkpoint(decoder, "AdaIN decoder weights"), decoder,
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
    )
    save_model(folder, card, weights_to_save(card, net))
    return folder


__all__ = [
    "import_fast_neural_style",
    "import_pytorch_adain",
    "read_checkpoint",
    "strip_legacy_instance_norm_keys",
]
