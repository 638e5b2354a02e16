"""Layers made of one statistic and a per-channel affine, against formulas and torch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stylenorm.errors import ShapeError
from stylenorm.norm import make_norm
from tests.conftest import per_channel, randomize_, reference_norm

D = torch.float64


def x64(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=D) * 3 + 1.5


# ----------------------------------------------------------------------------- batch


def test_batch_matches_torch_in_train_eval_and_buffers() -> None:
    ours, ref = make_norm("batch", 6).double(), randomize_(nn.BatchNorm2d(6).double())
    ours.load_state_dict(ref.state_dict())
    for _ in range(3):
        x = x64(4, 6, 5, 7)
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=1e-12)
    ours.eval(), ref.eval()
    x = x64(2, 6, 3, 3)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-12)


def test_batch_forward_is_the_formula_and_gradients_match_torch() -> None:
    ours = randomize_(make_norm("batch", 5).double())
    x = x64(3, 5, 4, 4).requires_grad_()
    y = ours(x)
    expected = reference_norm(x, (0, 2, 3)) * per_channel(ours.weight) + per_channel(ours.bias)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-10)
    ref = nn.BatchNorm2d(5).double()
    ref.load_state_dict(ours.state_dict())
    x2 = x.detach().clone().requires_grad_()
    g = torch.randn_like(y)
    y.backward(g)
    ref(x2).backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=0, atol=1e-10)


def test_batch_running_stats_after_one_step_and_cumulative_mode() -> None:
    x = x64(4, 3, 5, 5)
    bn = make_norm("batch", 3).double()
    bn(x)
    var_unbiased = x.var(dim=(0, 2, 3), correction=1)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var_unbiased)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(dim=(0, 2, 3)))
    cumulative = make_norm("batch", 3, momentum=None).double()
    batches = [x64(2, 3, 4, 4) for _ in range(4)]
    for b in batches:
        cumulative(b)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    variances = torch.stack([b.var(dim=(0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(cumulative.running_mean, means)
    torch.testing.assert_close(cumulative.running_var, variances)
    assert int(cumulative.num_batches_tracked) == 4


def test_batch_eval_is_a_per_channel_affine_and_fuses_into_a_conv() -> None:
    bn = randomize_(make_norm("batch", 4).double())
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.eval()
    x = x64(2, 4, 3, 3)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    torch.testing.assert_close(bn(x), x * per_channel(scale) + per_channel(shift), rtol=0, atol=1e-12)
    conv = nn.Conv2d(3, 4, 3).double().eval()
    fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
    inp = x64(2, 3, 6, 6)
    torch.testing.assert_close(fused(inp), bn(conv(inp)), rtol=0, atol=1e-10)


def test_batch_without_running_stats_uses_batch_stats_in_eval() -> None:
    bn = make_norm("batch", 3, track_running_stats=False).double().eval()
    x = x64(3, 3, 4, 4)
    torch.testing.assert_close(bn(x), reference_norm(x, (0, 2, 3)), rtol=0, atol=1e-10)
    assert "running_mean" not in bn.state_dict()


def test_batch_loads_old_checkpoints_and_saves_torch_keys() -> None:
    ref = randomize_(nn.BatchNorm2d(3))
    state = ref.state_dict()
    assert list(make_norm("batch", 3).state_dict()) == list(state)
    del state["num_batches_tracked"]  # as written by torch < 0.4.1
    ours = make_norm("batch", 3)
    ours.load_state_dict(state)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    back = nn.BatchNorm2d(3)
    back.load_state_dict(make_norm("batch", 3).state_dict())


def test_batch_single_value_per_channel_raises() -> None:
    with pytest.raises(ValueError, match="more than 1 value"):
        make_norm("batch", 3)(torch.randn(1, 3, 1, 1))
    make_norm("batch", 3).eval()(torch.randn(1, 3, 1, 1))  # eval accepts it
    make_norm("batch", 3)(torch.randn(1, 3, 2, 1))  # N=1 with H·W>1 is fine


def test_wrong_channels_or_rank_is_a_clear_error() -> None:
    with pytest.raises(ShapeError, match="built for 4 channels"):
        make_norm("batch", 4)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ShapeError, match="4-D input"):
        make_norm("instance", 4)(torch.randn(2, 4, 4))


# ----------------------------------------------------------------------------- instance


def test_instance_equals_torch_instance_norm_with_and_without_affine() -> None:
    x = x64(3, 4, 5, 6).requires_grad_()
    plain = make_norm("instance", 4).double()
    assert plain.weight is None
    torch.testing.assert_close(plain(x), F.instance_norm(x), rtol=0, atol=1e-10)
    ours = randomize_(make_norm("instance", 4, affine=True).double())
    ref = nn.InstanceNorm2d(4, affine=True).double()
    ref.load_state_dict(ours.state_dict())
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gx_ref,) = torch.autograd.grad(y_ref, x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=0, atol=1e-10)


def test_instance_running_stats_follow_torch_and_are_used_in_eval() -> None:
    ours = make_norm("instance", 3, track_running_stats=True).double()
    ref = nn.InstanceNorm2d(3, track_running_stats=True).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = x64(4, 3, 5, 5)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-10)
    expected_var = 0.9 + 0.1 * x.var(dim=(2, 3), correction=1).mean(0)
    torch.testing.assert_close(ours.running_var, expected_var)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-10)


def test_instance_momentum_none_is_a_cumulative_average() -> None:
    # torch passes momentum 0 here and never updates; we average like BatchNorm does
    ours = make_norm("instance", 2, track_running_stats=True, momentum=None).double()
    batches = [x64(2, 2, 4, 4) for _ in range(3)]
    for b in batches:
        ours(b)
    expected = torch.stack([b.mean(dim=(2, 3)).mean(0) for b in batches]).mean(0)
    torch.testing.assert_close(ours.running_mean, expected)


def test_instance_single_pixel_normalizes_to_zero_not_nan() -> None:
    layer = randomize_(make_norm("instance", 3, affine=True))
    y = layer(torch.randn(2, 3, 1, 1))
    torch.testing.assert_close(y, layer.bias.view(1, 3, 1, 1).expand(2, 3, 1, 1))


def test_instance_unbiased_convention_is_the_formula() -> None:
    x = x64(2, 3, 4, 5)
    layer = make_norm("instance", 3, unbiased=True).double()
    torch.testing.assert_close(layer(x), reference_norm(x, (2, 3), correction=1), rtol=0, atol=1e-10)


def test_instance_accepts_channels_last_input() -> None:
    x = x64(2, 4, 5, 5)
    layer = randomize_(make_norm("instance", 4, affine=True).double())
    torch.testing.assert_close(
        layer(x.to(memory_format=torch.channels_last)), layer(x), rtol=0, atol=1e-10
    )


# ----------------------------------------------------------------------------- group and layer


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 3), groups=st.integers(1, 4), per_group=st.integers(1, 3),
    h=st.integers(1, 5), w=st.integers(2, 5),
)
def test_group_equals_torch_group_norm(n: int, groups: int, per_group: int, h: int, w: int) -> None:
    c = groups * per_group
    ours = randomize_(make_norm(f"group:{groups}", c).double())
    ref = nn.GroupNorm(groups, c).double()
    ref.load_state_dict(ours.state_dict())
    x = x64(n, c, h, w)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-10)


def test_group_requires_divisible_channels() -> None:
    with pytest.raises(ValueError, match="cannot be split into 3 groups"):
        make_norm("group:3", 8)


def test_layer_is_group_one_and_layer_norm_over_chw() -> None:
    x = x64(2, 4, 3, 5)
    layer = randomize_(make_norm("layer", 4).double())
    group = make_norm("group:1", 4).double()
    group.load_state_dict(layer.state_dict())
    weight = layer.weight.view(4, 1, 1).expand(4, 3, 5)
    bias = layer.bias.view(4, 1, 1).expand(4, 3, 5)
    expected = F.layer_norm(x, (4, 3, 5), weight, bias)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(group(x), expected, rtol=0, atol=1e-10)


def test_instance_is_group_with_one_channel_per_group() -> None:
    x = x64(2, 4, 3, 5)
    inst = randomize_(make_norm("instance", 4, affine=True).double())
    group = make_norm("group:4", 4).double()
    group.load_state_dict(inst.state_dict())
    torch.testing.assert_close(inst(x), group(x), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- batch renorm


def test_batch_renorm_without_freedom_is_batch_norm() -> None:
    renorm = randomize_(make_norm("batch_renorm", 3, r_max=1.0, d_max=0.0).double())
    bn = make_norm("batch", 3).double()
    bn.load_state_dict(renorm.state_dict())
    for _ in range(3):
        x = x64(4, 3, 4, 4)
        torch.testing.assert_close(renorm(x), bn(x), rtol=0, atol=1e-10)
    torch.testing.assert_close(renorm.running_var, bn.running_var, rtol=0, atol=1e-12)
    renorm.eval(), bn.eval()
    x = x64(2, 3, 4, 4)
    torch.testing.assert_close(renorm(x), bn(x), rtol=0, atol=1e-12)


def test_batch_renorm_unclipped_normalizes_by_running_stats() -> None:
    layer = make_norm("batch_renorm", 3, r_max=1e9, d_max=1e9, affine=False).double()
    layer.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    layer.running_var.copy_(torch.tensor([2.0, 0.5, 4.0]))
    rm, rv = layer.running_mean.clone(), layer.running_var.clone()
    x = x64(4, 3, 4, 4)
    expected = (x - per_channel(rm)) / torch.sqrt(per_channel(rv) + 1e-5)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10)


def test_batch_renorm_r_and_d_are_constants_for_the_gradient() -> None:
    layer = make_norm("batch_renorm", 2, r_max=2.0, d_max=1.0, affine=False).double()
    layer.running_mean.fill_(0.3)
    layer.running_var.fill_(0.7)
    x = x64(3, 2, 4, 4).requires_grad_()
    rm, rv = layer.running_mean.clone(), layer.running_var.clone()
    y = layer(x)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = torch.sqrt(x.var(dim=(0, 2, 3), correction=0, keepdim=True) + 1e-5)
    std_run = torch.sqrt(per_channel(rv) + 1e-5)
    r = (std / std_run).clamp(0.5, 2.0).detach()
    d = ((mean - per_channel(rm)) / std_run).clamp(-1.0, 1.0).detach()
    expected = (x - mean) / std * r + d
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-10)
    g = torch.randn_like(y)
    torch.testing.assert_close(
        torch.autograd.grad(y, x, g)[0], torch.autograd.grad(expected, x, g)[0], rtol=0, atol=1e-10
    )


def test_batch_renorm_schedule_warms_up_then_ramps() -> None:
    layer = make_norm("batch_renorm", 2, r_max=3.0, d_max=5.0, warmup_steps=2, ramp_steps=4)
    seen = []
    for _ in range(8):
        seen.append(layer.stats.limits())
        layer(torch.randn(2, 2, 3, 3))
    assert seen[:2] == [(1.0, 0.0), (1.0, 0.0)]
    assert seen[2] == (1.0, 0.0) and seen[4] == (2.0, 2.5) and seen[6] == (3.0, 5.0)


# ----------------------------------------------------------------------------- switchable


def _one_hot_logits(k: int, n: int = 3) -> torch.Tensor:
    logits = torch.full((n,), -1e4, dtype=D)
    logits[k] = 1e4
    return logits


@pytest.mark.parametrize(("k", "dims"), [(0, (2, 3)), (1, (1, 2, 3)), (2, (0, 2, 3))])
def test_switchable_one_hot_mixture_is_in_ln_or_bn(k: int, dims: tuple[int, ...]) -> None:
    layer = randomize_(make_norm("switchable", 4).double())
    with torch.no_grad():
        layer.mean_weight.copy_(_one_hot_logits(k))
        layer.var_weight.copy_(_one_hot_logits(k))
    x = x64(3, 4, 5, 5)
    expected = reference_norm(x, dims) * per_channel(layer.weight) + per_channel(layer.bias)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-9)


def test_switchable_bn_term_keeps_batch_norm_running_stats() -> None:
    layer = make_norm("switchable", 3).double()
    bn = make_norm("batch", 3).double()
    with torch.no_grad():
        layer.mean_weight.copy_(_one_hot_logits(2))
        layer.var_weight.copy_(_one_hot_logits(2))
    for _ in range(2):
        x = x64(4, 3, 4, 4)
        layer(x), bn(x)
    torch.testing.assert_close(layer.running_var, bn.running_var, rtol=0, atol=1e-10)
    layer.eval(), bn.eval()
    x = x64(2, 3, 4, 4)
    torch.testing.assert_close(layer(x), bn(x), rtol=0, atol=1e-9)


def test_switchable_mixture_is_the_formula() -> None:
    layer = make_norm("switchable", 3).double()
    with torch.no_grad():
        layer.mean_weight.copy_(torch.tensor([0.3, -0.2, 1.0]))
        layer.var_weight.copy_(torch.tensor([-1.0, 0.5, 0.1]))
    x = x64(2, 3, 4, 4)
    moments = [
        (x.mean(dims, keepdim=True), x.var(dims, correction=0, keepdim=True))
        for dims in ((2, 3), (1, 2, 3), (0, 2, 3))
    ]
    wm, wv = torch.softmax(layer.mean_weight, 0), torch.softmax(layer.var_weight, 0)
    mean = sum(w * m for w, (m, _) in zip(wm, moments, strict=True))
    var = sum(w * v for w, (_, v) in zip(wv, moments, strict=True))
    torch.testing.assert_close(layer(x), (x - mean) / torch.sqrt(var + 1e-5), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- pono, rms, frn


def test_pono_is_layer_norm_over_channels_and_moment_shortcut_inverts_it() -> None:
    from stylenorm.norm import moment_shortcut

    x = x64(2, 5, 3, 4)
    layer = make_norm("pono", 5, return_stats=True).double()
    y, mean, std = layer(x)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (5,)).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-10)
    assert mean.shape == std.shape == (2, 1, 3, 4)
    torch.testing.assert_close(moment_shortcut(y, mean, std), x, rtol=0, atol=1e-10)


def test_pono_official_unbiased_convention_and_single_channel() -> None:
    x = x64(2, 6, 3, 3)
    biased = make_norm("pono", 6, eps=0.0).double()(x)
    unbiased = make_norm("pono", 6, eps=0.0, unbiased=True).double()(x)
    torch.testing.assert_close(biased / unbiased, torch.full_like(x, (6 / 5) ** 0.5))
    single = make_norm("pono", 1)(torch.randn(2, 1, 3, 3))
    assert torch.isfinite(single).all() and single.abs().max() == 0
    assert torch.isfinite(make_norm("pono", 1, unbiased=True)(torch.randn(2, 1, 3, 3))).all()


def test_rms_is_the_formula_and_layer_norm_for_zero_mean_input() -> None:
    x = x64(2, 4, 3, 3)
    layer = randomize_(make_norm("rms", 4).double())
    expected = x / torch.sqrt(x.pow(2).mean(1, keepdim=True) + 1e-6) * per_channel(layer.weight)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10)
    centered = x - x.mean(1, keepdim=True)
    plain = make_norm("rms", 4).double()
    torch.testing.assert_close(plain(centered), make_norm("pono", 4, eps=1e-6).double()(centered))


def test_frn_is_instance_norm_for_zero_mean_maps_and_tlu_clips() -> None:
    x = x64(2, 3, 4, 4)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    frn = make_norm("frn", 3, eps=1e-5, tlu=False).double()
    torch.testing.assert_close(frn(x), F.instance_norm(x, eps=1e-5), rtol=0, atol=1e-10)
    tlu = make_norm("frn", 3).double()
    with torch.no_grad():
        tlu.tau.fill_(0.25)
    y = tlu(x)
    assert y.min() >= 0.25
    nu2 = x.pow(2).mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(y, torch.clamp(x / torch.sqrt(nu2 + 1e-6), min=0.25), rtol=0, atol=1e-10)


def test_frn_on_single_pixels_is_a_sign_unless_eps_is_learned() -> None:
    x = torch.randn(4, 3, 1, 1, dtype=D)
    y = make_norm("frn", 3, tlu=False).double()(x)
    torch.testing.assert_close(y, torch.sign(x), rtol=0, atol=1e-4)
    learned = make_norm("frn", 3, learnable_eps=True).double()
    learned(x).sum().backward()
    assert learned.eps.grad is not None and learned.eps.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- lrn, ibn, evonorm


@pytest.mark.parametrize("n", [3, 4, 5])
def test_lrn_is_torch_and_the_windowed_formula(n: int) -> None:
    layer = make_norm(f"lrn:{n}", 6)
    assert isinstance(layer, nn.LocalResponseNorm)
    x = x64(2, 6, 3, 3)
    alpha, beta, k = 1e-4, 0.75, 1.0
    lo, hi = n // 2, (n - 1) // 2
    sq = F.pad(x.pow(2), (0, 0, 0, 0, lo, hi))
    window = torch.stack([sq[:, c:c + n].sum(1) for c in range(6)], 1)
    expected = x / (k + alpha / n * window) ** beta
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_ibn_splits_at_any_ratio() -> None:
    layer = randomize_(make_norm("ibn:0.3", 10).double())
    assert layer.half == 3
    x = x64(4, 10, 4, 4)
    in_part = F.instance_norm(x[:, :3], weight=layer.IN.weight, bias=layer.IN.bias)
    bn_ref = nn.BatchNorm2d(7).double()
    bn_ref.load_state_dict(layer.BN.state_dict())
    torch.testing.assert_close(layer(x), torch.cat([in_part, bn_ref(x[:, 3:])], 1), rtol=0, atol=1e-10)
    assert {"IN.weight", "BN.running_mean"} <= set(layer.state_dict())
    with pytest.raises(ValueError, match="IBN ratio"):
        make_norm("ibn:0.05", 8)


def test_evonorm_b0_and_s0_are_their_formulas() -> None:
    x = x64(3, 8, 4, 4)
    b0 = randomize_(make_norm("evo_b0", 8).double())
    var_b = x.var(dim=(0, 2, 3), correction=0, keepdim=True)
    var_in = x.var(dim=(2, 3), correction=0, keepdim=True)
    den = torch.maximum(torch.sqrt(var_b + 1e-3), per_channel(b0.v) * x + torch.sqrt(var_in + 1e-3))
    torch.testing.assert_close(
        b0(x), x / den * per_channel(b0.weight) + per_channel(b0.bias), rtol=0, atol=1e-10
    )
    running = copy.deepcopy(b0).eval()
    assert torch.isfinite(running(x)).all()
    s0 = randomize_(make_norm("evo_s0:2", 8).double())
    std = torch.sqrt(x.view(3, 2, -1).var(dim=2, correction=0) + 1e-5).repeat_interleave(4, 1)
    expected = x * torch.sigmoid(per_channel(s0.v) * x) / std.view(3, 8, 1, 1)
    torch.testing.assert_close(
        s0(x), expected * per_channel(s0.weight) + per_channel(s0.bias), rtol=0, atol=1e-10
    )
