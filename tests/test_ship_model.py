"""scripts/ship_model.py: fp16 weights that still load, the gallery, and an honest card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylenorm import models
from stylenorm.repository import ModelCard, read_card, save_model
from tests.scripts import load_script


def _ship_module():
    return load_script("ship_model")


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    card = ModelCard(name="trained", architecture="multistyle", styles=["a", "b"],
                     arguments={"norm": "cin", "output": "linear", "num_styles": 2},
                     description="A test net.", provenance={"steps": 3})
    torch.manual_seed(0)
    net = models.build(card)
    save_model(tmp_path / "src", card, models.weights_to_save(card, net))
    return tmp_path / "src"


def test_a_shipped_model_has_fp16_weights_a_gallery_and_its_evidence(trained: Path, tmp_path: Path) -> None:
    styles = []
    for name, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        styles.append(tmp_path / f"{name}.png")
        Image.new("RGB", (600, 300), colour).save(styles[-1])
    sheet = tmp_path / "sheet.json"
    sheet.write_text(json.dumps({"summary": {"relative_style_distance": 0.4, "ssim": 0.5, "cells": 2}}))
    dest = _ship_module().main([
        str(trained), "shipped", "--models-dir", str(tmp_path / "models"), "--styles", *map(str, styles),
        "--note", "Trained briefly.", "--sheet-json", str(sheet), "--sheet", "docs/gallery/x.jpg",
        "--retrain", "use real weights",
    ])
    card = read_card(dest)
    assert card.name == "shipped" and card.styles == ["a", "b"]
    assert card.description == "A test net. Trained briefly."
    prov = card.provenance
    assert prov["steps"] == 3 and prov["heldout_quality"]["ssim"] == 0.5
    assert prov["contact_sheet"] == "docs/gallery/x.jpg" and prov["retrain"] == "use real weights"
    assert max(Image.open(dest / "styles" / "a.png").size) == 256
    original, shipped = models.load(trained), models.load(dest)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        diff = (original.module(x, torch.tensor([1])) - shipped.module(x, torch.tensor([1]))).abs().max()
    assert 0 < float(diff) < 1e-2  # fp16 rounding, nothing more


def test_a_multistyle_gallery_must_name_every_row(trained: Path, tmp_path: Path) -> None:
    odd = tmp_path / "zebra.png"
    Image.new("RGB", (32, 32)).save(odd)
    with pytest.raises(SystemExit, match="give one image named after each"):
        _ship_module().main([str(trained), "x", "--models-dir", str(tmp_path / "m"), "--styles", str(odd)])
