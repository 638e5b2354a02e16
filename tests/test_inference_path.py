"""The inference path (dtype × memory format): chosen by the device's abilities, and quality kept.

The server runs the path ``Settings.inference_path()`` gives by default: channels_last everywhere,
float16 autocast on CUDA, bfloat16 only on a CPU with native bf16 (emulated bf16 is ~100× slower).
Each shipped style model must give the float32-contiguous image within a stated tolerance on each
path: channels_last ≤ 1e-3 max abs (it only reorders the sums; measured ≤ 7e-5), bfloat16 ≤ 0.01
mean abs and ≤ 0.1 max abs in [0, 1] (8 mantissa bits through a dozen convolutions; measured mean
0.0012-0.0037 and max 0.0075-0.027; the colour transfer stays float32, its log10 of tiny values).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenorm import models, runtime
from stylenorm.errors import SpecError
from stylenorm.evaluation.metrics import relative_style_distance
from stylenorm.inference.stylize import stylize
from stylenorm.runtime import InferencePath, inference_path
from stylenorm.server.settings import Settings

MODELS = Path(__file__).resolve().parents[1] / "models"
STYLE_MODELS = ("eight-styles", "adain-open", "wct", "color-transfer")


def _content(size: int) -> torch.Tensor:
    """A smooth, photo-like picture (low-frequency colour fields)."""
    g = torch.Generator().manual_seed(0)
    small = torch.rand(1, 3, 6, 6, generator=g)
    return torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic").clamp(0, 1)


def test_auto_picks_channels_last_and_bf16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    assert inference_path("cpu") == InferencePath(None, True)
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    assert inference_path("cpu") == InferencePath(torch.bfloat16, True)
    assert inference_path("cpu", "float32", "contiguous") == InferencePath(None, False)
    assert inference_path("cpu", "bfloat16") == InferencePath(torch.bfloat16, True)
    with pytest.raises(SpecError, match="float16 inference needs a CUDA device"):
        inference_path("cpu", "float16")
    # CUDA: float16 autocast by default (no GPU needed to decide)
    assert inference_path("cuda") == InferencePath(torch.float16, True)


def test_the_settings_choose_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    settings = Settings(_env_file=None, device="cpu")
    assert settings.inference_path() == InferencePath(None, True)
    forced = Settings(_env_file=None, device="cpu", precision="bfloat16", memory_format="contiguous")
    assert forced.inference_path() == InferencePath(torch.bfloat16, False)


@pytest.mark.parametrize("name", STYLE_MODELS)
def test_channels_last_keeps_each_shipped_model_s_image(name: str) -> None:
    model = models.load(MODELS / name)
    styles = model.card.styles[:1]
    content = _content(96)
    want = stylize(model, content, styles)
    model.module.to(memory_format=torch.channels_last)
    got = stylize(model, content.contiguous(memory_format=torch.channels_last), styles)
    assert (got - want).abs().max() <= 1e-3


@pytest.mark.parametrize("name", STYLE_MODELS)
def test_bfloat16_keeps_each_shipped_model_s_image_within_tolerance(name: str) -> None:
    # small: this CPU may emulate bf16 (slow); the tolerance is about the arithmetic, not the size
    model = models.load(MODELS / name)
    # arbitrary-style models get a small style picture (their gallery images are 512 px: slow in bf16)
    styles = [_content(32).flip(1)] if name in ("adain-open", "wct") else model.card.styles[:1]
    content = _content(40)
    want = stylize(model, content, styles)
    got = stylize(model, content, styles, dtype=torch.bfloat16)
    diff = (got - want).abs()
    assert got.dtype == torch.float32, got.dtype
    assert diff.mean() <= 0.01 and diff.max() <= 0.1, (diff.mean(), diff.max())


def test_the_inference_path_keeps_the_held_out_style_distance() -> None:
    """The default path (and forced bf16) moves the output's relative style distance to a held-out
    style by < 2 % of the float32 value (the sheets' number, random-VGG metric encoder; measured:
    channels_last 2e-7, bf16 0.4 %)."""
    model = models.load(MODELS / "adain-open")
    content, style = _content(64), _content(48).flip(1).roll(7, dims=3)
    want = relative_style_distance(stylize(model, content, [style]), content, style)
    model.module.to(memory_format=torch.channels_last)
    for dtype in (None, torch.bfloat16):
        got = relative_style_distance(stylize(model, content, [style], dtype=dtype), content, style)
        assert abs(float(got) - float(want)) <= 0.02 * float(want), (dtype, float(got), float(want))


def test_a_bad_dtype_is_a_clear_error() -> None:
    model = models.load(MODELS / "color-transfer")
    with pytest.raises(SpecError, match=r"dtype must be torch\.float16 or torch\.bfloat16"):
        stylize(model, _content(32), model.card.styles[:1], dtype=torch.float64)
