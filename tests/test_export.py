"""ONNX export: dynamic batch/height/width survive, outputs match the models under onnxruntime.

Exports are exported once per module (each takes seconds); every check runs at
a batch and H, W other than the export sample (2 × 3 × 64 × 64), including
sizes that are not multiples of 4 or 8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from stylenorm.cli import main
from stylenorm.errors import ShapeError, SpecError
from stylenorm.interop.export import adain_onnx_stylize, check_onnx, export_onnx
from stylenorm.interop.importers import import_fast_neural_style, import_pytorch_adain
from stylenorm.models import LoadedModel, build, load, weights_to_save
from stylenorm.nets import AdaINNet
from stylenorm.repository import ModelCard, save_model
from tests.reference_nets import (
    fast_state_with_legacy_keys,
    published_like_fast_net,
    randomize,
    reference_decoder,
    reference_vgg,
    save_published,
)

TOL = 1e-4
Exported = tuple[LoadedModel, list[Path]]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    models = root / "models"
    fast = save_published(fast_state_with_legacy_keys(published_like_fast_net(5)), root / "candy.pth")
    import_fast_neural_style(fast, models, "candy")
    vgg = save_published(randomize(reference_vgg(), 6).state_dict(), root / "vgg_normalised.pth")
    dec = save_published(randomize(reference_decoder(), 7).state_dict(), root / "decoder.pth")
    import_pytorch_adain(dec, vgg, models, "adain")
    card = ModelCard(name="trio", architecture="multistyle", arguments={"norm": "cin", "num_styles": 3},
                     styles=["a", "b", "c"])
    net = build(card)
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():  # distinct (γ, β) rows, so mixing weights matter
        for name, p in net.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5 if name.endswith("weight") else
                        torch.randn(p.shape, generator=g) * 0.5)
    save_model(models / "trio", card, weights_to_save(card, net))
    save_model(models / "recolor", ModelCard(name="recolor", architecture="color"))
    return models


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.fixture(scope="module")
def fast_export(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    model = load("candy", models_dir)
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "candy.onnx")


@pytest.fixture(scope="module")
def adain_export(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    model = load("adain", models_dir)
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "adain.onnx")


def test_fast_export_has_dynamic_axes_and_matches(fast_export: Exported) -> None:
    model, paths = fast_export
    assert len(paths) == 1 and paths[0].is_file()
    graph = onnx.load(str(paths[0])).graph
    assert [i.name for i in graph.input] == ["image"]
    assert _dims(graph.input[0]) == ["batch", 3, "height", "width"]
    assert _dims(graph.output[0]) == ["batch", 3, "height", "width"]
    meta = _meta(paths[0])
    assert meta["stylenorm.exporter"] in ("dynamo", "torchscript")
    assert meta["stylenorm.model"] == "candy"
    for shape in [(3, 3, 44, 52), (1, 3, 37, 45), (2, 3, 64, 64)]:
        assert check_onnx(model, paths, torch.rand(*shape)) <= TOL, shape


def test_fast_export_matches_the_original_network(fast_export: Exported) -> None:
    """The chain published net -> import -> ONNX keeps the original's [0, 255] numbers."""
    _, paths = fast_export
    original = published_like_fast_net(5)
    x = torch.rand(3, 3, 48, 40)
    out = _session(paths[0]).run(None, {"image": x.numpy()})[0] * 255
    with torch.no_grad():
        theirs = original(x * 255).clamp(0, 255).numpy()
    # fp32 on the 0-255 scale: the two runtimes sum convolutions in different orders (~1e-5 relative)
    np.testing.assert_allclose(out, theirs, rtol=1e-5, atol=1e-3)


def test_multistyle_export_takes_style_weights(models_dir: Path, tmp_path: Path) -> None:
    model = load("trio", models_dir)
    (path,) = export_onnx(model, tmp_path / "trio.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image", "style_weights"]
    assert _dims(graph.input[1]) == ["batch", 3]
    x = torch.rand(3, 3, 44, 50)
    assert check_onnx(model, [path], x) <= TOL  # default: uneven mixtures
    session = _session(path)
    one_hot = F.one_hot(torch.tensor([2, 0, 1]), 3).float()
    out = session.run(None, {"image": x.numpy(), "style_weights": one_hot.numpy()})[0]
    with torch.no_grad():
        by_index = model.module(x, torch.tensor([2, 0, 1])).numpy()
    assert np.abs(out - by_index).max() <= TOL
    other = session.run(None, {"image": x.numpy(), "style_weights": one_hot.roll(1, 1).numpy()})[0]
    assert np.abs(out - other).max() > 1e-2  # the weights really pick the style


def test_adain_export_writes_encoder_and_decoder(adain_export: Exported) -> None:
    model, paths = adain_export
    decoder, encoder = paths
    assert encoder.name == "adain.encoder.onnx" and decoder.name == "adain.onnx"
    dec_graph, enc_graph = onnx.load(str(decoder)).graph, onnx.load(str(encoder)).graph
    assert [i.name for i in enc_graph.input] == ["image"]
    assert [o.name for o in enc_graph.output] == ["features"]
    assert [i.name for i in dec_graph.input] == ["features"]
    assert [o.name for o in dec_graph.output] == ["image"]
    assert _dims(enc_graph.input[0]) == ["batch", 3, "height", "width"]
    assert _dims(dec_graph.input[0]) == ["batch", 512, "feature_height", "feature_width"]
    adain = {"eps": 1e-5, "unbiased": True, "multiple": 8, "margin": 32}
    assert json.loads(_meta(decoder)["stylenorm.adain"]) == adain
    content, style = torch.rand(3, 3, 44, 50), torch.rand(1, 3, 40, 36)
    assert check_onnx(model, paths, (content, style)) <= TOL


def test_the_documented_adain_recipe_for_both_conventions(adain_export: Exported) -> None:
    """adain_onnx_stylize (the docstring recipe) equals AdaINNet in both conventions (port, official)."""
    model, paths = adain_export
    content, style = torch.rand(2, 3, 36, 44), torch.rand(2, 3, 32, 48)
    official = AdaINNet(model.module.encoder, eps=1e-5, unbiased=False)
    official.decoder.load_state_dict(model.module.decoder.state_dict())
    official.eval()
    for net in (model.module, official):
        for alpha in (1.0, 0.3):
            out = adain_onnx_stylize(
                paths, content.numpy(), style.numpy(), alpha, net.eps, net.unbiased, margin=net.margin
            )
            with torch.no_grad():
                expected = net(content, style, alpha).numpy()
            assert out.shape == expected.shape == (2, 3, 36, 44)
            assert np.abs(out - expected).max() <= TOL, (net.unbiased, alpha)
    with torch.no_grad():
        port, own = model.module(content, style), official(content, style)
    assert (port - own).abs().max() > 10 * TOL  # the conventions differ by more than TOL: the test tells


def test_what_cannot_be_exported(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nothing to export"):
        export_onnx(load("recolor", models_dir), tmp_path / "recolor.onnx")
    with pytest.raises(SpecError, match=r"must end in \.onnx"):
        export_onnx(load("candy", models_dir), tmp_path / "candy.pt")
    with pytest.raises(SpecError, match="opset must be an integer from 18"):
        export_onnx(load("candy", models_dir), tmp_path / "candy.onnx", opset=11)
    assert not any(tmp_path.iterdir())


def test_check_rejects_a_bad_sample(fast_export: Exported) -> None:
    model, paths = fast_export
    with pytest.raises(ShapeError, match=r"RGB batch \(N, 3, H, W\)"):
        check_onnx(model, paths, torch.rand(3, 32, 32))


def test_cli_export(models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "onnx" / "style.onnx"
    code = main(["export", "--model", "adain", "--format", "onnx", "--out", str(out),
                 "--models-dir", str(models_dir)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"wrote {out}" in printed and f"wrote {out.with_name('style.encoder.onnx')}" in printed
    diff = float(printed.split("max abs diff")[1].strip())
    assert diff <= TOL

    code = main(["export", "--model", "recolor", "--out", str(tmp_path / "c.onnx"),
                 "--models-dir", str(models_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "nothing to export" in err and len(err.strip().splitlines()) == 1
    code = main(["export", "--model", "nosuch", "--out", str(tmp_path / "n.onnx"),
                 "--models-dir", str(models_dir)])
    assert code == 2 and "no model named 'nosuch'" in capsys.readouterr().err
