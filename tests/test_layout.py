"""The package layout the architecture guide describes is the one on disk, and stays layered.

docs/architecture.md names files and folders (``stylenorm/train/engine.py``, ``routes/…``); a move
that forgets the guide fails here. The layering rule it states (nothing below a layer imports from
above it) is checked on the import statements of the library's lower layers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "architecture.md"

# lower layers and the packages they must never import (the layers above them)
LAYERS = {
    "stylenorm/norm": ("stylenorm.nets", "stylenorm.families", "stylenorm.inference", "stylenorm.server",
                       "stylenorm.train", "stylenorm.cli"),
    "stylenorm/nets": ("stylenorm.families", "stylenorm.inference", "stylenorm.server", "stylenorm.train",
                       "stylenorm.cli"),
    "stylenorm/families": ("stylenorm.server", "stylenorm.train", "stylenorm.cli"),
    "stylenorm/inference": ("stylenorm.server", "stylenorm.train", "stylenorm.cli"),
}


def test_every_path_the_architecture_guide_names_exists() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    paths = set(re.findall(r"stylenorm/[A-Za-z_/]+(?:\.py)?", text))
    assert len(paths) > 15  # the guide does name the parts
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_lower_layer_does_not_import_from_above(layer: str) -> None:
    above = LAYERS[layer]
    offenders = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith(above) and not _lazy_export(path, name):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, offenders


def _lazy_export(path: Path, name: str) -> bool:
    """The one allowed upward import: a family's export_onnx reaches the ONNX exporter lazily."""
    return path.parent.name == "families" and name == "stylenorm.interop.export"
