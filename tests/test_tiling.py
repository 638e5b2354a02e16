"""Exact tiling: tiled output equals untiled output, for every family, tile size and border."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.inference.stylize import stylize
from stylenorm.models import LoadedModel, load
from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder
from stylenorm.nets.tiling import (
    adain_stylize_tiled,
    receptive_radius,
    tiled_decode,
    tiled_encode,
    tiled_sequential,
    transformer_tiled,
)
from tests.test_stylize import RED, TEAL, content_image, make_models, style_image

TOL = 1e-4  # float32: tiles only change the summation order inside the convolutions


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    root = make_models(tmp_path_factory.mktemp("models"))
    return {name: load(name, root) for name in ("fast", "multi", "ada")}


def _close(a: Tensor, b: Tensor, tol: float = TOL) -> None:
    assert a.shape == b.shape
    diff = float((a - b).abs().max())
    assert diff <= tol, diff


# ------------------------------------------------------------------ whole families


@pytest.mark.parametrize(("size", "tile"), [((72, 100), 32), ((72, 100), 48), ((70, 99), 40)])
def test_fast_tiled_equals_untiled(loaded: dict[str, LoadedModel], size: tuple[int, int], tile: int) -> None:
    c = content_image(*size)
    untiled = stylize(loaded["fast"], c)
    _close(stylize(loaded["fast"], c, tile=tile), untiled)
    with torch.inference_mode():  # also before the final clamp of stylize
        _close(transformer_tiled(loaded["fast"].module, c, tile=tile), loaded["fast"].module(c))


@pytest.mark.parametrize(("styles", "weights", "tile"), [(["b"], None, 36), (["a", "c"], [0.3, 0.7], 44)])
def test_multistyle_tiled_equals_untiled(
    loaded: dict[str, LoadedModel], styles: list[str], weights: list[float] | None, tile: int
) -> None:
    c = content_image()
    untiled = stylize(loaded["multi"], c, styles, weights)
    _close(stylize(loaded["multi"], c, styles, weights, tile=tile), untiled)
    assert (untiled - c).abs().mean() > 0.05  # a real stylization, not a trivial equality


def test_linear_output_and_pixel_scale_follow_the_net() -> None:
    torch.manual_seed(0)
    net = TransformerNet(pixel_scale=255.0, output="linear").eval()
    c = content_image(40, 52)
    with torch.inference_mode():
        ref = net(c)
        _close(transformer_tiled(net, c, tile=16), ref)
    assert 0 < float(ref.mean()) < 1


@pytest.mark.parametrize(
    ("options", "tile"),
    [
        ({"style_weights": [0.3, 0.7], "alpha": 0.8}, 32),
        ({"masks": "halves"}, 44),
        ({"preserve_color": True, "alpha": 0.5}, 40),
    ],
)
def test_adain_tiled_equals_untiled(loaded: dict[str, LoadedModel], options: dict, tile: int) -> None:
    c = content_image(70, 99)  # not a multiple of 4: AdaIN pads, and the tiles must not divide it
    styles = [style_image(RED), style_image(TEAL, 44, 30, seed=5)]
    if options.get("masks") == "halves":
        left = torch.zeros(70, 99)
        left[:, :40] = 1
        options = {**options, "masks": [left, 1 - left]}
    if options.get("preserve_color"):
        styles = styles[:1]
    untiled = stylize(loaded["ada"], c, styles, **options)
    tiled = stylize(loaded["ada"], c, styles, tile=tile, **options)
    _close(tiled, untiled)
    assert (untiled - c).abs().mean() > 0.05


def test_adain_unclamped_output_matches_too(loaded: dict[str, LoadedModel]) -> None:
    net = loaded["ada"].module
    c, s = content_image(), style_image(RED)
    with torch.inference_mode():
        ref = net.stylize(c, [s], alpha=0.9)
        got = adain_stylize_tiled(net, c, [s], alpha=0.9, tile=32)
    scale = float(ref.abs().max())
    _close(got, ref, TOL * max(1.0, scale))


# ------------------------------------------------------------------ encoder and decoder at every border


@pytest.mark.parametrize(
    ("fmt", "last", "size"),
    [
        ("random", "relu3_1", (45, 37)),
        ("normalised", "relu2_1", (45, 37)),
        ("normalised", "relu3_1", (64, 72)),
    ],
)
def test_tiled_encoder_matches_on_odd_sizes(fmt: str, last: str, size: tuple[int, int]) -> None:
    # zero padding + floor pooling (torchvision layout), reflection padding + ceil pooling (normalised)
    enc = VGGEncoder(19, last, fmt)
    enc.randomize(3)
    x = torch.rand(1, 3, *size)
    with torch.inference_mode():
        ref = enc(x)[last]
        for tile in (16, 24, 33):
            _close(tiled_encode(enc, x, tile), ref, 1e-5 * max(1.0, float(ref.abs().max())))


def test_tiled_decoder_matches(loaded: dict[str, LoadedModel]) -> None:
    net: AdaINNet = loaded["ada"].module
    feat = torch.randn(1, net.encoder.out_channels, 13, 19).relu()
    with torch.inference_mode():
        ref = net.decode(feat, (50, 70))
        for tile in (16, 20, 48):
            _close(tiled_decode(net, feat, tile, (50, 70)), ref)


def _zoo() -> nn.Sequential:
    """Every layer kind the tiler knows: four paddings, stride, dilation, ceil pooling, upsampling."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.ReflectionPad2d((2, 1, 1, 2)),
        nn.Conv2d(3, 6, (4, 3)),
        nn.LeakyReLU(0.2),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.ReplicationPad2d(2),
        nn.Conv2d(6, 5, 3, dilation=2),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(5, 5, 3, padding=1, padding_mode="circular"),
        nn.Upsample(scale_factor=3),
        nn.ZeroPad2d(1),
        nn.Conv2d(5, 4, 3),
        nn.Tanh(),
    ).eval()


@pytest.mark.parametrize(
    ("size", "tiles"), [((23, 31), (4, 7, 1000)), ((40, 17), (5, 8)), ((16, 16), (1, 3))]
)
def test_any_local_chain_tiles_exactly(size: tuple[int, int], tiles: tuple[int, ...]) -> None:
    layers = _zoo()
    x = torch.randn(2, 3, *size)
    with torch.inference_mode():
        ref = layers(x)
        for tile in tiles:
            _close(tiled_sequential(layers, x, tile), ref, 1e-5)


def test_receptive_radius() -> None:
    three = [nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)]
    assert receptive_radius(three) == 3
    # stride 2, then a 3×3 at half resolution: output [o, o+1) ↔ input [2o, 2o+2), reads [2o−3, 2o+4)
    assert receptive_radius([nn.Conv2d(1, 1, 3, 2, 1), nn.Conv2d(1, 1, 3, 1, 1)]) == 3
    # VGG to relu3_1: 2 convs at stride 1, 2 at stride 2, 1 at stride 4 -> 2 + 4 + 4
    assert receptive_radius(VGGEncoder(19, "relu3_1", "random").features) == 10
    assert receptive_radius([nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.Conv2d(1, 1, 3)]) == 1


# ------------------------------------------------------------------ one pass, small working set


def _conv_spy(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Record, for every F.conv2d call, its output and input element counts."""
    outs: list[int] = []
    ins: list[int] = []
    original: Callable[..., Tensor] = F.conv2d

    def spy(x: Tensor, *args: object, **kwargs: object) -> Tensor:
        y = original(x, *args, **kwargs)
        outs.append(y.numel())
        ins.append(x.numel())
        return y

    monkeypatch.setattr(F, "conv2d", spy)
    return outs, ins


def test_transformer_tiles_compute_every_output_once(
    loaded: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    net, c = loaded["fast"].module, content_image()
    outs, ins = _conv_spy(monkeypatch)
    with torch.inference_mode():
        net(c)
        untiled_out, untiled_in = sum(outs), max(ins)
        outs.clear()
        ins.clear()
        transformer_tiled(net, c, tile=32)
    assert len(outs) > 16 * 5  # really tiled: several tiles for each of the 16 convolutions
    assert sum(outs) == untiled_out  # one pass: no output pixel computed twice
    assert max(ins) < untiled_in / 2  # the device only ever holds one tile of one convolution


# ------------------------------------------------------------------ errors


def test_tiling_errors() -> None:
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(SpecError, match="cannot tile a BatchNorm2d"):
        tiled_sequential([nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3)], x, 8)
    with pytest.raises(SpecError, match="nearest upsampling"):
        tiled_sequential([nn.Upsample(scale_factor=2, mode="bilinear")], x, 8)
    with pytest.raises(SpecError, match="integer factor"):
        tiled_sequential([nn.Upsample(scale_factor=1.5)], x, 8)
    with pytest.raises(SpecError, match="just before a convolution"):
        tiled_sequential([nn.ReflectionPad2d(1), nn.ReLU()], x, 8)
    with pytest.raises(ShapeError, match="too small"):
        tiled_sequential([nn.ReflectionPad2d(4), nn.Conv2d(3, 3, 3)], torch.rand(1, 3, 4, 30), 8)
    with pytest.raises(SpecError, match="at least 16"):
        transformer_tiled(TransformerNet().eval(), x, tile=15)
    with pytest.raises(ShapeError, match="needs a style"):
        transformer_tiled(TransformerNet("cin", num_styles=2).eval(), x, tile=16)

