"""Synthesis and generation through the API and the CLI: label maps in every accepted form, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm import models
from stylenorm.cli import main
from stylenorm.data.scenes import PALETTE, SCENE_CLASSES, make_scene, write_scenes
from stylenorm.data.segmentation import instance_edges, to_one_hot
from stylenorm.errors import ShapeError, SpecError, StylenormError
from stylenorm.evaluation.metrics import ssim
from stylenorm.imageio import load_image
from stylenorm.inference.synthesize import (
    UnknownClass,
    default_palette,
    generate,
    labels_from_image,
    synthesize,
)
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.nets.spade import SPADEGenerator, init_weights
from stylenorm.repository import ModelCard, ModelError, save_model

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
CLASSES = list(SCENE_CLASSES)
COLOURS = [list(c) for c in PALETTE]


def _spade_folder(root: Path, name: str, **extra: Any) -> Path:
    args = {"label_nc": 6, "ngf": 4, "z_dim": 8, "crop_size": SIZE, "hidden": 8} | extra
    torch.manual_seed(0)
    g = SPADEGenerator(**args)
    init_weights(g, gain=1.0)  # visible differences between inputs (the official 0.02 is nearly flat)
    card = ModelCard(
        name=name, architecture="spade", arguments=args,
        contract={"classes": CLASSES, "palette": COLOURS, "size": [SIZE, SIZE], "output": "RGB [0,1]"},
    )
    save_model(root / name, card, models.weights_to_save(card, g))
    return root / name


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    _spade_folder(root, "scenes")
    _spade_folder(root, "scenes-vae", use_vae=True)
    _spade_folder(root, "scenes-inst", contain_dontcare=True, use_instance=True)
    torch.manual_seed(1)
    cg = ClassConditionalGenerator(3, z_dim=16, ngf=4, image_size=32)
    with torch.no_grad():  # class tables and running statistics as after some training (not the identity)
        for name, param in cg.named_parameters():
            if ".b1." in name or ".b2." in name:
                param.add_(torch.randn_like(param) * 0.5)
        cg.train()
        cg(torch.randn(8, 16), torch.arange(8) % 3)
    card = ModelCard(name="shapes", architecture="cgan",
                     arguments={"num_classes": 3, "z_dim": 16, "ngf": 4, "image_size": 32},
                     contract={"classes": ["circle", "square", "triangle"], "size": [32, 32]})
    save_model(root / "shapes", card, models.weights_to_save(card, cg))
    return root


@pytest.fixture(scope="module")
def spade(repo: Path) -> models.LoadedModel:
    return models.load("scenes", repo)


def scene_labels(seed: int = 7, size: int = SIZE) -> torch.Tensor:
    return make_scene(size, seed)[0]


def save_index(path: Path, labels: torch.Tensor, bits: int = 8) -> Path:
    """An index PNG: mode L (8 bits) or I;16."""
    Image.fromarray(labels.numpy().astype(np.uint16 if bits == 16 else np.uint8)).save(path)
    return path


def save_colour(path: Path, labels: torch.Tensor) -> Path:
    rgb = np.array(PALETTE, dtype=np.uint8)[labels.numpy()]
    Image.fromarray(rgb, "RGB").save(path)
    return path


# ------------------------------------------------------------------------------------------ label maps


def test_index_colour_palette_and_16_bit_pngs_give_the_same_labels(
    spade: models.LoadedModel, tmp_path: Path
) -> None:
    labels = scene_labels()
    index = labels_from_image(spade, save_index(tmp_path / "index.png", labels))
    assert index.shape == (1, SIZE, SIZE) and index.dtype == torch.long and torch.equal(index[0], labels)
    assert torch.equal(labels_from_image(spade, save_colour(tmp_path / "colour.png", labels)), index)
    assert torch.equal(labels_from_image(spade, save_index(tmp_path / "i16.png", labels, 16)), index)
    # a palette image whose colours are the model's is read through its colours …
    painted = Image.open(tmp_path / "colour.png").quantize(colors=6, method=Image.Quantize.MAXCOVERAGE)
    painted.save(tmp_path / "p_colour.png")
    assert torch.equal(labels_from_image(spade, tmp_path / "p_colour.png"), index)
    # … and a palette image with other colours is an index map (VOC style)
    p = Image.fromarray(labels.numpy().astype(np.uint8), "P")
    p.putpalette([v for i in range(256) for v in (i * 3 % 256, 17, 200)])
    p.save(tmp_path / "p_index.png")
    assert torch.equal(labels_from_image(spade, tmp_path / "p_index.png"), index)
    assert torch.equal(labels_from_image(spade, (tmp_path / "index.png").read_bytes()), index)


def test_a_map_of_the_same_aspect_is_resized_by_nearest(spade: models.LoadedModel, tmp_path: Path) -> None:
    small = scene_labels(size=32)
    got = labels_from_image(spade, save_index(tmp_path / "small.png", small))
    assert got.shape == (1, SIZE, SIZE)
    assert torch.equal(got[0], small.repeat_interleave(2, 0).repeat_interleave(2, 1))
    torch.testing.assert_close(synthesize(spade, small[None]), synthesize(spade, got))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: save_index(p, torch.full((SIZE, SIZE), 9)),
         r"label value\(s\) 9 \(4096 px\) are not classes of this model; valid are 0\.\.5 \(0 sky, 1 water"),
        (lambda p: save_index(p, torch.zeros(SIZE // 2, SIZE, dtype=torch.long)),
         r"64×32 \(W×H, aspect 2\) but model 'scenes' synthesizes 64×64 \(aspect 1\); crop or pad"),
        (lambda p: Image.fromarray(np.full((8, 8, 3), (1, 2, 3), np.uint8)).save(p),
         r"colour\(s\) not in the model's palette: \(1, 2, 3\) × 64 px.*sky \(135, 190, 235\)"),
        (lambda p: Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(p),
         r"transparent pixels"),
        (lambda p: Image.fromarray(np.zeros((8, 8), np.float32), "F").save(p.with_suffix(".tif")),
         r"image mode 'F'; expected an index image"),
        (lambda p: Image.new("RGB", (8, 8), PALETTE[2]).save(p.with_suffix(".jpg")),
         r"is a JPEG: lossy compression"),
    ],
    ids=["out-of-range", "aspect", "unknown-colour", "transparent", "float-mode", "jpeg"],
)
def test_bad_label_maps_are_refused_clearly(
    spade: models.LoadedModel, tmp_path: Path, make: Any, message: str
) -> None:
    make(tmp_path / "bad.png")
    path = next(tmp_path.iterdir())
    with pytest.raises(ShapeError, match=message):
        labels_from_image(spade, path)


def test_bad_tensors_and_options_are_refused(repo: Path, spade: models.LoadedModel) -> None:
    labels = scene_labels()[None]
    with pytest.raises(ShapeError, match="integer class indices"):
        synthesize(spade, labels.float())
    with pytest.raises(ShapeError, match=r"label value\(s\) -1 .*valid are 0\.\.5"):
        synthesize(spade, labels - 1)
    with pytest.raises(ShapeError, match=r"\(1, H, W\)"):
        synthesize(spade, torch.zeros(1, 2, 3, 4, 5, dtype=torch.long))
    with pytest.raises(SpecError, match=r"no style encoder .*--use-vae"):
        synthesize(spade, labels, style=torch.rand(1, 3, 32, 32))
    with pytest.raises(SpecError, match="needs a 'cgan' model"):
        generate(spade, "sky", 1)
    with pytest.raises(SpecError, match="seed must be a non-negative integer"):
        synthesize(models.load("scenes-vae", repo), labels, seed=-3)


# ------------------------------------------------------------------------------------------ synthesis


def test_synthesize_cli_from_index_and_colour_pngs(
    repo: Path, spade: models.LoadedModel, tmp_path: Path
) -> None:
    labels = scene_labels()
    save_index(tmp_path / "index.png", labels)
    save_colour(tmp_path / "colour.png", labels)
    for name in ("index", "colour"):
        code = main(["synthesize", "--model", "scenes", "--models-dir", str(repo), "--labels",
                     str(tmp_path / f"{name}.png"), "--out", str(tmp_path / f"out_{name}.png")])
        assert code == 0
    a = np.asarray(Image.open(tmp_path / "out_index.png"))
    b = np.asarray(Image.open(tmp_path / "out_colour.png"))
    assert a.shape == (SIZE, SIZE, 3) and np.array_equal(a, b) and a.std() > 2
    expected = (synthesize(spade, labels[None])[0].permute(1, 2, 0) * 255).round().numpy()
    assert np.abs(a.astype(float) - expected).max() <= 1
    # the label map steers the output
    other = synthesize(spade, scene_labels(seed=8)[None])
    assert (other - synthesize(spade, labels[None])).abs().mean() > 0.01


def test_synthesize_cli_refusals_exit_2(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_index(tmp_path / "index.png", scene_labels())
    Image.new("RGB", (16, 16), (200, 100, 50)).save(tmp_path / "style.png")
    base = ["synthesize", "--models-dir", str(repo), "--labels", str(tmp_path / "index.png"),
            "--out", str(tmp_path / "o.png")]
    assert main([*base, "--model", "scenes", "--style", str(tmp_path / "style.png")]) == 2
    assert "--style needs a model with a style encoder" in capsys.readouterr().err
    assert main([*base, "--model", "shapes"]) == 2
    assert "needs a spade model" in capsys.readouterr().err
    save_index(tmp_path / "index.png", torch.full((SIZE, SIZE), 6))
    assert main([*base, "--model", "scenes"]) == 2
    assert "label value(s) 6" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_a_style_image_steers_a_vae_model_and_a_seed_repeats(repo: Path, tmp_path: Path) -> None:
    vae = models.load("scenes-vae", repo)
    labels = scene_labels()[None]
    warm = torch.zeros(1, 3, 48, 48)
    warm[:, 0] = 1.0
    cool = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    a1, a2, b = synthesize(vae, labels, warm), synthesize(vae, labels, warm), synthesize(vae, labels, cool)
    torch.testing.assert_close(a1, a2)  # the encoder's mean: deterministic
    assert (a1 - b).abs().mean() > 1e-3
    s1, s2, s3 = (synthesize(vae, labels, seed=s) for s in (5, 5, 6))
    torch.testing.assert_close(s1, s2)
    assert (s1 - s3).abs().mean() > 1e-3
    Image.fromarray((warm[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "warm.png")
    save_index(tmp_path / "index.png", labels[0])
    assert main(["synthesize", "--model", "scenes-vae", "--models-dir", str(repo), "--labels",
                 str(tmp_path / "index.png"), "--style", str(tmp_path / "warm.png"),
                 "--out", str(tmp_path / "styled.png")]) == 0
    styled = torch.from_numpy(np.array(Image.open(tmp_path / "styled.png"))).permute(2, 0, 1) / 255
    assert (styled - a1[0]).abs().max() <= 1 / 255 + 1e-6


def test_instance_edges_and_dontcare_channels_are_built(repo: Path) -> None:
    model = models.load("scenes-inst", repo)
    assert model.module.semantic_nc == 8  # 6 classes + don't-care + instance edges
    labels = scene_labels()[None]
    out = synthesize(model, labels)
    assert out.shape == (1, 3, SIZE, SIZE) and 0 <= float(out.min()) <= float(out.max()) <= 1
    # without an instance map the edge channel is the label boundaries; the don't-care channel is empty
    seg = torch.cat([to_one_hot(labels, 6, dontcare=True), instance_edges(labels)], 1)
    assert seg[:, 6].sum() == 0 and seg[:, 7].sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(out, (model.module(seg) + 1) / 2)
        no_edges = (model.module(torch.cat([seg[:, :7], torch.zeros_like(seg[:, 7:])], 1)) + 1) / 2
    assert (no_edges - out).abs().max() > 1e-4  # the channel matters


def _shifted_folder(root: Path, name: str, label_file: Any) -> models.LoadedModel:
    """The scenes-inst model (6 classes + don't-care + edges) whose card reads files ADE20K's way."""
    args = {"label_nc": 6, "ngf": 4, "z_dim": 8, "crop_size": SIZE, "hidden": 8, "contain_dontcare": True,
            "use_instance": True}
    torch.manual_seed(0)
    g = SPADEGenerator(**args)
    init_weights(g, gain=1.0)
    card = ModelCard(
        name=name, architecture="spade", arguments=args,
        contract={"classes": CLASSES, "palette": COLOURS, "size": [SIZE, SIZE], "layout": "ade20k",
                  "label_file": label_file},
    )
    save_model(root / name, card, models.weights_to_save(card, g))
    return models.load(name, root)


def test_a_card_label_file_shifts_index_pngs_and_dontcare_is_class_label_nc(
    repo: Path, tmp_path: Path
) -> None:
    model = _shifted_folder(tmp_path, "shifted", {"shift": -1, "dontcare": [0, 255]})
    labels = scene_labels()
    raw = labels + 1
    raw[:8, :8] = 0  # the dataset's "other"
    expected = labels.clone()
    expected[:8, :8] = 6  # the don't-care index label_nc
    got = labels_from_image(model, save_index(tmp_path / "file.png", raw))
    assert torch.equal(got[0], expected)
    # the same map saved as grey RGB, and a colour-coded PNG (classes by colour, never shifted)
    Image.fromarray(np.repeat(raw.numpy().astype(np.uint8)[..., None], 3, 2), "RGB").save(tmp_path / "g.png")
    assert torch.equal(labels_from_image(model, tmp_path / "g.png")[0], expected)
    assert torch.equal(labels_from_image(model, save_colour(tmp_path / "colour.png", labels))[0], labels)
    # synthesize takes label_nc as don't-care for a model with that channel, and only then
    out = synthesize(model, got)
    seg = torch.cat([to_one_hot(got, 6, dontcare=True), instance_edges(got)], 1)
    assert seg[:, 6].sum() == 64
    with torch.no_grad():
        assert torch.equal(out, ((model.module(seg) + 1) / 2).clamp(0, 1))
    with pytest.raises(ShapeError, match=r"label value\(s\) 6 .*valid are 0\.\.5"):
        synthesize(models.load("scenes", repo), got)
    with pytest.raises(ShapeError, match=r"label value\(s\) 7 .*valid are 0\.\.5 .*, and 6 \(don't-care\)"):
        synthesize(model, got + 1)
    # a value the convention has no class for is named as the file's
    message = (r"pixel value\(s\) 9 \(4096 px\) are not labels of model 'shifted' \(ade20k label file: "
               r"file value v is class v−1 \(1\.\.6\); 0, 255")
    with pytest.raises(ShapeError, match=message):
        labels_from_image(model, save_index(tmp_path / "bad.png", torch.full((SIZE, SIZE), 9)))
    # without a label_file (every other card) the pixel value is the class, and 6 is out of range
    with pytest.raises(ShapeError, match=r"label value\(s\) 6 .*not classes of this model"):
        labels_from_image(models.load("scenes-inst", repo), save_index(tmp_path / "six.png", raw))
    broken = _shifted_folder(tmp_path, "broken", {"shift": "one"})
    with pytest.raises(SpecError, match=r"label_file must be \{shift = <int>, dontcare = \[<int>, …\]\}"):
        labels_from_image(broken, tmp_path / "file.png")


# ------------------------------------------------------------------------------------------ generation


def test_generate_cli_writes_n_pngs_repeatable_by_seed(repo: Path, tmp_path: Path) -> None:
    for out in ("a", "b"):
        code = main(["generate", "--model", "shapes", "--models-dir", str(repo), "--class", "square",
                     "--n", "3", "--seed", "11", "--out", str(tmp_path / out)])
        assert code == 0
    files = sorted((tmp_path / "a").iterdir())
    assert [f.name for f in files] == ["square_11_000.png", "square_11_001.png", "square_11_002.png"]
    for f in files:
        assert Image.open(f).size == (32, 32)
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    first = np.asarray(Image.open(files[0])).astype(int)
    assert np.abs(first - np.asarray(Image.open(files[1])).astype(int)).mean() > 0.5  # different z


def test_generate_api_and_refusals(repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cgan = models.load("shapes", repo)
    out = generate(cgan, "circle", 2, seed=0)
    assert out.shape == (2, 3, 32, 32) and 0 <= float(out.min()) <= float(out.max()) <= 1
    assert (generate(cgan, "triangle", 2, seed=0) - out).abs().mean() > 1e-4  # the class steers
    with pytest.raises(UnknownClass, match="no class 'hexagon'; its classes: circle, square, tri") as info:
        generate(cgan, "hexagon", 1)
    assert isinstance(info.value, KeyError) and isinstance(info.value, StylenormError)
    with pytest.raises(SpecError, match=r"n must be an integer in 1\.\.1024"):
        generate(cgan, "circle", 0)
    code = main(["generate", "--model", "shapes", "--models-dir", str(repo), "--class", "hexagon",
                 "--out", str(tmp_path / "g")])
    assert code == 2 and "its classes: circle, square, triangle" in capsys.readouterr().err


def test_cards_whose_contract_does_not_fit_are_refused(repo: Path, tmp_path: Path) -> None:
    card_text = (repo / "shapes" / "card.toml").read_text()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.toml").write_text(card_text.replace('"triangle",', '"triangle", "star",'))
    weights = (repo / "shapes" / "weights.safetensors").read_bytes()
    (tmp_path / "bad" / "weights.safetensors").write_bytes(weights)
    with pytest.raises(ModelError, match="4 class names in the contract but num_classes 3"):
        models.load(tmp_path / "bad")


def test_default_palette_is_distinct_and_deterministic() -> None:
    palette = default_palette(256)
    assert len({tuple(c) for c in palette}) == 256 and palette == default_palette(256)
    assert palette[:4] == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]


# ------------------------------------------------------------------------------ the synthesis sheet


def test_the_sheet_of_a_spade_model_scores_each_synthesis_against_its_reference(
    repo: Path, spade: models.LoadedModel, tmp_path: Path
) -> None:
    write_scenes(tmp_path / "heldout", 2, SIZE, seed=3)
    out, report = tmp_path / "sheet.png", tmp_path / "m.json"
    code = main(["sheet", "--model", "scenes", "--models-dir", str(repo),
                     "--content", str(tmp_path / "heldout" / "labels"),
                     "--reference", str(tmp_path / "heldout" / "images"),
                     "--size", "48", "--out", str(out), "--metrics-json", str(report)])
    assert code == 0
    assert Image.open(out).size[0] > 3 * 48  # label map | synthesized | reference
    numbers = json.loads(report.read_text())
    assert numbers["summary"]["cells"] == 2
    labels = labels_from_image(spade, tmp_path / "heldout" / "labels" / "scene_00000.png")
    reference = load_image(tmp_path / "heldout" / "images" / "scene_00000.png")
    want = float(ssim(synthesize(spade, labels), reference)[0])
    assert numbers["cells"][0]["ssim"] == pytest.approx(want, abs=1e-5)
    assert numbers["cells"][0]["relative_style_distance"] > 0
    (tmp_path / "heldout" / "images" / "scene_00001.png").unlink()
    assert main(["sheet", "--model", "scenes", "--models-dir", str(repo),
                     "--content", str(tmp_path / "heldout" / "labels"),
                     "--reference", str(tmp_path / "heldout" / "images"), "--out", str(out)]) == 2
