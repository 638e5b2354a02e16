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
import shutil
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
    """Write the model folder (card.toml, weights.safetensors if state) as one atomic replacement.

    The new folder is staged beside the old one (with the old one's other files, e.g. ``styles/``),
    then swapped in with one rename: a reader sees the old model or the new one, never a card
    without its weights, and a crash leaves the old folder as it was. Returns the card with its
    checksum.
    """
    folder = Path(folder)
    check_name(card.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new-"))
    try:
        if folder.is_dir():  # what else the folder holds comes along
            for entry in folder.iterdir():
                if entry.name in (CARD, WEIGHTS) or entry.name.startswith("."):
                    continue
                copy = shutil.copytree if entry.is_dir() else shutil.copy2
                copy(entry, staging / entry.name)
        if state:  # a model without tensors (colour transfer) has no weights file
            tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
            save_file(tensors, str(staging / WEIGHTS), metadata={"name": card.name})
            card = card.model_copy(update={"sha256": _sha256(staging / WEIGHTS)})
        else:
            card = card.model_copy(update={"sha256": ""})
        from stylenorm import __version__

        card = card.model_copy(update={"stylenorm_version": __version__})
        (staging / CARD).write_text(tomli_w.dumps(card.model_dump(mode="json")), encoding="utf-8")
        for path in staging.iterdir():
            if path.is_file():
                os.chmod(path, 0o644)
                _fsync(path)
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; a server running as another user must read it
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after the swap: the old folder's contents
    return card


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


_RENAME_EXCHANGE = 2  # linux/fs.h: swap two paths atomically (renameat2, Linux ≥ 3.15)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2); False where the system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _swap_in(staging: Path, folder: Path) -> None:
    """Make staging the folder; the old folder's contents end up at staging (for the caller to delete)."""
    if not folder.exists():
        os.rename(staging, folder)
        staging.mkdir()  # the caller removes staging afterwards
        return
    if _exchange(staging, folder):
        return
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")  # two renames: a moment without folder
    os.rename(folder, old)
    os.rename(staging, folder)
    os.rename(old, staging)


def _card_problems(exc: ValidationError) -> str:
    """What is wrong with a card, in our words: each field and pydantic's rule, never the value
    (pydantic's own text quotes the values, which a server would then show to anyone)."""
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "the card"
        message = error["msg"][:1].lower() + error["msg"][1:]
        rule = "unknown key" if error["type"] == "extra_forbidden" else message
        problems.append(f"{where}: {rule}")
    more = len(exc.errors()) - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def read_card(folder: str | Path) -> ModelCard:
    """Parse and validate ``folder/card.toml``."""
    path = Path(folder) / CARD
    if not path.is_file():
        raise ModelError(f"{path} not found: a model folder needs a {CARD}")
    try:
        card = ModelCard.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise ModelError(f"{path} is not a valid model card: {_card_problems(exc)}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not a valid model card: not TOML ({exc})") from exc
    if card.format_version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has format version {card.format_version}; this stylenorm reads {FORMAT_VERSION}"
        )
    return card


def verify_weights(folder: str | Path, card: ModelCard) -> Path | None:
    """The weights file after checking it against the card's SHA-256 (None for a model without weights).

    MissingWeightsError when absent, ModelError when its bytes differ (truncated, changed): the one
    check that ``stylenorm models``, loading and the server all make.
    """
    if not card.sha256:
        return None
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise MissingWeightsError(f"{path} not found, but the card of {card.name!r} lists weights")
    actual = _sha256(path)
    if actual != card.sha256:
        raise ModelError(
            f"{path} does not match its card (truncated or changed: sha256 {actual[:12]}… ≠ "
            f"{card.sha256[:12]}…)"
        )
    return path


def load_weights(folder: str | Path, card: ModelCard | None = None) -> dict[str, Tensor]:
    """Read weights.safetensors after checking its SHA-256 against the card (empty if there are none)."""
    folder = Path(folder)
    card = card or read_card(folder)
    path = verify_weights(folder, card)
    return {} if path is None else load_file(str(path))


def scan(models_dir: str | Path, verify: bool = False) -> tuple[dict[str, Path], dict[str, str]]:
    """Find model folders: ({name: folder} of good cards, {folder name: reason} of broken ones).

    A folder is broken when its card is unreadable or invalid, when it resolves outside models_dir
    (a symlink out of the repository is never followed), when another folder's card has the same name
    (both are refused: which one a name means must not depend on the folders' order), or, with
    ``verify``, when its weights are missing or do not match the card's checksum.
    """
    found: dict[str, Path] = {}
    broken: dict[str, str] = {}
    root = Path(models_dir)
    if not root.is_dir():
        return found, broken
    inside = root.resolve()
    named: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            if not folder.resolve().is_relative_to(inside):
                raise ModelError(f"{folder.name} links outside the models folder (folders must be inside it)")
            card = read_card(folder)
            check_name(card.name)
            if verify:
                verify_weights(folder, card)
            named.setdefault(card.name, []).append(folder)
        except StylenormError as exc:
            broken[folder.name] = str(exc)
    for name, folders in named.items():
        if len(folders) == 1:
            found[name] = folders[0]
            continue
        listing = ", ".join(f.name for f in folders)
        for folder in folders:
            broken[folder.name] = (
                f"the model name {name!r} is in {len(folders)} folders ({listing}); rename all but one"
            )
    return found, broken


def state_dtype(state: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """Cast the floating tensors of a state dict (e.g. to float16 for shipping)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
