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
_TOP = ("stylenorm.server", "stylenorm.train", "stylenorm.cli")
LAYERS = {
    "stylenorm/norm": ("stylenorm.nets", "stylenorm.families", "stylenorm.inference", *_TOP),
    "stylenorm/nets": ("stylenorm.families", "stylenorm.inference", "stylenorm.evaluation", *_TOP),
    "stylenorm/families": ("stylenorm.inference", "stylenorm.evaluation", *_TOP),
    "stylenorm/inference": _TOP,
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
        for name in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if name.startswith(above) and not _lazy_export(path, name):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, offenders


def _runtime_imports(tree: ast.AST) -> list[str]:
    """The modules a file imports when it runs (imports under ``if TYPE_CHECKING:`` are type-only)."""
    names: list[str] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        else:
            names.extend(_runtime_imports(node))
    return names


def _lazy_export(path: Path, name: str) -> bool:
    """The one allowed upward import: a family's export_onnx reaches the ONNX exporter lazily."""
    return path.parent.name == "families" and name == "stylenorm.interop.export"
