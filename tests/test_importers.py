"""Importers of published checkpoints, checked against independent reference implementations.

The "published" files are written here from tests/reference_nets.py with
random weights (the real ones cannot be downloaded on this machine), in the
published layout: plain state dicts, and for fast-neural-style the legacy
``in*.running_mean/var`` buffers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import stylenorm
from stylenorm.cli import main
from stylenorm.errors import MissingWeightsError
from stylenorm.interop.importers import import_fast_neural_style, import_pytorch_adain, read_checkpoint
from stylenorm.models import load
from stylenorm.repository import ModelError, read_card
from tests.reference_nets import (
    INSTANCE_NORM_NAMES,
    LEGACY_KEY,
    RefTransformerNet,
    fast_state_with_legacy_keys,
    published_like_fast_net,
    randomize,
    reference_decoder,
    reference_style_transfer,
    reference_vgg,
    save_published,
)

AdainFiles = tuple[torch.nn.Sequential, torch.nn.Sequential, Path, Path]  # vgg, decoder, their files
FAST_TOL = 1e-3  # on the original's [0, 255] scale
ADAIN_TOL = 1e-4


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fast_ref() -> RefTransformerNet:
    return published_like_fast_net(seed=1)


@pytest.fixture
def fast_pth(tmp_path: Path, fast_ref: RefTransformerNet) -> Path:
    return save_published(fast_state_with_legacy_keys(fast_ref), tmp_path / "mosaic.pth")


@pytest.fixture(scope="module")
def adain_files(tmp_path_factory: pytest.TempPathFactory) -> AdainFiles:
    folder = tmp_path_factory.mktemp("pytorch_adain")
    vgg, decoder = randomize(reference_vgg(), 2).eval(), randomize(reference_decoder(), 3).eval()
    vgg_pth = save_published(vgg.state_dict(), folder / "vgg_normalised.pth")
    dec_pth = save_published(decoder.state_dict(), folder / "decoder.pth")
    return vgg, decoder, vgg_pth, dec_pth


# ------------------------------------------------------------------ the ground truth matches the documents


def test_reference_nets_match_the_documented_layouts() -> None:
    """Key counts, parameter counts and the 8-aligned decoder output of style_transfer_anchors.md §2–3."""
    fast = RefTransformerNet()
    assert len(fast.state_dict()) == 62 and _params(fast) == 1_679_235
    vgg, decoder = reference_vgg(), reference_decoder()
    assert len(vgg) == 53 and len(vgg.state_dict()) == 34 and _params(vgg) == 20_024_396
    assert _params(vgg[:31]) == 3_505_740
    assert len(decoder) == 29 and len(decoder.state_dict()) == 18 and _params(decoder) == 3_505_219
    with torch.no_grad():
        out = decoder(vgg[:31](torch.rand(1, 3, 60, 52)))
    assert out.shape == (1, 3, 64, 56)  # ceil-mode pools: the original returns multiples of 8


def test_fake_published_file_carries_the_legacy_keys(fast_pth: Path) -> None:
    state = torch.load(fast_pth, weights_only=True)
    legacy = [k for k in state if LEGACY_KEY.search(k)]
    assert len(legacy) == 2 * len(INSTANCE_NORM_NAMES) == 30
    assert len(state) == 62 + 30


# ------------------------------------------------------------------ fast neural style


def test_fast_import_reproduces_the_original(
    fast_pth: Path, fast_ref: RefTransformerNet, tmp_path: Path
) -> None:
    folder = import_fast_neural_style(fast_pth, tmp_path / "models", "mosaic")
    model = load(folder)
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        ours = model.module(x / 255) * 255
        theirs = fast_ref(x).clamp(0, 255)
    assert ours.shape == theirs.shape == x.shape
    assert theirs.std() > 20  # a pixel-scale output, not a near-constant one
    assert (ours - theirs).abs().max() <= FAST_TOL

    card = read_card(folder)
    assert card.architecture == "fast"
    assert card.arguments == {"norm": "instance", "pixel_scale": 255.0, "output": "linear"}
    assert card.styles == ["mosaic"]
    assert card.provenance["source"] == "mosaic.pth"
    assert card.provenance["source_sha256"] == _sha(fast_pth)
    assert "pytorch/examples fast_neural_style" in card.provenance["note"]


def test_fast_import_at_a_size_not_a_multiple_of_4(
    fast_pth: Path, fast_ref: RefTransformerNet, tmp_path: Path
) -> None:
    """The original returns a 4-aligned, larger output (37×45 -> 40×48) computed on a different grid.

    Ours reflect-pads the input to 40×48, runs the same layers and crops, so it
    equals the original applied to that padded input, cropped to the overlapping
    37×45 part. (Against the original on the unpadded input the overlap is not
    comparable: every feature map has another size, so IN statistics differ.)
    """
    model = load(import_fast_neural_style(fast_pth, tmp_path / "models", "mosaic"))
    x = torch.rand(2, 3, 37, 45) * 255
    with torch.no_grad():
        ours = model.module(x / 255) * 255
        unpadded = fast_ref(x)
        theirs = fast_ref(F.pad(x, (0, 3, 0, 3), mode="reflect")).clamp(0, 255)
    assert unpadded.shape == (2, 3, 40, 48)
    assert ours.shape == (2, 3, 37, 45)
    assert (ours - theirs[:, :, :37, :45]).abs().max() <= FAST_TOL


def test_fast_import_unwraps_a_state_dict_wrapper_and_names_styles(
    fast_ref: RefTransformerNet, tmp_path: Path
) -> None:
    wrapped = {"state_dict": fast_ref.state_dict(), "epoch": 2}
    pth = save_published(wrapped, tmp_path / "Starry Night.pth")
    card = read_card(import_fast_neural_style(pth, tmp_path / "models", "starry"))
    assert card.styles == ["starry-night"]  # the file stem, made a valid name
    card = read_card(import_fast_neural_style(pth, tmp_path / "models", "starry2", style_name="van-gogh"))
    assert card.styles == ["van-gogh"]
    with pytest.raises(ModelError, match="invalid model name"):
        import_fast_neural_style(pth, tmp_path / "models", "starry3", style_name="Van Gogh")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.update({"res6.conv1.conv2d.weight": torch.zeros(3)}),
         r"unexpected keys res6\.conv1\.conv2d\.weight"),
        (lambda s: s.pop("res3.in2.bias"), r"missing keys res3\.in2\.bias"),
        (lambda s: s.update({"in1.weight": torch.ones(16)}),
         r"wrong shapes in1\.weight \(16,\) \(expected \(32,\)\)"),
    ],
    ids=["unexpected", "missing", "wrong-shape"],
)
def test_fast_import_names_keys_that_do_not_fit(
    edit: object, named: str, fast_ref: RefTransformerNet, tmp_path: Path
) -> None:
    state = fast_state_with_legacy_keys(fast_ref)
    edit(state)  # type: ignore[operator]
    pth = save_published(state, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match=named):
        import_fast_neural_style(pth, tmp_path / "models", "broken")
    assert not (tmp_path / "models" / "broken").exists()


def _leave_mark(path: str) -> str:
    Path(path).write_text("unpickling ran code")
    return path


class _Payload:
    """An object whose unpickling would call _leave_mark: weights_only must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (_leave_mark, (str(self.marker),))


def test_a_pickle_with_objects_is_refused_without_running_code(
    fast_ref: RefTransformerNet, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    state = dict(fast_ref.state_dict())
    state["extra"] = _Payload(marker)
    pth = tmp_path / "evil.pth"
    torch.save(state, pth)
    refused = r"refused to load .*\(tests\.test_importers\._leave_mark\).*only plain"
    with pytest.raises(ModelError, match=refused):
        import_fast_neural_style(pth, tmp_path / "models", "evil")
    assert not marker.exists()


def test_the_cli_reports_a_refused_pickle_in_one_line(
    fast_ref: RefTransformerNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pth = tmp_path / "evil.pth"
    torch.save({"model": _Payload(tmp_path / "marker.txt")}, pth)
    code = main(["import", "fast-neural-style", "--weights", str(pth), "--name", "evil",
                 "--models-dir", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 2
    assert "refused to load" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not found"):
        read_checkpoint(tmp_path / "nowhere.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="could not be read as a PyTorch checkpoint"):
        read_checkpoint(garbage)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ModelError, match="not a state dict"):
        read_checkpoint(listed)


def test_an_existing_model_is_not_overwritten_unless_asked(fast_pth: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    import_fast_neural_style(fast_pth, models, "mosaic")
    with pytest.raises(ModelError, match="already exists"):
        import_fast_neural_style(fast_pth, models, "mosaic")
    card = read_card(import_fast_neural_style(fast_pth, models, "mosaic", "other", overwrite=True))
    assert card.styles == ["other"]
    with pytest.raises(ModelError, match="invalid model name"):
        import_fast_neural_style(fast_pth, models, "../escape")


# ------------------------------------------------------------------ pytorch-AdaIN


def test_adain_import_reproduces_the_port(adain_files: AdainFiles, tmp_path: Path) -> None:
    vgg, decoder, vgg_pth, dec_pth = adain_files
    folder = import_pytorch_adain(dec_pth, vgg_pth, tmp_path / "models", "adain")
    model = load(folder)
    model.module.margin = 0  # the port has no mirrored margin (ours adds one against border fringes)
    content, style = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    for alpha in (1.0, 0.5):
        with torch.no_grad():
            ours = model.module(content, style, alpha)
            theirs = reference_style_transfer(vgg, decoder, content, style, alpha)
        assert ours.shape == theirs.shape == content.shape
        assert theirs.std() > 1e-2
        assert (ours - theirs).abs().max() <= ADAIN_TOL, alpha
    card = read_card(folder)
    assert card.architecture == "adain"
    assert card.arguments == {
        "encoder": {"fmt": "normalised", "depth": 19, "last": "relu4_1", "seed": 0},
        "eps": 1e-5,
        "unbiased": True,
    }
    assert card.provenance["decoder_sha256"] == _sha(dec_pth)
    assert card.provenance["vgg_sha256"] == _sha(vgg_pth)


def test_adain_import_at_a_size_not_a_multiple_of_8(adain_files: AdainFiles, tmp_path: Path) -> None:
    """The port returns an 8-aligned output; ours equals it on the reflect-padded content, cropped back."""
    vgg, decoder, vgg_pth, dec_pth = adain_files
    model = load(import_pytorch_adain(dec_pth, vgg_pth, tmp_path / "models", "adain"))
    model.module.margin = 0  # as the port (see above)
    content, style = torch.rand(1, 3, 60, 52), torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        ours = model.module(content, style, 0.8)
        padded = F.pad(content, (0, 4, 0, 4), mode="reflect")
        theirs = reference_style_transfer(vgg, decoder, padded, style, 0.8)
    assert ours.shape == content.shape
    assert (ours - theirs[:, :, :60, :52]).abs().max() <= ADAIN_TOL


def test_adain_import_names_what_does_not_fit(adain_files: AdainFiles, tmp_path: Path) -> None:
    vgg, decoder, vgg_pth, dec_pth = adain_files
    models = tmp_path / "models"
    short = dict(decoder.state_dict())
    del short["28.bias"]
    with pytest.raises(ModelError, match=r"missing keys 28\.bias"):
        import_pytorch_adain(save_published(short, tmp_path / "short.pth"), vgg_pth, models, "a1")
    torchvision_like = {f"features.{k}": v for k, v in vgg.state_dict().items()}
    with pytest.raises(ModelError, match=r"not pytorch-AdaIN's vgg_normalised\.pth.*features\.0\.bias"):
        import_pytorch_adain(dec_pth, save_published(torchvision_like, tmp_path / "tv.pth"), models, "a2")
    with pytest.raises(ModelError, match=r"not pytorch-AdaIN's vgg_normalised\.pth"):  # files swapped
        import_pytorch_adain(vgg_pth, dec_pth, models, "a3")
    truncated = {k: v for k, v in vgg.state_dict().items() if int(k.split(".")[0]) < 29}
    with pytest.raises(ModelError, match=r"missing keys 29\.bias, 29\.weight"):
        import_pytorch_adain(dec_pth, save_published(truncated, tmp_path / "trunc.pth"), models, "a4")
    assert not models.exists() or not any(models.iterdir())


# ------------------------------------------------------------------ the CLI


def test_cli_imports_both_kinds(
    fast_pth: Path, adain_files: AdainFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    code = main(["import", "fast-neural-style", "--weights", str(fast_pth), "--name", "mosaic",
                 "--style-name", "mosaic-style", "--models-dir", str(models)])
    assert code == 0
    assert str(models / "mosaic") in capsys.readouterr().out
    assert read_card(models / "mosaic").styles == ["mosaic-style"]
    assert load("mosaic", models).card.architecture == "fast"
    assert read_card(models / "mosaic").license.startswith("BSD-3-Clause")  # the source's licence
    assert read_card(models / "mosaic").stylenorm_version == stylenorm.__version__

    _, _, vgg_pth, dec_pth = adain_files
    code = main(["import", "pytorch-adain", "--decoder", str(dec_pth), "--vgg", str(vgg_pth),
                 "--name", "adain", "--models-dir", str(models)])
    assert code == 0
    assert load("adain", models).card.arguments["unbiased"] is True
    assert load("adain", models).card.license.startswith("MIT")
    code = main(["import", "pytorch-adain", "--decoder", str(dec_pth), "--vgg", str(vgg_pth),
                 "--name", "mine", "--models-dir", str(models), "--license", "CC0-1.0 (retrained by us)"])
    assert code == 0 and read_card(models / "mine").license == "CC0-1.0 (retrained by us)"

    code = main(["import", "pytorch-adain", "--decoder", str(dec_pth), "--vgg", str(tmp_path / "missing.pth"),
                 "--name", "adain2", "--models-dir", str(models)])
    err = capsys.readouterr().err
    assert code == 2 and "missing.pth not found" in err
