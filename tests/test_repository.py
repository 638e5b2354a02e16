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


def test_two_folders_with_one_name_are_both_refused(tmp_path: Path) -> None:
    first = _save(tmp_path, ModelCard(name="twin", architecture="fast"))
    (tmp_path / "copy").mkdir()
    for f in first.iterdir():
        (tmp_path / "copy" / f.name).write_bytes(f.read_bytes())
    found, broken = scan(tmp_path)
    assert "twin" not in found and set(broken) == {"twin", "copy"}
    assert all("'twin' is in 2 folders (copy, twin)" in reason for reason in broken.values())
    with pytest.raises(ModelError, match="in 2 folders"):
        models.load("twin", tmp_path)


def test_a_folder_linking_outside_the_repository_is_not_followed(tmp_path: Path) -> None:
    outside = _save(tmp_path / "elsewhere", ModelCard(name="stray", architecture="fast"))
    repo = tmp_path / "models"
    _save(repo, ModelCard(name="home", architecture="fast"))
    (repo / "stray").symlink_to(outside, target_is_directory=True)
    found, broken = scan(repo)
    assert "links outside the models folder" in broken["stray"]
    assert list(found) == ["home"]


def test_scan_with_verify_finds_truncated_weights(tmp_path: Path) -> None:
    folder = _save(tmp_path, ModelCard(name="cut", architecture="fast"))
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "cut" in scan(tmp_path)[0]  # the card alone is fine
    found, broken = scan(tmp_path, verify=True)
    assert not found and "truncated or changed" in broken["cut"]


def test_an_invalid_card_is_reported_in_our_words_without_its_values(tmp_path: Path) -> None:
    folder = _save(tmp_path, ModelCard(name="odd", architecture="fast"))
    text = (folder / "card.toml").read_text()
    bad = 'secret_key = "hunter2-value"\n' + text.replace('name = "odd"', "name = 7")
    (folder / "card.toml").write_text(bad)
    with pytest.raises(ModelError) as err:
        read_card(folder)
    message = str(err.value)
    assert "secret_key: unknown key" in message and "name: input should be a valid string" in message
    assert "hunter2" not in message


def test_save_model_replaces_a_folder_whole_and_a_failed_write_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylenorm import repository

    folder = _save(tmp_path, ModelCard(name="swap", architecture="fast"))
    (folder / "styles").mkdir()
    (folder / "styles" / "a.png").write_bytes(b"png")
    old_card = read_card(folder)
    module = models.build(old_card)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    new_card = save_model(folder, old_card, models.weights_to_save(old_card, module))
    assert new_card.sha256 != old_card.sha256 and read_card(folder).sha256 == new_card.sha256
    assert (folder / "styles" / "a.png").read_bytes() == b"png"  # the folder's other files came along
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swap"]  # no staging folder left behind

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(repository, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(folder, old_card, models.weights_to_save(old_card, models.build(old_card)))
    assert read_card(folder).sha256 == new_card.sha256  # the model as it was, still loadable
    models.load(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swap"]


def test_the_folder_swap_is_one_rename_on_linux(tmp_path: Path) -> None:
    from stylenorm.repository import _exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not _exchange(a, b):
        pytest.skip("this system has no renameat2 RENAME_EXCHANGE (the two-rename fallback is used)")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
