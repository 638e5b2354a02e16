"""scripts/digits_dataset.py: scikit-learn's digits as class folders, and the class-accuracy score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm import models
from stylenorm.repository import ModelCard, save_model
from tests.scripts import load_script

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def script():
    return load_script("digits_dataset")


def test_every_digit_is_written_in_its_class_folder(script, tmp_path: Path) -> None:
    counts = script.write(tmp_path / "digits", 32)
    assert sorted(counts) == [str(d) for d in range(10)] and sum(counts.values()) == 1797
    files = sorted((tmp_path / "digits").rglob("*.png"))
    assert len(files) == 1797 and not list((tmp_path / "digits").rglob("*.part"))
    images, labels = script.digits()
    with Image.open(tmp_path / "digits" / str(labels[5]) / "0005.png") as img:
        assert img.mode == "RGB" and img.size == (32, 32)
        pixels = np.asarray(img, np.float64) / 255.0
    # dark ink on white paper, and shrinking back gives the original ink levels
    assert pixels[0, 0].min() > 0.95 and pixels.min() < 0.2
    assert np.abs(script.to_digit(pixels) - images[5]).mean() < 1.5


def _cgan(folder: Path) -> Path:
    card = ModelCard(
        name="digits", architecture="cgan", contract={"classes": [str(d) for d in range(10)]},
        arguments={"num_classes": 10, "z_dim": 8, "ngf": 4, "image_size": 32},
    )
    torch.manual_seed(0)
    save_model(folder, card, models.weights_to_save(card, models.build(card)))
    return folder


def test_the_score_reads_real_digits_as_their_class_and_noise_as_chance(
    script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _cgan(tmp_path / "m")
    untrained, sheet = script.score(folder, per_class=20)
    assert 0.85 < untrained["real_accuracy"] <= 1  # the reader's ceiling on real digits
    assert untrained["class_accuracy"] < 0.4 and untrained["cells"] == 200
    assert sheet.shape == (10 * 32, 8 * 32, 3)
    # a "generator" that returns real digits of the asked class scores near the ceiling
    images, labels = script.digits()

    def real_digits(model, class_name: str, n: int, seed: int) -> torch.Tensor:
        picks = np.flatnonzero(labels == int(class_name))[seed % 7 :][:n]
        rgb = [np.asarray(script.render(images[i], 32), np.float32) / 255.0 for i in picks]
        return torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2)

    import stylenorm.inference.synthesize as synthesize

    monkeypatch.setattr(synthesize, "generate", real_digits)
    perfect, _ = script.score(folder, per_class=20)
    assert perfect["class_accuracy"] > 0.85


def test_a_gan_folder_can_ship_its_raw_generator(script, tmp_path: Path) -> None:
    """scripts/generator_from_checkpoint.py: the run's G replaces the moving average the trainer wrote."""
    from stylenorm.train import make_config, train
    from stylenorm.train.checkpoint import load_latest_intact

    data = tmp_path / "digits"
    script.write(data, 32)
    cfg = make_config("cgan", {
        "data": data, "out": tmp_path / "m", "run_dir": tmp_path / "run", "steps": 2, "batch_size": 4,
        "image_size": 32, "ngf": 4, "ndf": 8, "z_dim": 8, "n_dis": 1, "ema": 0.9, "flip": False,
        "workers": 0, "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "encoder": "random",
    })
    train(cfg)
    tool = load_script("generator_from_checkpoint")
    averaged = models.load(tmp_path / "m").module.state_dict()
    tool.main([str(tmp_path / "run"), str(tmp_path / "m"), "--module", "G", "--why", "test"])
    shipped = models.load(tmp_path / "m")
    _, ckpt = load_latest_intact(tmp_path / "run" / "checkpoints")
    raw = {k[2:]: v for k, v in ckpt.model.items() if k.startswith("G.")}
    state = shipped.module.state_dict()
    assert all(torch.equal(state[k], raw[k].to(state[k].dtype)) for k in raw)
    assert any(not torch.equal(state[k], averaged[k]) for k in raw)  # the average differed
    assert shipped.card.provenance["shipped_module"]["module"] == "G"
    with pytest.raises(SystemExit, match="no module 'nope'"):
        tool.main([str(tmp_path / "run"), str(tmp_path / "m"), "--module", "nope"])
