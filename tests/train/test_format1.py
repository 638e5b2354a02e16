"""Checkpoints written by the two trainers before there was one (format 1) resume under today's trainer.

tests/train/fixtures/format1 holds, per recipe, a step-2 checkpoint written by the old code (commit
5795e72, ``make_format1.py`` says how) and the logged rows of the old code's uninterrupted 4-step run.
Today's trainer, resumed from the old step-2 file, must log the old run's steps 3 and 4: the refactor
changed no number, and format 1 is read completely (modules, EMA, both optimizers, RNG, data positions).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

from stylenorm.train import make_config, train
from stylenorm.train.checkpoint import META_KEY, load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "format1"
HISTORY = json.loads((FIXTURES / "history.json").read_text())
LOGGED = {
    "wct": ("loss", "pixel_relu1_1", "feature_relu1_1", "lr"),
    "cgan": ("g_loss", "g_gan", "d_loss", "d_real", "d_fake", "lr_g", "lr_d"),
}


def settings(recipe: str, out: Path) -> dict[str, Any]:
    common = {
        "out": out, "run_dir": out.parent / "runs" / out.name, "steps": 4, "workers": 0, "log_every": 1,
        "sample_every": 100, "checkpoint_every": 2,
    }
    if recipe == "wct":
        return common | {
            "content": FIXTURES / "wct-content", "batch_size": 2, "image_size": 32, "load_size": 40,
            "encoder": "random", "levels": "relu1_1",
        }
    return common | {
        "data": FIXTURES / "cgan-classes", "batch_size": 4, "image_size": 32, "ngf": 4, "ndf": 8,
        "z_dim": 16, "n_dis": 2, "ema": 0.5,
    }


@pytest.mark.parametrize("recipe", ["wct", "cgan"])
def test_a_format_1_checkpoint_resumes_to_the_old_runs_numbers(recipe: str, tmp_path: Path) -> None:
    old = FIXTURES / f"{recipe}-step-2.safetensors"
    with safe_open(str(old), framework="pt") as f:
        assert json.loads(f.metadata()[META_KEY])["format"] == 1
    values = settings(recipe, tmp_path / "m")
    folder = values["run_dir"] / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(old, folder / "step-00000002.safetensors")
    rest = train(make_config(recipe, values | {"resume": "latest"}))
    want = HISTORY[recipe][2:]
    assert [row["step"] for row in rest.history] == [3, 4]
    for got, expected in zip(rest.history, want, strict=True):
        for key in LOGGED[recipe]:
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (key, got, expected)
    # today's trainer writes format 2, which reads back with the same modules and optimizers
    new = load_checkpoint(folder / "step-00000004.safetensors")
    with safe_open(str(folder / "step-00000004.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()[META_KEY])["format"] == 2
    converted = load_checkpoint(old)
    assert set(new.optimizers) == set(converted.optimizers) == ({"net"} if recipe == "wct" else {"G", "D"})
    assert {k.split(".")[0] for k in new.model} == {k.split(".")[0] for k in converted.model}
    assert set(new.meta["data"][0]) == set(converted.meta["data"][0])


def test_an_uninterrupted_run_of_todays_trainer_logs_the_old_trainers_numbers(tmp_path: Path) -> None:
    full = train(make_config("cgan", settings("cgan", tmp_path / "full")))
    for got, expected in zip(full.history, HISTORY["cgan"], strict=True):
        for key in LOGGED["cgan"]:
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (key, got, expected)
