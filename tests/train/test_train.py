"""The three recipes through the engine: losses fall, resume is exact, model folders load and stylize.

Tiny drawn images (32–48 px), the random encoder, batch 2, a handful of steps.
"""

from __future__ import annotations

import csv
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from stylenorm import models
from stylenorm.cli import main
from stylenorm.data import DataError
from stylenorm.errors import MissingWeightsError
from stylenorm.losses.style import gram_matrix
from stylenorm.nets import AdaINNet, TransformerNet, VGGEncoder
from stylenorm.train import ConfigError, TrainResult, build_recipe, make_config, train
from stylenorm.train.style import init_decoder
from tests.data.drawing import add_corrupt_files, draw_image, image_folder

RECIPES = ("fast", "multistyle", "adain")
STEPS = 6  # the resume test: 3 steps, then 3 more from the checkpoint


@dataclass
class Data:
    content: Path
    styles: Path
    style: Path
    broken: dict[str, Path]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("data")
    content = image_folder(root / "content", 4, size=(48, 40))
    broken = add_corrupt_files(root / "content", next(p for p in content if p.suffix == ".png"))
    styles = [draw_image(root / "styles" / f"{name}.png", 40, 48, 100 + i) for i, name in enumerate("xyz")]
    return Data(root / "content", root / "styles", styles[0], broken)


def settings(data: Data, recipe: str, out: Path, **extra: Any) -> dict[str, Any]:
    """Tiny, fast settings for recipe writing to out."""
    base: dict[str, Any] = {
        "content": data.content,
        "out": out,
        "run_dir": out.parent / "runs" / out.name,
        "steps": STEPS,
        "batch_size": 2,
        "image_size": 32,
        "encoder": "random",
        "workers": 0,
        "log_every": 1,
        "sample_every": 3,
        "checkpoint_every": 3,
    }
    if recipe == "fast":
        base["style"] = data.style
    elif recipe == "multistyle":
        base["style"] = [data.styles]
    else:
        base.update(style=data.styles, load_size=40)
    return base | extra


@pytest.fixture(scope="module")
def full_runs(data: Data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    """One uninterrupted STEPS-step run per recipe."""
    root = tmp_path_factory.mktemp("runs")
    return {r: train(make_config(r, settings(data, r, root / r)), build_recipe) for r in RECIPES}


# ------------------------------------------------------------------------------- losses fall


@pytest.mark.parametrize("recipe", RECIPES)
def test_loss_falls_when_overfitting_one_batch(recipe: str, data: Data, tmp_path: Path) -> None:
    torch.manual_seed(0)
    extra = {"load_size": 32} if recipe == "adain" else {}  # the whole image: the same batch each step
    cfg = make_config(recipe, settings(data, recipe, tmp_path / "m", **extra))
    r = build_recipe(cfg, torch.device("cpu"))
    batch = {name: torch.stack([ds[i][0] for i in range(2)]) for name, ds in r.datasets.items()}
    if recipe == "multistyle":
        batch["style_index"] = torch.tensor([0, 2])
    (update,) = r.updates
    opt = torch.optim.Adam([p for p in update.module.parameters() if p.requires_grad], lr=cfg.lr)
    losses = []
    for _ in range(20):
        total, terms = update.loss(batch)
        assert set(terms) == {"content", "style"}
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    # Adam's first steps overshoot (every weight moves by ~lr); then the loss falls steadily
    assert sum(losses[-3:]) / 3 < 0.75 * losses[0], losses


@pytest.mark.parametrize("recipe", ["multistyle", "adain"])
def test_style_layer_weights_scale_each_layers_term(recipe: str, data: Data, tmp_path: Path) -> None:
    """The style term is Σ_l w_l·loss_l: with one-hot weights, the sum of the parts is the default."""
    extra = {"load_size": 32} if recipe == "adain" else {}
    n_taps = 4  # Gram taps relu1_2 … relu4_3; AdaIN's default cut relu4_1: relu1_1 … relu4_1
    cpu = torch.device("cpu")
    r = build_recipe(make_config(recipe, settings(data, recipe, tmp_path / "m", **extra)), cpu)
    batch = {name: torch.stack([ds[i][0] for i in range(2)]) for name, ds in r.datasets.items()}
    batch["style_index"] = torch.tensor([0, 2])

    def style_term(weights: list[float]) -> float:
        torch.manual_seed(0)
        options = settings(data, recipe, tmp_path / "m", style_layer_weights=weights, **extra)
        cfg = make_config(recipe, options)
        recipe_obj = build_recipe(cfg, cpu)
        with torch.no_grad():
            return recipe_obj.loss(batch)[1]["style"].item()

    parts = [style_term([float(i == j) for j in range(n_taps)]) for i in range(n_taps)]
    assert all(p > 0 for p in parts)
    assert sum(parts) == pytest.approx(style_term([1.0] * n_taps), rel=1e-5)
    scaled = [2.0, 0.0, 0.5, 3.0]
    expected = sum(w * p for w, p in zip(scaled, parts, strict=True))
    assert style_term(scaled) == pytest.approx(expected, rel=1e-5)


def test_adain_identity_loss_is_the_pixel_error_of_decoding_the_content(data: Data, tmp_path: Path) -> None:
    options = settings(data, "adain", tmp_path / "m", load_size=32, identity_weight=2.0)
    r = build_recipe(make_config("adain", options), torch.device("cpu"))
    batch = {name: torch.stack([ds[i][0] for i in range(2)]) for name, ds in r.datasets.items()}
    with torch.no_grad():
        total, terms = r.loss(batch)
        decoded = r.model.decoder(r.model.encode(batch["content"]))
    assert set(terms) == {"content", "style", "identity"}
    want = 2.0 * (decoded - batch["content"]).square().mean()
    assert terms["identity"].item() == pytest.approx(want.item(), rel=1e-5)
    assert total.item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-6)


# ------------------------------------------------------------------------------ exact resume


@pytest.mark.parametrize("recipe", ["multistyle", "adain"])
def test_loss_balance_start_divides_each_term_by_its_value_on_the_reference_images(
    recipe: str, data: Data, tmp_path: Path
) -> None:
    """--loss-balance start: each style layer's term is divided by its value between the reference
    contents and the style (per style for the Gram recipes), the content term by a measured scale; the
    same batch, the same net, so balanced term = raw term / divisor, layer by layer."""
    extra = {"load_size": 32} if recipe == "adain" else {}
    cpu = torch.device("cpu")

    def build(balance: str, layer: int) -> Any:
        torch.manual_seed(0)
        weights = [float(i == layer) for i in range(4)]
        options = settings(
            data, recipe, tmp_path / "m", loss_balance=balance, style_layer_weights=weights, **extra
        )
        return build_recipe(make_config(recipe, options), cpu)

    plain = build("none", 0)
    batch = {name: torch.stack([ds[i][0] for i in range(2)]) for name, ds in plain.datasets.items()}
    index = torch.tensor([0, 2])
    batch["style_index"] = index
    for layer in range(4):
        raw, balanced = build("none", layer), build("start", layer)
        tap = raw.taps[layer] if recipe == "adain" else list(raw.layer_weights)[layer]
        divisor = balanced.scales[tap]
        assert (divisor > 0).all()
        with torch.no_grad():
            r_terms, b_terms = raw.loss(batch)[1], balanced.loss(batch)[1]
        if recipe == "adain":
            assert b_terms["style"].item() == pytest.approx(
                r_terms["style"].item() / divisor.item(), rel=1e-4
            )
        else:  # per sample: each sample's Gram loss over its own style's divisor
            assert divisor.shape == (3,)
            if layer == 0:  # one divisor per style (the deepest random-VGG taps die at 32 px)
                assert not torch.allclose(divisor, divisor[0].expand(3))
            with torch.no_grad():
                y = raw.net(batch["content"], index)
                feats = raw.encoder(y, (tap,))[tap]
                grams = raw.style_grams[tap][index]
                per_sample = [(gram_matrix(feats[i : i + 1]) - grams[i]).square().mean() for i in range(2)]
            want = (
                raw.config.style_weight
                * sum(p / divisor[s] for p, s in zip(per_sample, index, strict=True))
                / 2
            )
            assert b_terms["style"].item() == pytest.approx(want.item(), rel=1e-4)
        content_ratio = r_terms["content"].item() / b_terms["content"].item()
        assert content_ratio == pytest.approx(balanced.scales["content"].item(), rel=1e-4)
    # the style divisors are the losses between the reference contents and the style, measured directly
    if recipe == "multistyle":
        refs = torch.stack(
            [balanced.datasets["content"][(i, i)][0] for i in range(len(balanced.datasets["content"]))]
        )
        tap = "relu2_2"
        feats = balanced.encoder(refs, (tap,))[tap]
        for s in range(3):
            want = (gram_matrix(feats) - balanced.style_grams[tap][s]).square().mean()
            assert balanced.scales[tap][s].item() == pytest.approx(want.item(), rel=1e-4)
    assert build("start", 0).provenance()["loss_balance"]["mode"] == "start"


def test_multistyle_init_from_a_fast_model_starts_every_style_as_that_model(
    full_runs: dict[str, TrainResult], data: Data, tmp_path: Path
) -> None:
    """--init-from a one-style folder: a multi-style net whose every style gives the fast net's output."""
    fast = models.load(full_runs["fast"].folder)
    cfg = make_config(
        "multistyle", settings(data, "multistyle", tmp_path / "m", init_from=full_runs["fast"].folder)
    )
    r = build_recipe(cfg, torch.device("cpu"))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        want = fast.module(x)
        for s in range(3):
            torch.testing.assert_close(r.net(x, torch.tensor([s])), want, rtol=1e-5, atol=1e-5)
    assert r.provenance()["init_from"] == str(full_runs["fast"].folder)
    # a net that does not fit (AdaIN's decoder weights) is a clear error naming the folder
    with pytest.raises(DataError, match="does not fit"):
        build_recipe(
            make_config(
                "multistyle",
                settings(data, "multistyle", tmp_path / "n", init_from=full_runs["adain"].folder),
            ),
            torch.device("cpu"),
        )


def test_a_fast_net_init_from_a_multistyle_row_equals_that_row(
    full_runs: dict[str, TrainResult], data: Data, tmp_path: Path
) -> None:
    """--init-from a multi-style folder with --init-style NAME: a one-style net that is that row."""
    multi = models.load(full_runs["multistyle"].folder)
    folder = full_runs["multistyle"].folder
    cfg = make_config("fast", settings(data, "fast", tmp_path / "m", init_from=folder, init_style="y"))
    r = build_recipe(cfg, torch.device("cpu"))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(r.net(x), multi.module(x, torch.tensor([1])), rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="--init-style"):  # a table without a row named
        build_recipe(
            make_config("fast", settings(data, "fast", tmp_path / "n", init_from=folder)), torch.device("cpu")
        )
    with pytest.raises(DataError, match="no style 'nope'"):
        cfg = make_config("fast", settings(data, "fast", tmp_path / "o", init_from=folder, init_style="nope"))
        build_recipe(cfg, torch.device("cpu"))
    with pytest.raises(ConfigError, match="give --init-from"):
        make_config("fast", settings(data, "fast", tmp_path / "p", init_style="y"))


def test_adain_init_from_starts_the_decoder_as_an_adain_or_wct_models(
    full_runs: dict[str, TrainResult], data: Data, tmp_path: Path
) -> None:
    """--init-from for adain: an adain model's decoder, or a wct model's decoder at the same cut of the same
    encoder, copied exactly; any other source is a clear error naming the folder."""
    source = models.load(full_runs["adain"].folder)
    cfg = make_config("adain", settings(data, "adain", tmp_path / "a", init_from=full_runs["adain"].folder))
    r = build_recipe(cfg, torch.device("cpu"))
    for key, value in source.module.decoder.state_dict().items():
        torch.testing.assert_close(r.model.decoder.state_dict()[key], value.float(), rtol=0, atol=0)
    assert r.provenance()["init_from"] == str(full_runs["adain"].folder)

    wct_folder = tmp_path / "wct"
    wct_settings = settings(data, "wct", wct_folder, steps=1, levels="relu2_1,relu3_1")
    del wct_settings["style"]
    train(make_config("wct", wct_settings), build_recipe)
    wct = models.load(wct_folder).module
    encoder = VGGEncoder(depth=16, last="relu3_1", fmt="random", seed=0)
    net = AdaINNet(encoder)
    init_decoder(net.decoder, wct_folder, encoder)
    x = torch.rand(1, 256, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(net.decoder(x), wct.decoders.by_level["relu3_1"](x).float())
    with pytest.raises(DataError, match="no decoder at relu4_1"):
        deeper = VGGEncoder(16, "relu4_1", "random")
        init_decoder(AdaINNet(deeper).decoder, wct_folder, deeper)
    with pytest.raises(DataError, match="decodes another encoder"):  # VGG-19, not the wct model's VGG-16
        vgg19 = settings(data, "adain", tmp_path / "b", init_from=wct_folder, encoder_layer="relu3_1")
        build_recipe(make_config("adain", vgg19), torch.device("cpu"))
    with pytest.raises(DataError, match="adain starts from an adain or wct model"):
        init_decoder(net.decoder, full_runs["fast"].folder, encoder)


def test_lr_warmup_raises_the_lr_linearly_then_holds_it(data: Data, tmp_path: Path) -> None:
    cfg = make_config("fast", settings(data, "fast", tmp_path / "m", lr_warmup=4, steps=6))
    lrs = [row["lr"] for row in train(cfg, build_recipe).history]
    assert lrs == pytest.approx([cfg.lr * k / 4 for k in (1, 2, 3, 4, 4, 4)]), lrs  # the lr each step used


@pytest.mark.parametrize("recipe", RECIPES)
def test_resume_continues_exactly(
    recipe: str, data: Data, full_runs: dict[str, TrainResult], tmp_path: Path
) -> None:
    values = settings(data, recipe, tmp_path / "m")
    first = train(make_config(recipe, values | {"steps": STEPS // 2}), build_recipe)
    assert [row["step"] for row in first.history] == list(range(1, STEPS // 2 + 1))
    rest = train(make_config(recipe, values | {"resume": "latest"}), build_recipe)
    assert [row["step"] for row in rest.history] == list(range(STEPS // 2 + 1, STEPS + 1))
    full = full_runs[recipe].history
    for got, want in zip(first.history + rest.history, full, strict=True):
        for key in ("loss", "content", "style", "lr"):
            assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), (got["step"], key)
    a = models.load(full_runs[recipe].folder).module.state_dict()
    b = models.load(tmp_path / "m").module.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
    with open(tmp_path / "runs" / "m" / "losses.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, STEPS + 1))  # one log, no gaps


# ----------------------------------------------------------------------- the written folders


def test_fast_model_folder_loads_and_stylizes(full_runs: dict[str, TrainResult], data: Data) -> None:
    loaded = models.load(full_runs["fast"].folder)
    card = loaded.card
    assert card.architecture == "fast" and card.arguments == {"norm": "instance", "output": "sigmoid"}
    assert card.styles == ["x"]
    assert isinstance(loaded.module, TransformerNet)
    with torch.no_grad():
        out = loaded.module(torch.rand(1, 3, 21, 30))
    assert out.shape == (1, 3, 21, 30) and float(out.min()) >= 0 and float(out.max()) <= 1
    prov = card.provenance
    assert prov["steps"] == STEPS and prov["images_seen"] == STEPS * 2 and prov["resolution"] == 32
    assert prov["batch_size"] == 2 and prov["wall_time_s"] > 0 and prov["hardware"]["cpu"]
    assert prov["encoder"]["kind"] == "random" and prov["encoder"]["depth"] == 16
    content = prov["data"]["content"]
    assert content["path"] == str(data.content) and content["images"] == 5  # 4 + the truncated PNG
    assert content["skipped"] == 2 and sorted(content["skipped_files"]) == sorted(
        str(data.broken[k]) for k in ("junk", "empty")
    )
    assert content["decode_failures"] >= 1  # the truncated PNG, drawn at least once in 6 batches of 2
    assert set(prov["final_losses"]) >= {"loss", "content", "style"}


def test_multistyle_folder_has_the_styles_in_table_order(full_runs: dict[str, TrainResult]) -> None:
    loaded = models.load(full_runs["multistyle"].folder)
    assert loaded.card.styles == ["x", "y", "z"]
    assert loaded.card.arguments == {"norm": "cin", "output": "sigmoid", "num_styles": 3}
    out = loaded.module(torch.rand(2, 3, 24, 20), torch.tensor([0, 2]))
    assert out.shape == (2, 3, 24, 20)
    mixed = loaded.module(torch.rand(1, 3, 16, 16), torch.tensor([[0.5, 0.25, 0.25]]))
    assert mixed.shape == (1, 3, 16, 16)


def test_a_linear_output_net_is_recorded_and_served_clamped(data: Data, tmp_path: Path) -> None:
    cfg = make_config("multistyle", settings(data, "multistyle", tmp_path / "m", steps=2, output="linear"))
    train(cfg, build_recipe)
    loaded = models.load(tmp_path / "m")
    assert loaded.card.arguments["output"] == "linear" and loaded.module.output == "linear"
    with torch.no_grad():
        loaded.module.deconv3.conv2d.bias.fill_(5.0)  # far out of range: the served image is clamped
        out = loaded.module.eval()(torch.rand(1, 3, 16, 16), torch.tensor([1]))
    assert float(out.min()) == 1.0


def test_adain_folder_records_its_encoder_and_stylizes(full_runs: dict[str, TrainResult]) -> None:
    loaded = models.load(full_runs["adain"].folder)
    assert loaded.card.arguments == {
        "encoder": {"fmt": "random", "depth": 19, "last": "relu4_1", "seed": 0},
        "eps": 1e-5,
    }
    assert loaded.card.styles == []
    assert isinstance(loaded.module, AdaINNet)
    out = loaded.module.stylize(torch.rand(1, 3, 30, 27), [torch.rand(1, 3, 20, 24)])
    assert out.shape == (1, 3, 30, 27)
    assert set(loaded.card.provenance["data"]) == {"content", "style"}


def test_adain_can_cut_its_encoder_at_relu3_1(data: Data, tmp_path: Path) -> None:
    cfg = make_config("adain", settings(data, "adain", tmp_path / "m", steps=1, encoder_layer="relu3_1"))
    train(cfg, build_recipe)
    loaded = models.load(tmp_path / "m")
    assert loaded.card.arguments["encoder"]["last"] == "relu3_1"
    assert loaded.module.decoder[1].in_channels == 256  # the decoder mirrors the shorter encoder
    assert loaded.module.stylize(torch.rand(1, 3, 20, 20), [torch.rand(1, 3, 16, 16)]).shape == (1, 3, 20, 20)


def test_the_cli_writes_a_sample_grid_and_a_loss_log(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the run folder defaults to runs/<name> in the working directory
    out = tmp_path / "models" / "candy"
    run = tmp_path / "runs" / "candy"
    code = main(
        [
            "train",
            "fast",
            "--content",
            str(data.content),
            "--style",
            str(data.style),
            "--out",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--image-size",
            "32",
            "--encoder",
            "random",
            "--workers",
            "1",
            "--log-every",
            "1",
            "--sample-every",
            "2",
            "--tv-weight",
            "1",
        ]
    )
    assert code == 0
    prov = models.load("candy", models_dir=out.parent).card.provenance
    assert prov["command"] and prov["run_dir"] == "runs/candy"
    assert sorted(p.name for p in out.iterdir()) == ["card.toml", "weights.safetensors"]  # just the model
    grids = sorted((run / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step-00000002.png", "step-00000003.png"]
    with Image.open(grids[-1]) as grid:  # content, style and output rows of 2 samples, 2 px padding
        assert grid.size == (2 + 2 * (32 + 2), 2 + 3 * (32 + 2)) and grid.mode == "RGB"
    with open(run / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "loss", "content", "style", "tv", "lr", "images_per_s", "wall_time_s"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for r in rows:
        parts = float(r["content"]) + float(r["style"]) + float(r["tv"])
        assert float(r["loss"]) == pytest.approx(parts, rel=1e-5)
        assert float(r["images_per_s"]) > 0 and float(r["lr"]) == 1e-3
    assert [int(p.stem[5:]) for p in (run / "checkpoints").iterdir()] == [3]


def test_bf16_autocast_and_channels_last_train(data: Data, tmp_path: Path) -> None:
    cfg = make_config("fast", settings(data, "fast", tmp_path / "m", steps=2, amp="bf16", channels_last=True))
    result = train(cfg, build_recipe)
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in result.history)
    assert models.load(tmp_path / "m").module(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


# ------------------------------------------------------------------------------------ errors


def test_missing_encoder_weights_name_the_file(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "vgg16.pth"
    values = settings(data, "fast", tmp_path / "m", encoder="torchvision", encoder_weights=missing)
    cfg = make_config("fast", values)
    with pytest.raises(MissingWeightsError, match=str(missing)):
        train(cfg, build_recipe)
    cfg = make_config("adain", settings(data, "adain", tmp_path / "m", encoder="normalised"))
    with pytest.raises(MissingWeightsError, match=r"vgg_normalised\.pth"):
        train(cfg, build_recipe)
    code = main(
        [
            "train",
            "adain",
            "--content",
            str(data.content),
            "--style",
            str(data.styles),
            "--out",
            str(tmp_path / "m"),
            "--image-size",
            "32",
            "--encoder",
            "normalised",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "stylenorm train: error:" in err and "vgg_normalised.pth" in err and "--encoder random" in err


def test_an_empty_content_folder_is_a_clear_error(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code = main(
        [
            "train",
            "fast",
            "--content",
            str(tmp_path / "empty"),
            "--style",
            str(data.style),
            "--out",
            str(tmp_path / "m"),
            "--encoder",
            "random",
        ]
    )
    assert code == 2
    assert "holds no images" in capsys.readouterr().err


def test_too_few_images_for_a_batch(data: Data, tmp_path: Path) -> None:
    cfg = make_config("fast", settings(data, "fast", tmp_path / "m", batch_size=8))
    with pytest.raises(DataError, match="too few for batches of 8"):
        train(cfg, build_recipe)


def test_a_fresh_run_does_not_mix_with_an_earlier_runs_checkpoints(data: Data, tmp_path: Path) -> None:
    values = settings(data, "fast", tmp_path / "m", steps=1)
    train(make_config("fast", values), build_recipe)
    with pytest.raises(ConfigError, match="--resume latest"):
        train(make_config("fast", values), build_recipe)


def test_tensorboard_events_only_when_tensorboard_is_installed(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple] = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is optional)
        def __init__(self, logdir: str, purge_step: int) -> None:
            calls.append(("open", Path(logdir).name, purge_step))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append((tag, step))

        def close(self) -> None:
            calls.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(make_config("fast", settings(data, "fast", tmp_path / "m", steps=2)), build_recipe)
    assert calls[0] == ("open", "tensorboard", 1) and calls[-1] == ("close",)
    assert ("loss/style", 2) in calls and ("images_per_s", 1) in calls
