"""The loaded models: scanned from the repository at start, loaded, warmed, looked up by name.

A broken or unloadable model is logged and listed as unavailable, never fatal.
Names from requests are only ever dictionary keys here: nothing a client sends
is joined into a path.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylenorm.families import family_of
from stylenorm.models import LoadedModel, load
from stylenorm.repository import scan
from stylenorm.runtime import InferencePath
from stylenorm.server.errors import ApiError

log = logging.getLogger("stylenorm.server.registry")

# kind -> (module, function) it needs beyond the model itself
_NEEDS = {
    "synthesize": ("stylenorm.inference.synthesize", "synthesize"),
    "generate": ("stylenorm.inference.synthesize", "generate"),
}


def library_function(kind: str) -> Callable[..., Any] | None:
    """The stylenorm function serving a kind (synthesize, generate), or None where it is not installed."""
    if kind not in _NEEDS:
        return None
    module_name, attr = _NEEDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    return getattr(module, attr, None)


@dataclass
class ServedModel:
    """A loaded model and what serves it."""

    loaded: LoadedModel
    kind: str
    load_seconds: float

    @property
    def name(self) -> str:
        """The model's name (its card's)."""
        return self.loaded.card.name


class Registry:
    """Models by name; ``load_all`` fills it (in a background thread), ``ready`` says when it is done."""

    def __init__(
        self, models_dir: str | Path, device: str = "cpu", path: InferencePath | None = None
    ) -> None:
        self.models_dir = Path(models_dir)
        self.device = device
        self.path = path or InferencePath(None, False)
        self.models: dict[str, ServedModel] = {}
        self.unavailable: dict[str, str] = {}
        self.loading = True
        self._done = threading.Event()

    @property
    def ready(self) -> bool:
        """Every loadable model is loaded and warmed."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading has finished; whether it did within timeout."""
        return self._done.wait(timeout)

    def load_all(self, warm: Callable[[ServedModel], None] | None = None) -> None:
        """Scan the repository, load and warm every model; broken ones go to ``unavailable``."""
        try:
            found, broken = scan(self.models_dir)
            if not self.models_dir.is_dir():
                log.warning("models folder %s does not exist: serving no models", self.models_dir)
            for folder, reason in broken.items():
                log.warning("model folder %s is broken, skipped: %s", folder, reason)
                self.unavailable[folder] = self._public(reason)
            for name, folder in found.items():
                self._load_one(name, folder, warm)
        finally:
            self.loading = False
            self._done.set()
        log.info("ready: %d model(s) loaded, %d unavailable", len(self.models), len(self.unavailable))

    def _public(self, reason: str) -> str:
        """A reason fit for clients: the server's own paths shown relative to the models folder."""
        return reason.replace(str(self.models_dir.resolve()), "models").replace(
            str(self.models_dir), "models"
        )

    def _load_one(self, name: str, folder: Path, warm: Callable[[ServedModel], None] | None) -> None:
        start = time.monotonic()
        try:
            loaded = load(folder, device=self.device)
            kind = family_of(loaded.card).kind  # the card was read, so its family is known
            if kind in _NEEDS and library_function(kind) is None:
                module, attr = _NEEDS[kind]
                raise ApiError(
                    500,
                    "unservable",
                    f"{loaded.card.architecture} models need {module}.{attr}, which this stylenorm lacks",
                )
            if family_of(loaded.card).serving_path(self.path).channels_last:
                loaded.module.to(memory_format=torch.channels_last)
            served = ServedModel(loaded, kind, 0.0)
            if warm is not None:
                warm(served)
            served.load_seconds = time.monotonic() - start
        except Exception as exc:  # a broken model must not stop the others (nor the server)
            reason = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
            log.warning("model %s (%s) is unavailable: %s", name, folder, reason)
            self.unavailable[name] = self._public(reason)
            return
        self.models[name] = served
        log.info(
            "model %s (%s) loaded and warmed in %.2f s",
            name,
            served.loaded.card.architecture,
            served.load_seconds,
        )

    def get(self, name: str | None, kind: str | None = None) -> ServedModel:
        """The model called name (of the given kind): 404 if unknown, 503 while models still load."""
        if not isinstance(name, str) or name not in self.models:
            if self.loading:
                raise ApiError(
                    503, "not_ready", "models are still loading; retry shortly", {"Retry-After": "2"}
                )
            if isinstance(name, str) and name in self.unavailable:
                raise ApiError(
                    404, "unknown_model", f"model {name!r} is unavailable: {self.unavailable[name]}"
                )
            shown = name if isinstance(name, str) and len(name) <= 80 else "(name too long)"
            available = ", ".join(n for n, m in self.models.items() if kind is None or m.kind == kind)
            raise ApiError(
                404, "unknown_model", f"no model named {shown!r}; available: {available or 'none'}"
            )
        served = self.models[name]
        if kind is not None and served.kind != kind:
            raise ApiError(
                422,
                "invalid_parameters",
                f"model {name!r} is a {served.loaded.card.architecture} model ({served.kind}); "
                f"this endpoint needs a {kind} model",
            )
        return served

    def of_kind(self, kind: str) -> list[ServedModel]:
        """The loaded models served by one endpoint kind."""
        return [m for m in self.models.values() if m.kind == kind]
