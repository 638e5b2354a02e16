"""The stylize API and the ``stylenorm stylize`` / ``stylenorm models`` commands, on tiny random models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

import stylenorm.families.adain as adain_family
import stylenorm.families.fast as fast_family
import stylenorm.inference.stylize as stylize_module
from stylenorm import cli
from stylenorm.errors import ShapeError, SpecError
from stylenorm.imageio import load_image, save_image
from stylenorm.inference.stylize import StyleCache, UnknownStyle, preserve_colors, resize_to, stylize
from stylenorm.models import LoadedModel, build, load, weights_to_save
from stylenorm.nets.adain import AdaINNet, coral
from stylenorm.nets.color import rgb_to_lab
from stylenorm.nets.tiling import receptive_radius
from stylenorm.repository import ModelCard, save_model

H, W = 72, 100


pytestmark = pytest.mark.usefixtures("one_thread")


def _encoder(last: str) -> dict:
    return {"encoder": {"fmt": "random", "depth": 19, "last": last, "seed": 0}}


def _he_decoder(net: AdaINNet, seed: int) -> None:
    """He-normal decoder weights (torch's default init fades the signal to a flat gray), output near 0.5."""
    g = torch.Generator().manual_seed(seed)
    convs = [m for m in net.decoder if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for c in convs:
            c.weight.copy_(torch.randn(c.weight.shape, generator=g) * math.sqrt(2 / (c.in_channels * 9)))
            c.bias.zero_()
        convs[-1].weight.mul_(0.35)
        convs[-1].bias.fill_(0.5)


def _fit_decoder(net: AdaINNet, images: Tensor) -> None:
    """A one-conv decoder (relu1_1 nets) fitted by least squares to invert the encoder on ``images``.

    Random weights carry no colour meaning; a fitted decoder makes the output's colours follow the
    feature statistics, so colour preservation has something to preserve.
    """
    conv = net.decoder[1]
    with torch.no_grad():
        feats = F.pad(net.encode(images), (1, 1, 1, 1), mode="reflect")
        cols = F.unfold(feats, 3).transpose(1, 2).reshape(-1, conv.in_channels * 9)
        cols = torch.cat([cols, torch.ones(cols.shape[0], 1)], 1)
        target = images.permute(0, 2, 3, 1).reshape(-1, 3)
        sol = torch.linalg.lstsq(cols.double(), target.double()).solution.float()
        conv.weight.copy_(sol[:-1].T.reshape(3, conv.in_channels, 3, 3))
        conv.bias.copy_(sol[-1])


def _randomize_cin(net: nn.Module, seed: int) -> None:
    """Distinct (γ, β) rows per style: built CIN tables all start at γ = 1, β = 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 2 and name.endswith(".weight") and "conv" not in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2 and name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def content_image(h: int = H, w: int = W, seed: int = 0) -> Tensor:
    """A smooth bluish gradient with some texture, (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.2 + 0.3 * xx, 0.35 + 0.3 * yy, 0.8 - 0.3 * xx])[None]
    return (base + 0.15 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def style_image(tint: tuple[float, float, float], h: int = 40, w: int = 36, seed: int = 1) -> Tensor:
    """Tinted noise, (1, 3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, h, w, generator=g) * torch.tensor(tint).view(1, 3, 1, 1)).clamp(0, 1)


RED = (1.0, 0.25, 0.1)
TEAL = (0.1, 0.8, 0.7)


def make_models(root: Path) -> Path:
    """Tiny random models in root: fast, multi (styles a, b, c), ada (relu3_1), ada1 (relu1_1), color."""
    torch.manual_seed(0)
    cards = {
        "fast": ModelCard(name="fast", architecture="fast", description="random fast net"),
        "multi": ModelCard(name="multi", architecture="multistyle", styles=["a", "b", "c"]),
        "ada": ModelCard(name="ada", architecture="adain", arguments=_encoder("relu3_1")),
        "ada1": ModelCard(name="ada1", architecture="adain", arguments=_encoder("relu1_1")),
        "color": ModelCard(name="color", architecture="color", description="Reinhard"),
    }
    for name, card in cards.items():
        module = build(card)
        if name == "multi":
            _randomize_cin(module, 3)
        elif name == "ada":
            _he_decoder(module, 2)
        elif name == "ada1":
            _fit_decoder(module, torch.cat([content_image(48, 48), style_image(RED, 48, 48)]))
        save_model(root / name, card, weights_to_save(card, module))
    return root


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def loaded(models_dir: Path) -> dict[str, LoadedModel]:
    return {name: load(name, models_dir) for name in ("fast", "multi", "ada", "ada1", "color")}


def _chroma(x: Tensor) -> Tensor:
    """Per-pixel (Cb, Cr) of BT.601 YCbCr (without offsets): (N, 2, H, W)."""
    y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return torch.stack([x[:, 2] - y, x[:, 0] - y], 1)


# ------------------------------------------------------------------ each family through the API


def test_fast_stylizes_at_the_content_size(loaded: dict[str, LoadedModel]) -> None:
    c = content_image(70, 99)  # not a multiple of 4: padded and cropped back
    out = stylize(loaded["fast"], c)
    assert out.shape == c.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and (out - c).abs().mean() > 0.05
    with torch.inference_mode():
        torch.testing.assert_close(out, loaded["fast"].module(c))


def test_multistyle_names_and_mixing(loaded: dict[str, LoadedModel]) -> None:
    m, c = loaded["multi"], content_image()
    a, b = stylize(m, c, ["a"]), stylize(m, c, ["b"])
    assert (a - b).abs().mean() > 0.02  # the styles differ
    torch.testing.assert_close(stylize(m, c, ["a", "b"], [1.0, 0.0]), a, atol=1e-5, rtol=0)
    torch.testing.assert_close(stylize(m, c, ["b", "a"], [3.0, 0.0]), b, atol=1e-5, rtol=0)
    mix = stylize(m, c, ["a", "b"], [0.5, 0.5])
    with torch.inference_mode():
        expected = m.module(c, torch.tensor([[0.5, 0.5, 0.0]]))
    torch.testing.assert_close(mix, expected)
    assert (mix - a).abs().mean() > 0.005 and (mix - b).abs().mean() > 0.005


def test_adain_alpha_zero_reproduces_the_content_reconstruction(loaded: dict[str, LoadedModel]) -> None:
    net = loaded["ada"].module
    c = content_image(60, 44)  # not a multiple of 4: padded, then cropped
    out = stylize(loaded["ada"], c, [style_image(RED)], alpha=0.0)
    with torch.inference_mode():
        x, h, w = net._pad(c)
        recon = net.decode(net.encode(x), (h, w)).clamp(0, 1)
    torch.testing.assert_close(out, recon, atol=1e-6, rtol=0)
    styled = stylize(loaded["ada"], c, [style_image(RED)], alpha=1.0)
    half = stylize(loaded["ada"], c, [style_image(RED)], alpha=0.5)
    assert (styled - recon).abs().mean() > 0.01
    assert 0 < (half - recon).abs().mean() < (styled - recon).abs().mean()


def test_adain_weights_and_cached_statistics(loaded: dict[str, LoadedModel]) -> None:
    m, c = loaded["ada"], content_image()
    s1, s2 = style_image(RED), style_image(TEAL, seed=5)
    only1 = stylize(m, c, [s1])
    torch.testing.assert_close(stylize(m, c, [s1, s2], [1.0, 0.0]), only1, atol=1e-5, rtol=0)
    with torch.inference_mode():
        stats = m.module.style_stats(s1)
    torch.testing.assert_close(stylize(m, c, [stats]), only1, atol=1e-6, rtol=0)
    mixed = stylize(m, c, [s1, s2], [0.5, 0.5])
    assert (mixed - only1).abs().mean() > 0.005


def test_adain_masks_put_each_style_in_its_region(loaded: dict[str, LoadedModel]) -> None:
    m, c = loaded["ada"], content_image()
    g = torch.Generator().manual_seed(4)
    calm = (0.4 + 0.1 * torch.rand(1, 3, 40, 36, generator=g)) * torch.tensor(RED).view(1, 3, 1, 1)
    busy = torch.rand(1, 3, 44, 30, generator=g) * torch.tensor(TEAL).view(1, 3, 1, 1)
    left = torch.zeros(H, W)
    left[:, : W // 2] = 1
    masks = [left, 1 - left]
    masked = stylize(m, c, [calm, busy], masks=masks)
    single = {0: stylize(m, c, [calm]), 1: stylize(m, c, [busy])}
    # Stay clear of the boundary by the decoder's reach (its receptive radius on the relu3_1 grid,
    # 4 image pixels per feature pixel) plus a feature pixel for the nearest-resized mask.
    margin = 4 * (receptive_radius(m.module.decoder) + 1)
    regions = {0: slice(0, W // 2 - margin), 1: slice(W // 2 + margin, W)}
    for own, other in ((0, 1), (1, 0)):
        cols = regions[own]
        # what happens in a region depends only on its own style: swap the other style, same pixels
        alone = stylize(m, c, [calm, calm] if own == 0 else [busy, busy], masks=masks)
        torch.testing.assert_close(masked[..., cols], alone[..., cols], atol=1e-6, rtol=0)
        d_own = (masked[..., cols] - single[own][..., cols]).abs().mean()
        d_other = (masked[..., cols] - single[other][..., cols]).abs().mean()
        # Close to, not equal to, the single-style result: masked AdaIN normalizes the content by
        # its region's statistics, not the whole image's (here the content has a left-right
        # gradient, so they differ). That shift is small next to the change of style: the region
        # must be at least 2.5 times closer to its own style's result than to the other's.
        assert d_own < 0.4 * d_other, (own, float(d_own), float(d_other))


def test_adain_preserve_color_recolours_the_styles_with_coral(loaded: dict[str, LoadedModel]) -> None:
    m, c, s = loaded["ada"], content_image(), style_image(RED)
    recoloured = coral(s[0], c[0])[None]
    torch.testing.assert_close(stylize(m, c, [s], preserve_color=True), stylize(m, c, [recoloured]))


def test_adain_preserve_color_keeps_the_content_chroma(loaded: dict[str, LoadedModel]) -> None:
    m, c = loaded["ada1"], content_image()
    recon = stylize(m, c, [style_image(RED)], alpha=0.0)
    assert (recon - c).abs().mean() < 0.03  # the fitted decoder inverts the encoder
    for tint in (RED, TEAL):
        s = style_image(tint, seed=7)
        plain = stylize(m, c, [s])
        kept = stylize(m, c, [s], preserve_color=True)
        d_plain = (_chroma(plain).mean((2, 3)) - _chroma(c).mean((2, 3))).norm()
        d_kept = (_chroma(kept).mean((2, 3)) - _chroma(c).mean((2, 3))).norm()
        assert d_kept < 0.5 * d_plain, (tint, float(d_kept), float(d_plain))


def test_fast_and_multistyle_preserve_color_take_the_content_chroma(loaded: dict[str, LoadedModel]) -> None:
    c = content_image()
    for model, styles in ((loaded["fast"], []), (loaded["multi"], ["c"])):
        plain = stylize(model, c, styles)
        kept = stylize(model, c, styles, preserve_color=True)
        torch.testing.assert_close(kept, preserve_colors(plain, c))
        inside = (kept > 0.001).all(1, keepdim=True) & (kept < 0.999).all(1, keepdim=True)  # not clamped
        err_kept = (_chroma(kept) - _chroma(c)).abs()[inside.expand(-1, 2, -1, -1)].mean()
        err_plain = (_chroma(plain) - _chroma(c)).abs().mean()
        assert err_kept < 1e-5 < err_plain
        lum = 0.299 * kept[:, 0] + 0.587 * kept[:, 1] + 0.114 * kept[:, 2]
        lum_plain = 0.299 * plain[:, 0] + 0.587 * plain[:, 1] + 0.114 * plain[:, 2]
        assert (lum - lum_plain)[inside[:, 0]].abs().max() < 1e-5  # the stylized luminance stays


def test_color_model_moves_the_colour_statistics(loaded: dict[str, LoadedModel]) -> None:
    c, s = content_image(), style_image(RED)
    out = stylize(loaded["color"], c, [s])
    assert (rgb_to_lab(out).mean((2, 3)) - rgb_to_lab(s).mean((2, 3))).abs().max() < 0.05
    torch.testing.assert_close(stylize(loaded["color"], c, [s], alpha=0.0), c, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ invalid combinations


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "message"),
    [
        ("fast", {"styles": ["a"]}, SpecError, "fast models do not take styles"),
        ("fast", {"alpha": 0.5}, SpecError, "do not take alpha"),
        ("fast", {"alpha": 0.0}, SpecError, "do not take alpha"),
        ("fast", {"style_weights": [1.0]}, SpecError, "style weights"),
        ("multi", {"styles": ["a"], "masks": [torch.ones(H, W)]}, SpecError, "do not take masks"),
        ("multi", {"styles": ["a"], "alpha": 0.5}, SpecError, "do not take alpha"),
        ("multi", {}, SpecError, "needs a style name: one of a, b, c"),
        ("multi", {"styles": ["a", "b"], "style_weights": [1.0]}, ShapeError, "1 style weights for 2 styles"),
        ("multi", {"styles": ["a", "b"], "style_weights": [1.0, -1.0]}, ShapeError, "non-negative"),
        ("multi", {"styles": [torch.rand(1, 3, 32, 32)]}, SpecError, "are names"),
        ("ada", {}, SpecError, "at least one style image"),
        ("ada", {"styles": ["a"]}, UnknownStyle, "has no style .a.; its styles: none"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)], "alpha": 1.5}, ShapeError, "alpha must be"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)] * 2, "style_weights": [1.0]}, ShapeError,
         "1 style weights"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)] * 2, "masks": [torch.ones(H, W)]}, ShapeError,
         "one mask per style"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)], "masks": [torch.ones(H, W + 1)]}, ShapeError,
         r"\(H, W\) = \(72, 100\)"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)] * 2, "masks": [torch.ones(H, W)] * 2,
                 "style_weights": [1.0, 1.0]}, SpecError, "weights or masks, not both"),
        ("ada", {"styles": [(torch.zeros(1, 256), torch.ones(1, 256))], "preserve_color": True}, SpecError,
         "cached statistics"),
        ("ada", {"styles": [torch.rand(1, 3, 8, 32)]}, ShapeError, "at least 16 pixels"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)], "half": True}, SpecError, "CUDA"),
        ("ada", {"styles": [torch.rand(1, 3, 32, 32)], "tile": 8}, SpecError, "at least 16"),
        ("color", {"styles": []}, SpecError, "exactly one style image"),
        ("color", {"styles": [torch.rand(1, 3, 32, 32)] * 2}, SpecError, "exactly one style image"),
        ("color", {"styles": [torch.rand(1, 3, 32, 32)], "style_weights": [1.0]}, SpecError, "style weights"),
        ("color", {"styles": [torch.rand(1, 3, 32, 32)], "preserve_color": True}, SpecError,
         "preserve color"),
        ("color", {"styles": [torch.rand(1, 3, 32, 32)], "masks": [torch.ones(H, W)]}, SpecError, "masks"),
    ],
)
def test_invalid_combinations_are_errors(
    loaded: dict[str, LoadedModel], name: str, kwargs: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        stylize(loaded[name], content_image(), **kwargs)


def test_unknown_style_names_list_the_valid_ones(loaded: dict[str, LoadedModel]) -> None:
    with pytest.raises(UnknownStyle) as info:
        stylize(loaded["multi"], content_image(), ["a", "zebra"])
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "model 'multi' has no style 'zebra'; valid styles: a, b, c"


@pytest.mark.parametrize(
    "content", [torch.rand(3, H, W), torch.rand(2, 3, H, W), torch.rand(1, 4, H, W), torch.rand(1, 3, 12, 40)]
)
def test_bad_contents_are_shape_errors(loaded: dict[str, LoadedModel], content: Tensor) -> None:
    with pytest.raises(ShapeError, match="content"):
        stylize(loaded["fast"], content)


# ------------------------------------------------------------------ helpers of the API


def test_resize_to_bounds_the_longer_side_and_never_upscales() -> None:
    img = torch.rand(1, 3, 60, 90)
    assert resize_to(img, 45).shape == (1, 3, 30, 45)
    assert resize_to(img.transpose(2, 3), 45).shape == (1, 3, 45, 30)
    assert resize_to(img, 200) is img and resize_to(img, None) is img
    flat = torch.full((1, 3, 60, 90), 0.3)
    torch.testing.assert_close(resize_to(flat, 30), torch.full((1, 3, 20, 30), 0.3))
    for bad in (0, -5, 2.5):
        with pytest.raises(SpecError, match="positive"):
            resize_to(img, bad)  # type: ignore[arg-type]


def test_style_cache_reuses_statistics(
    loaded: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    m, c, s = loaded["ada"], content_image(), style_image(TEAL)
    calls = []
    original = AdaINNet.style_stats

    def counting(self: AdaINNet, style: Tensor) -> tuple[Tensor, Tensor]:
        calls.append(tuple(style.shape))
        return original(self, style)

    monkeypatch.setattr(AdaINNet, "style_stats", counting)
    cache = StyleCache(capacity=2)
    first = stylize(m, c, [s], cache=cache)
    again = stylize(m, c, [s.clone()], cache=cache)  # equal pixels: the same key
    assert len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(first, stylize(m, c, [s]))
    stylize(m, c, [style_image(RED)], cache=cache)
    stylize(m, c, [style_image(RED, seed=9)], cache=cache)
    assert len(cache) == 2 and ("ada", StyleCache.key_of(s)) not in cache  # least recent evicted
    cache.drop("ada")
    assert len(cache) == 0


def test_large_contents_switch_to_tiles(
    loaded: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = fast_family.transformer_tiled

    def spy(*args: object, **kwargs: object) -> Tensor:
        calls.append(args[3] if len(args) > 3 else kwargs.get("tile"))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fast_family, "transformer_tiled", spy)  # the fast family runs the tiles
    c = content_image()
    untiled = stylize(loaded["fast"], c, max_untiled_pixels=H * W)
    assert calls == []
    tiled = stylize(loaded["fast"], c, max_untiled_pixels=H * W - 1)
    assert calls == [stylize_module.DEFAULT_TILE]
    stylize(loaded["fast"], c, tile=32)
    assert calls[-1] == 32
    torch.testing.assert_close(tiled, untiled, atol=1e-4, rtol=0)


def test_bare_styles_and_large_style_images(
    loaded: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = content_image()
    torch.testing.assert_close(stylize(loaded["multi"], c, "b"), stylize(loaded["multi"], c, ["b"]))
    s = style_image(RED, 100, 90)  # more pixels than the content
    calls = []
    original = adain_family.tiled_style_stats

    def spy(*args: object) -> tuple[Tensor, Tensor]:
        calls.append(args[2])
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(adain_family, "tiled_style_stats", spy)
    plain = stylize(loaded["ada"], c, s)
    assert calls == []
    bounded = stylize(loaded["ada"], c, [s], max_untiled_pixels=H * W)  # the content fits, the style not
    assert calls == [stylize_module.DEFAULT_TILE]
    torch.testing.assert_close(bounded, plain, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ the command line


def _save(t: Tensor, path: Path) -> Path:
    save_image(t, path)
    return path


def test_cli_each_family_end_to_end(tmp_path: Path, models_dir: Path, loaded: dict[str, LoadedModel]) -> None:
    c_path = _save(content_image(), tmp_path / "content.png")
    s1 = _save(style_image(RED), tmp_path / "s1.png")
    s2 = _save(style_image(TEAL, seed=5), tmp_path / "s2.png")
    left = torch.zeros(H, W)
    left[:, : W // 2] = 1
    Image.fromarray((left * 255).byte().numpy(), "L").save(tmp_path / "m1.png")
    Image.fromarray(((1 - left) * 255).byte().numpy(), "L").save(tmp_path / "m2.png")
    c = load_image(c_path)  # the API sees what the command sees: the 8-bit file
    styles = [load_image(s1), load_image(s2)]
    base = ["stylize", "--models-dir", str(models_dir), "--content", str(c_path)]
    runs = [
        (["--model", "fast", "--tile", "32"], stylize(loaded["fast"], c)),
        (["--model", "multi", "--style", "a", "b", "--style-weights", "0.3", "0.7"],
         stylize(loaded["multi"], c, ["a", "b"], [0.3, 0.7])),
        (["--model", "ada", "--style", str(s1), str(s2), "--mask", str(tmp_path / "m1.png"),
          str(tmp_path / "m2.png"), "--alpha", "0.8"],
         stylize(loaded["ada"], c, styles, alpha=0.8, masks=[left, 1 - left])),
        (["--model", "ada", "--style", str(s1), "--preserve-color"],
         stylize(loaded["ada"], c, styles[:1], preserve_color=True)),
        (["--model", str(models_dir / "color"), "--style", str(s2), "--alpha", "0.5"],
         stylize(loaded["color"], c, styles[1:], alpha=0.5)),
    ]
    for i, (options, expected) in enumerate(runs):
        out = tmp_path / f"out{i}.png"
        assert cli.main([*base, *options, "--out", str(out)]) == 0, options
        got = load_image(out)
        assert (got - expected).abs().max() <= 1 / 255 + 1e-6, options


def test_cli_size_folder_and_jpeg(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "contents"
    _save(content_image(), folder / "one.png")
    _save(content_image(50, 40, seed=3), folder / "two.jpg")
    (folder / "readme.txt").write_text("not an image: skipped by extension")
    out = tmp_path / "results"
    assert cli.main(["stylize", "--models-dir", str(models_dir), "--model", "multi", "--style", "b",
                     "--content", str(folder), "--size", "48", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["one_multi.png", "two_multi.png"]
    assert Image.open(out / "one_multi.png").size == (48, 35)  # 100×72 bounded to 48
    assert Image.open(out / "two_multi.png").size == (38, 48)  # 40×50 bounded to 48: 38.4×48
    assert cli.main(["stylize", "--models-dir", str(models_dir), "--model", "fast",
                     "--content", str(folder / "one.png"), "--out", str(out)]) == 0
    assert (out / "one_fast.png").is_file()  # one content into an existing folder
    single = tmp_path / "single.jpg"
    assert cli.main(["stylize", "--models-dir", str(models_dir), "--model", "fast",
                     "--content", str(folder / "one.png"), "--out", str(single)]) == 0
    assert Image.open(single).format == "JPEG"


def test_cli_models_lists_good_and_broken(tmp_path: Path, models_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    make_models(root)
    (root / "junk").mkdir()
    (root / "junk" / "card.toml").write_text("this is = = not toml")
    weights = root / "multi" / "weights.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # truncated: listed as broken, as the server would refuse it
    assert cli.main(["models", "--models-dir", str(root)]) == 0
    assert "multi: " in capsys.readouterr().out.split("broken models")[1]
    weights.write_bytes(good)
    assert cli.main(["models", "--models-dir", str(root)]) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line for line in printed.splitlines() if line and not line.startswith(" ")}
    assert "multistyle" in rows["multi"] and "a, b, c" in rows["multi"]
    assert "adain" in rows["ada"] and "fast" in rows["fast"] and "random fast net" in rows["fast"]
    assert "Reinhard" in rows["color"]
    assert "junk: " in printed and "not a valid model card" in printed
    assert cli.main(["models", "--models-dir", str(tmp_path / "empty")]) == 0
    assert "no models in" in capsys.readouterr().out


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, models_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    c_path = _save(content_image(), tmp_path / "content.png")
    s1 = _save(style_image(RED), tmp_path / "s1.png")
    (tmp_path / "bad.png").write_text("definitely not a png")
    Image.new("L", (30, 20), 255).save(tmp_path / "small_mask.png")
    base = ["stylize", "--models-dir", str(models_dir), "--out", str(tmp_path / "o.png")]
    cases = [
        (["--model", "fast", "--content", str(tmp_path / "bad.png")], "bad.png is not an image"),
        (["--model", "fast", "--content", str(tmp_path / "absent.png")], "does not exist"),
        (["--model", "ada", "--content", str(c_path), "--style", str(s1), "--mask",
          str(tmp_path / "small_mask.png")], "is 30×20 (W×H) but must be 100×72"),
        (["--model", "ada", "--content", str(c_path), "--style", str(s1), "--style-weights", "1", "2"],
         "2 style weights for 1 styles"),
        (["--model", "multi", "--content", str(c_path), "--style", "zebra"],
         "no style 'zebra'; valid styles: a, b, c"),
        (["--model", "nosuchmodel", "--content", str(c_path)], "no model named 'nosuchmodel'"),
        (["--model", "fast", "--content", str(c_path), "--style", str(s1)], "fast models do not take styles"),
        (["--model", "fast", "--content", str(c_path), "--out", str(tmp_path / "o.bmp")], "output format"),
        (["--model", "multi", "--content", str(c_path), "--style", "a", "--style-size", "64"],
         "multistyle models take none"),
        (["--model", "fast", "--content", str(c_path), "--tile", "8"], "at least 16"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--model", "fast", "--content", str(c_path), "--device", "cuda"], "no CUDA device"))
    for options, message in cases:
        assert cli.main([*base, *options]) == 2, options
        err = capsys.readouterr().err.strip()
        assert err.startswith("stylenorm stylize: error:") and message in err, (options, err)
        assert "\n" not in err
    assert not (tmp_path / "o.png").exists()


def test_gallery_names_of_color_and_adain_models_mean_their_style_images(tmp_path: Path) -> None:
    from stylenorm.models import build, load, weights_to_save
    from stylenorm.repository import ModelCard, save_model

    style = torch.rand(1, 3, 20, 24)
    content = torch.rand(1, 3, 32, 32)
    small_adain = {"encoder": {"fmt": "random", "depth": 19, "last": "relu2_1"}}
    for arch, args in (("color", {}), ("adain", small_adain)):
        card = ModelCard(name=arch, architecture=arch, arguments=args, styles=["wave"])
        save_model(tmp_path / arch, card, weights_to_save(card, build(card)))
        (tmp_path / arch / "styles").mkdir()
        save_image(style, tmp_path / arch / "styles" / "wave.png")
        model = load(tmp_path / arch)
        by_name = stylize(model, content, ["wave"])
        by_image = stylize(model, content, [load_image(tmp_path / arch / "styles" / "wave.png")])
        torch.testing.assert_close(by_name, by_image)
        with pytest.raises(UnknownStyle, match="its styles: wave"):
            stylize(model, content, ["sea"])
