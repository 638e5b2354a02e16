"""The model repository: ``models/<name>/`` holds ``card.toml`` and ``weights.safetensors``.

The card is small and human-readable: the architecture and its constructor
arguments, the input contract, style names, how the model was made and the
weights' SHA-256. Training writes folders, the CLI lists them, the server
scans them. Only safetensors are read: never pickle.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save_file
from torch import Tensor

from stylenorm.errors import MissingWeightsError, StylenormError

MODELS_DIR_ENV = "STYLENORM_MODELS_DIR"
MODELS_DIR_HELP = f"model repository (default: ${MODELS_DIR_ENV}, else ./models, else the checkout's models/)"
CARD = "card.toml"
WEIGHTS = "weights.safetensors"
FORMAT_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ModelError(StylenormError):
    """A model folder is missing, malformed, or its weights do not match its card."""


class ModelCard(BaseModel):
    """What a model folder says about itself (``card.toml``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    architecture: str = Field(description="fast | multistyle | adain | color | spade | cgan")
    arguments: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")
    styles: list[str] = Field(default_factory=list, description="named styles, in table order")
    contract: dict[str, Any] = Field(
        default_factory=lambda: {"input": "RGB float in [0, 1], (N, 3, H, W)", "output": "same"},
    )
    provenance: dict[str, Any] = Field(default_factory=dict, description="how the model was made")
    description: str = ""
    license: str = Field(
        "",
        description="the weights' licence: an SPDX id, or the source's terms in words; empty: not recorded",
    )
    stylenorm_version: str = Field("", description="the stylenorm version that wrote this card")
    sha256: str = ""
    format_version: int = FORMAT_VERSION


def _checkout_models_dir() -> Path | None:
    """The source checkout's models/ when stylenorm runs from a checkout (an editable install), else None.

    An installed wheel lives in site-packages, whose parent holds no stylenorm pyproject.toml: a stray
    ``site-packages/models`` of another distribution is never taken for ours.
    """
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if (root / "models").is_dir() and pyproject.is_file():
        try:
            name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
        except (OSError, tomllib.TOMLDecodeError):
            return None
        if name == "stylenorm":
            return root / "models"
    return None


def models_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """The model repository every command and the server use, by the first that applies.

    ``--models-dir`` (flag) > ``$STYLENORM_MODELS_DIR`` > ``./models`` when it exists > the checkout's
    ``models/`` in an editable install > ``./models`` (to be created: what ``stylenorm import`` writes).
    """
    if flag:
        return Path(flag)
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    here = Path("models")
    if here.is_dir():
        return here
    return _checkout_models_dir() or here


def check_name(name: str) -> str:
    """Return name if it is a valid model/style name (lowercase, no path parts), else raise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(
            f"invalid model name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over the target."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a server running as another user must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(
    folder: str | Path, card: ModelCard, state: Mapping[str, Tensor] | None = None
) -> ModelCard:
    """Write card.toml and (if given) weights.safetensors atomically; returns the card with its checksum."""
    folder = Path(folder)
    check_name(card.name)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    if state:  # a model without tensors (colour transfer) has no weights file
        tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        atomic_write(weights, lambda p: save_file(tensors, str(p), metadata={"name": card.name}))
        card = card.model_copy(update={"sha256": _sha256(weights)})
    else:
        weights.unlink(missing_ok=True)
        card = card.model_copy(update={"sha256": ""})
    from stylenorm import __version__

    card = card.model_copy(update={"stylenorm_version": __version__})
    text = tomli_w.dumps(card.model_dump(mode="json"))
    atomic_write(folder / CARD, lambda p: p.write_text(text, encoding="utf-8"))
    return card


def read_card(folder: str | Path) -> ModelCard:
    """Parse and validate ``folder/card.toml``."""
    path = Path(folder) / CARD
    if not path.is_file():
        raise ModelError(f"{path} not found: a model folder needs a {CARD}")
    try:
        card = ModelCard.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ModelError(f"{path} is not a valid model card: {exc}") from exc
    if card.format_version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has format version {card.format_version}; this stylenorm reads {FORMAT_VERSION}"
        )
    return card


def load_weights(folder: str | Path, card: ModelCard | None = None) -> dict[str, Tensor]:
    """Read weights.safetensors after checking its SHA-256 against the card (empty if there are none)."""
    folder = Path(folder)
    card = card or read_card(folder)
    path = folder / WEIGHTS
    if not card.sha256:
        return {}
    if not path.is_file():
        raise MissingWeightsError(f"{path} not found, but the card of {card.name!r} lists weights")
    actual = _sha256(path)
    if actual != card.sha256:
        raise ModelError(f"{path} does not match its card (sha256 {actual[:12]}… ≠ {card.sha256[:12]}…)")
    return load_file(str(path))


def scan(models_dir: str | Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Find model folders: ({name: folder} of readable cards, {folder name: error} of broken ones)."""
    found: dict[str, Path] = {}
    broken: dict[str, str] = {}
    root = Path(models_dir)
    if not root.is_dir():
        return found, broken
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            card = read_card(folder)
            check_name(card.name)
            if card.name in found:
                raise ModelError(f"name {card.name!r} is already used by {found[card.name]}")
            found[card.name] = folder
        except StylenormError as exc:
            broken[folder.name] = str(exc)
    return found, broken


def state_dtype(state: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """Cast the floating tensors of a state dict (e.g. to float16 for shipping)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
