"""VGG encoders: layouts and key names of both weight formats, loading, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from stylenorm.errors import MissingWeightsError, SpecError
from stylenorm.nets import VGGEncoder, hub_path, layer_names, load_vgg_weights


def test_torchvision_layout_equals_torchvision_features() -> None:
    ours = VGGEncoder(19, "relu3_1", "torchvision")
    theirs = torchvision.models.vgg19(weights=None).features[: len(ours.features)]
    assert list(ours.features.state_dict()) == [f"{k}" for k in theirs.state_dict()]
    ours.features.load_state_dict(theirs.state_dict())
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(ours(x)["relu3_1"], theirs((x - mean) / std))


def test_normalised_layout_has_pytorch_adain_indices() -> None:
    enc = VGGEncoder(19, "relu4_1", "normalised")
    keys = [k.split(".")[0] for k in enc.features.state_dict() if k.endswith("weight")]
    assert keys == ["0", "2", "5", "9", "12", "16", "19", "22", "25", "29"]
    assert len(enc.features) == 31 and enc.out_channels == 512
    assert enc.features[7].ceil_mode and isinstance(enc.features[1], torch.nn.ReflectionPad2d)


def test_taps_return_every_requested_layer() -> None:
    enc = VGGEncoder(16, "relu4_3", "random")
    feats = enc(torch.rand(2, 3, 32, 32), ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    assert [f.shape[1] for f in feats.values()] == [64, 128, 256, 512]
    assert feats["relu4_3"].shape[2:] == (4, 4)
    with pytest.raises(SpecError, match="has no layer"):
        enc(torch.rand(1, 3, 8, 8), ("relu5_1",))


def test_random_encoder_is_seeded_and_frozen() -> None:
    a, b, c = (VGGEncoder(19, "relu2_1", "random", seed=s) for s in (1, 1, 2))
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    assert not any(p.requires_grad for p in a.parameters())


def _partial_torchvision_file(path: Path) -> dict:
    full = torchvision.models.vgg19(weights=None).state_dict()
    state = {k: v for k, v in full.items() if k.startswith(("features.0.", "features.2."))}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # real files carry the classifier too
    torch.save(state, path)
    return state


def test_loads_torchvision_weights_from_a_path_and_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _partial_torchvision_file(tmp_path / "vgg.pth")
    enc = load_vgg_weights(VGGEncoder(19, "relu1_2", "torchvision"), tmp_path / "vgg.pth")
    assert torch.equal(enc.features[2].weight, state["features.2.weight"])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    hub_path(19).parent.mkdir(parents=True)
    (tmp_path / "vgg.pth").rename(hub_path(19))
    enc = load_vgg_weights(VGGEncoder(19, "relu1_2", "torchvision"))
    assert torch.equal(enc.features[0].bias, state["features.0.bias"])


def test_loads_the_adain_vgg_normalised_file(tmp_path: Path) -> None:
    source = VGGEncoder(19, "relu2_1", "normalised")
    torch.nn.init.normal_(source.features[0].weight)
    plain = {k: v for k, v in source.features.state_dict().items()}  # keys "0.weight", … as published
    torch.save(plain, tmp_path / "vgg_normalised.pth")
    enc = load_vgg_weights(VGGEncoder(19, "relu2_1", "normalised"), tmp_path / "vgg_normalised.pth")
    assert torch.equal(enc.features[0].weight, source.features[0].weight)


def test_missing_or_unfitting_weights_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"vgg19-dcbb9e9d\.pth.*--encoder random"):
        load_vgg_weights(VGGEncoder(19, "relu1_1"))
    with pytest.raises(MissingWeightsError, match=r"vgg_normalised\.pth"):
        load_vgg_weights(VGGEncoder(19, "relu1_1", "normalised"))
    _partial_torchvision_file(tmp_path / "small.pth")
    with pytest.raises(SpecError, match="does not fit"):
        load_vgg_weights(VGGEncoder(19, "relu2_1"), tmp_path / "small.pth")


def test_bad_encoder_arguments_are_clear() -> None:
    with pytest.raises(SpecError, match="depth must be 16 or 19"):
        VGGEncoder(11)
    with pytest.raises(SpecError, match="unknown VGG-16 layer 'relu3_4'"):
        VGGEncoder(16, "relu3_4")
    with pytest.raises(SpecError, match="depth 19 only"):
        VGGEncoder(16, "relu2_1", "normalised")
    assert layer_names(16)[-1] == "pool5" and len(layer_names(19)) == 16 * 2 + 5
