"""convert_norms and adapt_batch_norm (AdaBN) over whole models."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.optim.swa_utils import update_bn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm import Normalization, make_norm
from stylenorm.norm.tools import adapt_batch_norm, convert_norms

D = torch.float64


def randomized_resnet18() -> nn.Module:
    """ResNet-18 with every BN's affine and running statistics random (seeded)."""
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return model


def bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


# ----------------------------------------------------------------------------- convert_norms


def test_convert_resnet18_to_batch_is_exact_in_eval_and_train() -> None:
    ref = randomized_resnet18()
    ours = convert_norms(copy.deepcopy(ref), "batch")
    assert not bn_layers(ours)
    converted = [m for m in ours.modules() if isinstance(m, Normalization)]
    assert len(converted) == len(bn_layers(ref)) == 20
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))

    ref.eval(), ours.eval()
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))

    ref.train(), ours.train()
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    for a, b in zip(converted, bn_layers(ref), strict=True):
        assert torch.equal(a.running_mean, b.running_mean)
        assert torch.equal(a.running_var, b.running_var)
        assert int(a.num_batches_tracked) == int(b.num_batches_tracked) == 8
    assert ours.state_dict().keys() == ref.state_dict().keys()


def test_convert_resnet18_to_group_keeps_affine_drops_running_stats() -> None:
    ref = randomized_resnet18()
    ours = convert_norms(copy.deepcopy(ref), "group:8")
    converted = [(n, m) for n, m in ours.named_modules() if isinstance(m, Normalization)]
    old = dict(ref.named_modules())
    assert len(converted) == 20 and not bn_layers(ours)
    for name, m in converted:
        assert m.stats.num_groups == 8
        assert torch.equal(m.weight, old[name].weight)
        assert torch.equal(m.bias, old[name].bias)
        assert set(m.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 3, 64, 64)
    ours.eval()
    with torch.no_grad():
        assert ours(x).shape == (2, 1000)


def test_convert_keeps_device_dtype_training_flag_requires_grad_and_eps() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, eps=1e-3, momentum=None), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)))
    model.double()
    model[3][1].eval()
    model[1].weight.requires_grad_(False)
    convert_norms(model, "batch")
    first, second = model[1], model[3][1]
    assert isinstance(first, Normalization) and isinstance(second, Normalization)
    assert first.weight.dtype == first.running_mean.dtype == D
    assert first.training and not second.training
    assert not first.weight.requires_grad and second.weight.requires_grad
    assert first.eps == 1e-3 and first.momentum is None
    assert second.eps == 1e-5 and second.momentum == 0.1
    convert_norms(model, "batch", eps=1e-4)  # stylenorm layers convert too; options win
    assert model[1].eps == 1e-4 and model[1] is not first


def test_convert_root_is_a_norm() -> None:
    bn = nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
    new = convert_norms(bn, "group:4")
    assert isinstance(new, Normalization) and new.stats.num_groups == 4
    assert torch.equal(new.weight, bn.weight) and torch.equal(new.bias, bn.bias)
    x = torch.randn(2, 8, 5, 5)
    expected = F.group_norm(x, 4, bn.weight, bn.bias, 1e-5)
    torch.testing.assert_close(new(x), expected, rtol=0, atol=1e-6)


def test_convert_to_conditional_spec_raises_and_leaves_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8))
    for spec, options in [("cin", {"num_styles": 4}), ("cbn", {"num_classes": 3}), ("adain", {})]:
        with pytest.raises(SpecError, match="conditional"):
            convert_norms(model, spec, **options)
    assert isinstance(model[1], nn.BatchNorm2d)


def test_convert_bad_spec_for_some_layer_leaves_model_unchanged() -> None:
    model = nn.Sequential(nn.BatchNorm2d(8), nn.Conv2d(8, 6, 1), nn.BatchNorm2d(6))
    with pytest.raises(ShapeError):
        convert_norms(model, "group:4")  # 6 channels cannot split into 4 groups
    assert isinstance(model[0], nn.BatchNorm2d) and isinstance(model[2], nn.BatchNorm2d)
    with pytest.raises(SpecError, match="unknown norm"):
        convert_norms(model, "bacth")


def test_convert_leaves_conditional_and_layernorm_untouched() -> None:
    cin = make_norm("cin", 8, num_styles=2)
    ln = nn.LayerNorm(5)
    model = nn.ModuleDict({"cin": cin, "ln": ln, "gn": nn.GroupNorm(2, 8)})
    convert_norms(model, "batch")
    assert model["cin"] is cin and model["ln"] is ln
    assert isinstance(model["gn"], Normalization) and model["gn"].stats.running_mean is not None


def test_convert_shared_layer_gets_one_replacement() -> None:
    bn = nn.BatchNorm2d(4)
    model = nn.Sequential(bn, nn.ReLU(), bn)
    convert_norms(model, "batch")
    assert model[0] is model[2] and isinstance(model[0], Normalization)


def test_convert_instance_norm_keeps_affine() -> None:
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.InstanceNorm2d(6, affine=True), nn.InstanceNorm2d(6))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5), model[1].bias.uniform_(-1, 1)
    ref = copy.deepcopy(model)
    convert_norms(model, "instance")
    assert isinstance(model[1], Normalization) and isinstance(model[2], Normalization)
    assert torch.equal(model[1].weight, ref[1].weight) and torch.equal(model[1].bias, ref[1].bias)
    assert model[2].weight is None  # affine=False stays off
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- adapt_batch_norm


class Tiny(nn.Module):
    """conv → BN → ReLU → dropout → conv → BN, in float64."""

    def __init__(self, bn: str = "torch") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4) if bn == "torch" else make_norm("batch", 4)
        self.bn2 = nn.BatchNorm2d(5) if bn == "torch" else make_norm("batch", 5)
        self.drop = nn.Dropout(p=0.5)
        with torch.no_grad():
            for b in (self.bn1, self.bn2):
                b.weight.uniform_(0.5, 1.5)
                b.bias.uniform_(-0.5, 0.5)
                b.running_mean.uniform_(-1, 1)
                b.running_var.uniform_(0.5, 2.0)
                b.num_batches_tracked.fill_(3)
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.drop(torch.relu(self.bn1(self.conv1(x))))))


def shifted_batches() -> list[torch.Tensor]:
    """Four batches with very different means and scales."""
    g = torch.Generator().manual_seed(3)
    return [torch.randn(3, 3, 6, 6, generator=g, dtype=D) * s + m
            for s, m in [(0.5, -2.0), (1.0, 0.0), (2.0, 3.0), (4.0, 1.0)]]


def bn_apply(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """BN in eval, written out: (x − mean)/sqrt(var + eps)·γ + β."""
    v = lambda t: t.view(1, -1, 1, 1)  # noqa: E731
    return (x - v(mean)) / torch.sqrt(v(var) + bn.eps) * v(bn.weight) + v(bn.bias)


def pooled(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    var, mean = torch.var_mean(h, dim=(0, 2, 3), correction=1)
    return mean, var


def expected_stats(model: Tiny, data: list[torch.Tensor], sequential: bool) -> dict[str, torch.Tensor]:
    """The reference: pooled mean/unbiased var of each BN's inputs over all data, written out."""
    x = torch.cat(data)
    with torch.no_grad():
        h1 = model.conv1(x)
        m1, v1 = pooled(h1)
        used_m, used_v = (m1, v1) if sequential else (model.bn1.running_mean, model.bn1.running_var)
        h2 = model.conv2(torch.relu(bn_apply(h1, used_m, used_v, model.bn1)))
        m2, v2 = pooled(h2)
    return {"m1": m1, "v1": v1, "m2": m2, "v2": v2}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("bn", ["torch", "stylenorm"])
@pytest.mark.parametrize("sequential", [True, False])
def test_adapt_is_exact_pooled_statistics(bn: str, sequential: bool) -> None:
    model = Tiny(bn)
    data = shifted_batches()
    before = snapshot(model)
    want = expected_stats(model, data, sequential)
    other = expected_stats(model, data, not sequential)
    assert (want["v2"] - other["v2"]).abs().max() > 1e-3  # the two modes really differ

    adapt_batch_norm(model, data, sequential=sequential)
    close = dict(rtol=0, atol=1e-10)
    torch.testing.assert_close(model.bn1.running_mean, want["m1"], **close)
    torch.testing.assert_close(model.bn1.running_var, want["v1"], **close)
    torch.testing.assert_close(model.bn2.running_mean, want["m2"], **close)
    torch.testing.assert_close(model.bn2.running_var, want["v2"], **close)
    after = model.state_dict()
    for key, value in before.items():
        if "running_" not in key:  # weights, affine and num_batches_tracked untouched
            assert torch.equal(after[key], value), key


def test_adapt_keeps_dropout_off_and_restores_training_flags() -> None:
    model = Tiny()
    model.train()
    model.bn2.eval()
    data = shifted_batches()
    want = expected_stats(model, data, sequential=True)  # computed with dropout as identity
    torch.manual_seed(10)
    adapt_batch_norm(model, data)
    first = (model.bn2.running_mean.clone(), model.bn2.running_var.clone())
    torch.testing.assert_close(first[1], want["v2"], rtol=0, atol=1e-10)
    torch.manual_seed(11)
    adapt_batch_norm(model, data)
    assert torch.equal(model.bn2.running_mean, first[0]) and torch.equal(model.bn2.running_var, first[1])
    assert model.training and model.drop.training and model.bn1.training and not model.bn2.training


def test_adapt_accepts_tuples_dicts_and_generators() -> None:
    data = shifted_batches()
    base = Tiny()
    ref = adapt_batch_norm(copy.deepcopy(base), data)
    forms = [[(x, 0) for x in data], [{"image": x} for x in data], [{"input": x, "y": 1} for x in data]]
    for wrapped in [*forms, (x for x in data)]:
        model = adapt_batch_norm(copy.deepcopy(base), wrapped)
        for key in ("bn1.running_var", "bn2.running_var", "bn2.running_mean"):
            assert torch.equal(model.state_dict()[key], ref.state_dict()[key])
    with pytest.raises(ShapeError, match="'image' or 'input'"):
        adapt_batch_norm(Tiny(), [{"x": data[0]}])
    with pytest.raises(ShapeError, match="Tensor"):
        adapt_batch_norm(Tiny(), [[1, 2]])


def test_adapt_empty_data_raises_and_changes_nothing() -> None:
    model = Tiny()
    model.train()
    before = snapshot(model)
    with pytest.raises(ShapeError, match="empty"):
        adapt_batch_norm(model, [])
    with pytest.raises(ShapeError, match="empty"):
        adapt_batch_norm(model, iter([]))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.training


def test_adapt_differs_from_update_bn_which_averages_batch_variances() -> None:
    data = shifted_batches()
    base = Tiny()
    ours = adapt_batch_norm(copy.deepcopy(base), data)
    theirs = copy.deepcopy(base)
    update_bn(data, theirs)
    with torch.no_grad():
        h = [theirs.conv1(x) for x in data]
    mean_of_vars = torch.stack([pooled(t)[1] for t in h]).mean(0)
    all_mean, all_var = pooled(torch.cat(h))
    torch.testing.assert_close(theirs.bn1.running_var, mean_of_vars, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.bn1.running_var, all_var, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.bn1.running_mean, theirs.bn1.running_mean, rtol=0, atol=1e-10)
    assert (ours.bn1.running_var - theirs.bn1.running_var).abs().max() > 0.1  # they really differ
    torch.testing.assert_close(ours.bn1.running_mean, all_mean, rtol=0, atol=1e-10)


class OneShot:
    """An iterable (not an iterator) that yields its batches only the first time."""

    def __init__(self, batches: list[torch.Tensor]) -> None:
        self.batches: list[torch.Tensor] | None = batches

    def __iter__(self) -> Iterator[torch.Tensor]:
        batches, self.batches = self.batches or [], None
        return iter(batches)


def test_adapt_one_shot_iterable_raises_and_restores_statistics() -> None:
    model = Tiny()
    before = snapshot(model)
    with pytest.raises(ShapeError, match="second pass"):
        adapt_batch_norm(model, OneShot(shifted_batches()))  # bn1 was already adapted: rolled back
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    adapt_batch_norm(model, OneShot(shifted_batches()), sequential=False)  # one pass is enough
    assert not torch.equal(model.bn2.running_var, before["bn2.running_var"])


def test_adapt_warns_about_layers_never_called() -> None:
    model = Tiny()
    model.unused = nn.BatchNorm2d(7).double()
    with pytest.warns(UserWarning, match="never called"):
        adapt_batch_norm(model, shifted_batches())
    assert torch.equal(model.unused.running_var, torch.ones(7, dtype=D))
