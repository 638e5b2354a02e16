"""The GAN recipes: SPADE and the class-conditional GAN train, resume exactly, and write loadable folders.

Tiny everything: 64-px synthetic scenes (6 classes), ngf 4, SPADE hidden width 8,
the random VGG, batch 2, a handful of steps.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm import models
from stylenorm.cli import main
from stylenorm.data import DataError
from stylenorm.data.scenes import PALETTE, SCENE_CLASSES, write_scenes
from stylenorm.errors import MissingWeightsError
from stylenorm.inference.synthesize import generate, synthesize
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.nets.spade import SPADEGenerator
from stylenorm.train.config import CGANConfig, ConfigError, SpadeConfig, make_config
from stylenorm.train.engine import train
from stylenorm.train.gan import SpadeRecipe

CROP = 64


def spade_settings(out: Path, **extra: Any) -> dict[str, Any]:
    """Tiny, fast spade settings writing to out (synthetic scenes generated on the fly)."""
    base: dict[str, Any] = {
        "layout": "scenes", "scenes": 8, "out": out, "run_dir": out.parent / "runs" / out.name,
        "steps": 2, "batch_size": 2, "crop_size": CROP, "ngf": 4, "ndf": 8, "spade_hidden": 8,
        "encoder": "random", "vgg_weight": 1.0, "workers": 0, "log_every": 1, "sample_every": 2,
        "checkpoint_every": 2,
    }
    return base | extra


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of 40×40 images: reddish, bluish and greenish noise."""
    root = tmp_path_factory.mktemp("classes")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200)), ("green", (40, 160, 40))):
        (root / name).mkdir()
        for i in range(4):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def cgan_settings(data: Path, out: Path, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "data": data, "out": out, "run_dir": out.parent / "runs" / out.name, "steps": 4, "batch_size": 4,
        "ngf": 4, "ndf": 8, "z_dim": 16, "n_dis": 2, "workers": 0, "log_every": 1, "checkpoint_every": 2,
    }
    return base | extra


# ------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("norm", ["spade:instance:3x3", "clade:instance", "spade:group:2:3x3"])
def test_spade_trains_with_each_norm_and_writes_a_loadable_folder(norm: str, tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = train(make_config("spade", spade_settings(out, norm=norm)))
    assert [row["step"] for row in result.history] == [1, 2]
    for row in result.history:
        assert all(np.isfinite(v) for v in row.values())
        assert set(row) >= {"g_loss", "g_gan", "g_feat", "g_vgg", "d_loss", "d_real", "d_fake"}
    loaded = models.load(out)
    card = loaded.card
    assert card.architecture == "spade" and card.arguments["norm"] == norm
    assert card.contract["classes"] == list(SCENE_CLASSES) and card.contract["size"] == [CROP, CROP]
    assert card.contract["palette"] == [list(c) for c in PALETTE]
    assert isinstance(loaded.module, SPADEGenerator)
    assert not any(k.startswith(("discriminator", "D.")) for k in loaded.module.state_dict())
    prov = card.provenance
    assert prov["lr_g"] == pytest.approx(1e-4) and prov["lr_d"] == pytest.approx(4e-4)  # TTUR
    assert prov["betas"] == [0.0, 0.9] and prov["images_seen"] == 4 and prov["encoder"]["kind"] == "random"
    labels = torch.zeros(1, CROP, CROP, dtype=torch.long)
    assert synthesize(loaded, labels).shape == (1, 3, CROP, CROP)


def test_the_discriminator_learns_on_a_fixed_batch(tmp_path: Path) -> None:
    cfg = make_config("spade", spade_settings(tmp_path / "m", vgg_weight=0.0))
    recipe = SpadeRecipe(cfg, torch.device("cpu"))
    batch = {k: torch.stack([recipe.dataset[(i, i)][k] for i in range(2)]) for k in ("label", "image")}
    with torch.no_grad():
        segmap, _ = recipe.inputs(batch)
        fake = recipe.generator(segmap)
    opt = torch.optim.Adam(recipe.discriminator.parameters(), lr=4e-4, betas=(0.0, 0.9))
    losses = []
    for _ in range(12):
        recipe._fake = fake  # G stays fixed: D alone learns to tell these fakes from the reals
        loss, terms = recipe.d_loss(batch)
        assert set(terms) == {"d_real", "d_fake"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(2.0, abs=0.1)  # the official init: logits ≈ 0
    assert sum(losses[-3:]) / 3 < losses[0] - 0.3, losses


def test_spade_resume_continues_exactly(tmp_path: Path) -> None:
    # the encoder (z sampling), EMA and batch statistics all have state a resume must carry
    extra = {"use_vae": True, "z_dim": 8, "ema": 0.9, "norm": "spade:batch:3x3", "steps": 4,
             "checkpoint_every": 2, "flip": True}
    full = train(make_config("spade", spade_settings(tmp_path / "full", **extra)))
    values = spade_settings(tmp_path / "part", **extra)
    first = train(make_config("spade", values | {"steps": 2}))
    with pytest.raises(ConfigError, match="--resume latest"):
        train(make_config("spade", values))
    rest = train(make_config("spade", values | {"resume": "latest"}))
    assert [r["step"] for r in rest.history] == [3, 4]
    for got, want in zip(first.history + rest.history, full.history, strict=True):
        for key in ("g_loss", "g_gan", "g_feat", "g_vgg", "g_kld", "d_loss", "d_real", "d_fake"):
            assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-6), (got["step"], key)
    a = models.load(tmp_path / "full").module.state_dict()
    b = models.load(tmp_path / "part").module.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
    with open(tmp_path / "runs" / "part" / "losses.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    loaded = models.load(tmp_path / "full")
    assert loaded.card.arguments["use_vae"] and "style" in loaded.card.contract
    assert loaded.card.provenance["ema"] == 0.9


def test_cgan_trains_resumes_exactly_and_generates(class_folder: Path, tmp_path: Path) -> None:
    full = train(make_config("cgan", cgan_settings(class_folder, tmp_path / "full", ema=0.5)))
    values = cgan_settings(class_folder, tmp_path / "part", ema=0.5)
    train(make_config("cgan", values | {"steps": 2}))
    rest = train(make_config("cgan", values | {"resume": "latest"}))
    for got, want in zip(rest.history, full.history[2:], strict=True):
        for key in ("g_loss", "d_loss", "d_real", "d_fake"):
            assert np.isfinite(got[key]) and got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-6)
    loaded = models.load(tmp_path / "full")
    card = loaded.card
    assert card.architecture == "cgan" and card.contract["classes"] == ["blue", "green", "red"]
    assert card.contract["size"] == [32, 32] and isinstance(loaded.module, ClassConditionalGenerator)
    prov = card.provenance
    assert prov["images_seen"] == 4 * 2 * 4 and prov["betas"] == [0.0, 0.9] and prov["n_dis"] == 2
    assert prov["data"]["classes"]["classes"] == {"blue": 4, "green": 4, "red": 4}
    torch.testing.assert_close(
        loaded.module.state_dict()["linear.weight"], models.load(tmp_path / "part").module.state_dict()[
            "linear.weight"], rtol=0, atol=1e-6,
    )
    assert generate(loaded, "green", 3, seed=1).shape == (3, 3, 32, 32)


# ------------------------------------------------------------------------------------------ CLI, data


def test_cli_trains_on_a_scene_folder_then_synthesizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_scenes(tmp_path / "scenes", 6, CROP, seed=1)
    code = main([
        "train", "spade", "--layout", "scenes", "--data", str(tmp_path / "scenes"), "--out", "models/demo",
        "--steps", "2", "--batch-size", "2", "--crop-size", str(CROP), "--load-size", "72", "--ngf", "4",
        "--ndf", "8", "--spade-hidden", "8", "--norm", "clade:instance", "--encoder", "random",
        "--vgg-weight", "0", "--workers", "1", "--log-every", "1", "--sample-every", "2",
    ])
    assert code == 0
    loaded = models.load("demo", "models")
    assert loaded.card.contract["classes"] == list(SCENE_CLASSES)  # from the folder's classes.json
    assert loaded.card.provenance["data"]["pairs"]["preprocess"] == "resize_and_crop"
    with Image.open(tmp_path / "runs" / "demo" / "samples" / "step-00000002.png") as grid:
        assert grid.size == (2 + 2 * (CROP + 2), 2 + 3 * (CROP + 2))  # label / real / fake rows
    with open(tmp_path / "runs" / "demo" / "losses.csv", newline="") as f:
        assert list(next(csv.DictReader(f)))[:6] == ["step", "g_loss", "g_gan", "g_feat", "d_loss", "d_real"]
    code = main(["synthesize", "--model", "demo", "--models-dir", "models", "--labels",
                 str(tmp_path / "scenes" / "labels" / "scene_00000.png"), "--out", "out.png"])
    assert code == 0
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == (CROP, CROP)


def test_missing_vgg_weights_are_reported_before_any_data_is_read(tmp_path: Path) -> None:
    values = spade_settings(tmp_path / "m", encoder="torchvision", encoder_weights=tmp_path / "vgg19.pth",
                            layout="custom", data=tmp_path / "nowhere", label_nc=3)
    with pytest.raises(MissingWeightsError, match=r"VGG-19 weights not found at .*vgg19\.pth"):
        train(make_config("spade", values))
    values["vgg_weight"] = 0.0  # without the perceptual loss no weights are needed; the data is next
    with pytest.raises(DataError, match="nowhere"):
        train(make_config("spade", values))


def test_custom_labels_out_of_range_name_the_file(tmp_path: Path) -> None:
    write_scenes(tmp_path / "d", 2, CROP, seed=2)
    (tmp_path / "d" / "classes.json").unlink()
    values = spade_settings(tmp_path / "m", layout="custom", data=tmp_path / "d", label_nc=4, vgg_weight=0.0)
    message = r"scene_0000\d\.png: label value\(s\) .* outside the valid range 0\.\.3"
    with pytest.raises(DataError, match=message):
        train(make_config("spade", values))


@pytest.mark.parametrize(
    ("recipe", "values", "message"),
    [
        ("spade", {"layout": "ade20k"}, r"--layout ade20k needs --data"),
        ("spade", {"layout": "ade20k", "data": "x", "label_nc": 10}, r"label_nc 150; got --label-nc 10"),
        ("spade", {"layout": "scenes", "crop_size": 48}, r"multiple of 2\^5 = 32"),
        ("spade", {"layout": "scenes", "norm": "cbn"}, r"--norm .*class or style condition"),
        ("spade", {"layout": "custom"}, r"needs --data .* or --label-dir and --image-dir"),
        ("spade", {"layout": "scenes", "ema": 1.0}, r"--ema .*less than 1"),
        ("cgan", {"data": "x", "image_size": 48}, r"image_size must be 32, 64 or 128"),
        ("cgan", {"data": "x", "norm": "instance"}, r"needs a class-conditional norm"),
    ],
)
def test_bad_gan_settings_are_clear_errors(recipe: str, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(recipe, {"out": "models/x", **values})


def test_defaults_follow_the_anchors() -> None:
    spade = make_config("spade", {"out": "models/x", "layout": "ade20k", "data": "ade"})
    assert isinstance(spade, SpadeConfig)
    assert spade.lrs == (1e-4, 4e-4) and spade.betas == (0.0, 0.9)
    assert (spade.feat_weight, spade.vgg_weight, spade.kld_weight) == (10.0, 10.0, 0.05)
    assert (spade.label_nc, spade.contain_dontcare, spade.use_instance) == (150, True, False)
    assert spade.load_size == 286 and spade.norm == "spade:instance:3x3"
    no_ttur = make_config("spade", {"out": "models/x", "layout": "scenes", "ttur": False})
    assert no_ttur.lrs == (2e-4, 2e-4) and no_ttur.betas == (0.5, 0.999)  # type: ignore[attr-defined]
    city = make_config("spade", {"out": "models/x", "layout": "cityscapes", "data": "c", "crop_size": 512})
    assert city.num_upsampling_layers == "more" and city.out_size == (256, 512)  # type: ignore[attr-defined]
    cgan = make_config("cgan", {"out": "models/x", "data": "d"})
    assert isinstance(cgan, CGANConfig) and cgan.lrs == (2e-4, 2e-4) and cgan.betas == (0.0, 0.9)
    assert cgan.n_dis == 5 and cgan.norm == "cbn"


def test_a_model_trained_on_ade20k_reads_the_datasets_label_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained with --layout ade20k, synthesis reads an ADE20K label PNG as training did (v -> v-1)."""
    from stylenorm.inference.synthesize import labels_from_image
    from tests.data_synthesis.test_segmentation import _ade, _blocks

    monkeypatch.chdir(tmp_path)
    _ade(tmp_path / "data", "training", "train", _blocks(32, 32, (0, 1, 150, 7)), 1)
    code = main([
        "train", "spade", "--layout", "ade20k", "--data", str(tmp_path / "data"), "--out", "models/ade",
        "--steps", "1", "--batch-size", "1", "--crop-size", "32", "--load-size", "32", "--ngf", "4",
        "--ndf", "8", "--spade-hidden", "8", "--encoder", "random", "--vgg-weight", "0", "--workers", "0",
    ])
    assert code == 0
    loaded = models.load("ade", "models")
    assert loaded.card.contract["layout"] == "ade20k" and loaded.card.contract["label_file"]["shift"] == -1
    label_png = next((tmp_path / "data").rglob("ADE_train_00000001.png"))
    labels = labels_from_image(loaded, label_png)
    h, w = labels.shape[1:]
    corners = [int(labels[0, y, x]) for y in (0, h - 1) for x in (0, w - 1)]
    assert corners == [150, 0, 149, 6]  # file 0 "other" -> the don't-care channel, v -> class v-1
