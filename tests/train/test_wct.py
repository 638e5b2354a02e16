"""The WCT family: whitening and colouring against its formula, the reconstruction recipe through the
trainer (losses fall, exact resume, a loadable folder), and the model through stylize() and the server.

Tiny drawn images, the random encoder, two levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from stylenorm import models
from stylenorm.errors import ShapeError, SpecError
from stylenorm.inference.stylize import stylize
from stylenorm.nets.adain import crop_margin, pad_mirrored
from stylenorm.nets.vgg import VGGEncoder
from stylenorm.nets.wct import MARGIN, WCTNet
from stylenorm.norm.whitening import style_covariance
from stylenorm.train import build_recipe, make_config, train
from tests.data.drawing import image_folder

STEPS = 6


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wct-data")
    image_folder(root / "content", 4, size=(48, 40))
    return root / "content"


def settings(content: Path, out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "content": content,
        "out": out,
        "run_dir": out.parent / "runs" / out.name,
        "steps": STEPS,
        "batch_size": 2,
        "image_size": 32,
        "load_size": 40,
        "encoder": "random",
        "levels": "relu1_1,relu2_1",
        "workers": 0,
        "log_every": 1,
        "sample_every": 3,
        "checkpoint_every": 3,
    } | extra


def test_the_coloured_features_have_the_style_mean_and_covariance() -> None:
    net = WCTNet(
        VGGEncoder(16, "relu2_1", fmt="random"), ("relu1_1", "relu2_1"), eps=0.0, method="eigh"
    ).double()
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 16, 9, 11, generator=g, dtype=torch.float64) + 2.0
    style_feat = torch.randn(1, 16, 8, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, dtype=torch.float64
    )
    mean, sigma = style_covariance(style_feat, 0.0)
    lam, vec = torch.linalg.eigh(sigma)
    root = vec @ torch.diag_embed(lam.clamp_min(0).sqrt()) @ vec.transpose(-1, -2)
    out = net.transfer(feat, [(mean, root)], [1.0])
    got_mean, got_sigma = style_covariance(out, 0.0)
    torch.testing.assert_close(got_mean, mean, atol=1e-9, rtol=0)
    torch.testing.assert_close(got_sigma, sigma, atol=1e-8, rtol=0)
    # two styles at weights 1/4, 3/4 blend the coloured features
    other = (mean + 1.0, 2.0 * root)
    mixed = net.transfer(feat, [(mean, root), other], [0.25, 0.75])
    expected = 0.25 * out + 0.75 * net.transfer(feat, [other], [1.0])
    torch.testing.assert_close(mixed, expected)


def test_the_recipe_trains_resumes_exactly_and_writes_a_wct_model(content: Path, tmp_path: Path) -> None:
    full = train(make_config("wct", settings(content, tmp_path / "full")), build_recipe)
    first_losses = [row["loss"] for row in full.history]
    assert min(first_losses[-2:]) < first_losses[0]  # the reconstructions improve
    values = settings(content, tmp_path / "m")
    half = train(make_config("wct", values | {"steps": STEPS // 2}), build_recipe)
    rest = train(make_config("wct", values | {"resume": "latest"}), build_recipe)
    for got, want in zip(half.history + rest.history, full.history, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-6), got["step"]
    loaded = models.load(tmp_path / "m")
    assert loaded.card.architecture == "wct" and loaded.card.arguments["levels"] == ["relu1_1", "relu2_1"]
    reference = models.load(tmp_path / "full").module.state_dict()
    for key, value in loaded.module.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=1e-6)


def test_a_wct_model_stylizes_through_the_library_and_the_server(content: Path, tmp_path: Path) -> None:
    from tests.server.conftest import image_bytes, live_server

    repo = tmp_path / "models"
    train(make_config("wct", settings(content, repo / "wct", steps=2)), build_recipe)
    model = models.load("wct", repo)
    g = torch.Generator().manual_seed(1)
    photo, style_a, style_b = (torch.rand(1, 3, 40, 48, generator=g) for _ in range(3))
    out = stylize(model, photo, [style_a, style_b], [1, 3], alpha=0.7)
    assert out.shape == photo.shape and torch.isfinite(out).all()
    none = stylize(model, photo, [style_a], alpha=0.0)  # no style: the decoders' reconstruction cascade
    net = model.module
    x, h, w = pad_mirrored(photo, MARGIN, net.multiple)  # (h, w) = (40, 48)
    with torch.no_grad():
        for level in ("relu2_1", "relu1_1"):
            x = net.decoders.by_level[level](net.encoder(x, (level,))[level])
    torch.testing.assert_close(none, crop_margin(x, MARGIN, (h, w)).clamp(0, 1), atol=1e-5, rtol=0)
    # masks take region statistics: a mask over everything (and an empty one) is the style alone
    whole = stylize(model, photo, [style_a, style_b], masks=[torch.ones(40, 48), torch.zeros(40, 48)])
    torch.testing.assert_close(whole, stylize(model, photo, [style_a]), atol=1e-4, rtol=0)
    left = torch.zeros(40, 48)
    left[:, :24] = 1
    halves = stylize(model, photo, [style_a, style_b], masks=[left, 1 - left])
    assert halves.shape == photo.shape and torch.isfinite(halves).all()
    with pytest.raises(SpecError, match="one mask per style"):
        stylize(model, photo, [style_a, style_b], [1, 1], masks=[left, 1 - left])
    with live_server(repo) as server:
        r = server.client.post(
            "/v1/stylize",
            files={
                "content": ("c.png", image_bytes(48, 40), "image/png"),
                "style": ("s.png", image_bytes(40, 40)),
            },
            data={"model": "wct", "alpha": "0.5"},
        )
        assert r.status_code == 200, r.text
        options = server.client.get("/v1/models/wct").json()["options"]
        assert options["uploaded_styles"] and options["alpha"] and options["masks"]


@pytest.mark.slow
def test_the_wct_model_exports_to_onnx_and_passes_the_onnxruntime_check(
    content: Path, tmp_path: Path
) -> None:
    """Two graphs (style statistics; the cascade), no SVD or eigendecomposition in either, and the
    client-side recipe (mirror, pad, run, crop) within the family's stated tolerance."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from stylenorm.families import family_of
    from stylenorm.interop.export import check_onnx, export_onnx

    train(make_config("wct", settings(content, tmp_path / "wct", steps=1)), build_recipe)
    model = models.load(tmp_path / "wct")
    paths = export_onnx(model, tmp_path / "onnx" / "wct.onnx")
    assert [p.name for p in paths] == ["wct.onnx", "wct.style.onnx"]
    for path in paths:
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert not ops & {"Eig", "Eigh", "SVD", "Svd"}, ops
    g = torch.Generator().manual_seed(4)
    worst = check_onnx(
        model, paths, (torch.rand(2, 3, 60, 72, generator=g), torch.rand(1, 3, 50, 40, generator=g))
    )
    assert worst <= family_of(model.card).onnx_tolerance, worst


def test_all_four_levels_train_and_stylize_any_size(content: Path, tmp_path: Path) -> None:
    """relu1_1…relu4_1 (the paper's cascade): the recipe trains all four decoders, and the model keeps
    an odd-sized content's size through the 8-pixel alignment relu4_1 needs (large enough that
    relu4_1's 512 channels have more pixels than channels to whiten; smaller is a clear ShapeError)."""
    levels = "relu1_1,relu2_1,relu3_1,relu4_1"
    result = train(make_config("wct", settings(content, tmp_path / "wct4", steps=2, levels=levels)))
    assert {f"pixel_{level}" for level in levels.split(",")} <= set(result.history[-1])
    loaded = models.load(tmp_path / "wct4")
    assert isinstance(loaded.module, WCTNet) and loaded.module.levels == tuple(levels.split(","))
    out = stylize(loaded, torch.rand(1, 3, 181, 203), [torch.rand(1, 3, 200, 200)], alpha=0.6)
    assert out.shape == (1, 3, 181, 203) and torch.isfinite(out).all()
    with pytest.raises(ShapeError, match="needs at least that many elements per map"):
        stylize(loaded, torch.rand(1, 3, 45, 61), [torch.rand(1, 3, 200, 200)])
