"""The model repository and loader: cards, checksums, broken folders, every architecture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenorm import models
from stylenorm.errors import MissingWeightsError
from stylenorm.repository import ModelCard, ModelError, load_weights, read_card, save_model, scan

ADAIN_ARGS = {"encoder": {"fmt": "random", "depth": 19, "last": "relu2_1", "seed": 3}}


def _save(root: Path, card: ModelCard) -> Path:
    module = models.build(card)
    save_model(root / card.name, card, models.weights_to_save(card, module))
    return root / card.name


def test_round_trip_of_every_architecture(tmp_path: Path) -> None:
    cards = [
        ModelCard(name="fast", architecture="fast", styles=["mosaic"]),
        ModelCard(name="multi", architecture="multistyle", styles=["a", "b"]),
        ModelCard(name="adain", architecture="adain", arguments=ADAIN_ARGS),
        ModelCard(name="color", architecture="color"),
    ]
    for card in cards:
        _save(tmp_path, card)
    found, broken = scan(tmp_path)
    assert sorted(found) == ["adain", "color", "fast", "multi"] and not broken
    loaded = models.load("multi", tmp_path)
    assert loaded.card.styles == ["a", "b"] and not loaded.module.training
    adain = models.load(tmp_path / "adain")
    rebuilt = models.build(read_card(tmp_path / "adain"))
    assert torch.equal(adain.module.encoder.features[0].weight, rebuilt.encoder.features[0].weight)
    assert not any(k.startswith("encoder.") for k in load_weights(tmp_path / "adain"))
    assert models.load("color", tmp_path).card.sha256 == ""


def test_checksum_mismatch_and_missing_weights_are_errors(tmp_path: Path) -> None:
    folder = _save(tmp_path, ModelCard(name="fast", architecture="fast"))
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card"):
        models.load(folder)
    weights.unlink()
    with pytest.raises(MissingWeightsError, match="lists weights"):
        models.load(folder)


def test_a_broken_folder_is_reported_and_the_others_still_load(tmp_path: Path) -> None:
    _save(tmp_path, ModelCard(name="good", architecture="fast"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.toml").write_text("name = [unclosed")
    (tmp_path / "empty").mkdir()
    found, broken = scan(tmp_path)
    assert list(found) == ["good"] and set(broken) == {"bad", "empty"}
    assert "not a valid model card" in broken["bad"]
    with pytest.raises(ModelError, match=r"no model named 'nope'.*available: good"):
        models.load("nope", tmp_path)


def test_names_are_checked_and_no_temporary_files_remain(tmp_path: Path) -> None:
    for bad in ("../etc", "UPPER", "", "a/b"):
        with pytest.raises(ModelError, match="invalid model name"):
            save_model(tmp_path / "x", ModelCard(name=bad, architecture="fast"), {})
    _save(tmp_path, ModelCard(name="ok", architecture="fast"))
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["card.toml", "weights.safetensors"]


def test_cards_with_wrong_weights_or_arguments_are_refused(tmp_path: Path) -> None:
    folder = _save(tmp_path, ModelCard(name="fast", architecture="fast"))
    card = read_card(folder)
    save_model(folder, card.model_copy(update={"architecture": "multistyle", "styles": ["a"]}),
               load_weights(folder, card))
    with pytest.raises(ModelError, match="do not fit"):
        models.load(folder)
    save_model(folder, ModelCard(name="fast", architecture="fast", arguments={"bogus": 1}), {})
    with pytest.raises(ModelError, match="bad arguments"):
        models.load(folder)
    save_model(folder, ModelCard(name="fast", architecture="teleport"), {})
    with pytest.raises(ModelError, match="unknown architecture"):
        models.load(folder)
