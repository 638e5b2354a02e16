"""Tests of stylenorm.norm.weight: weight norm, spectral norm and cosine normalization."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm.weight import CosineConv2d, CosineLinear, spectral_norm, weight_norm

F64 = torch.float64


def _linear() -> nn.Module:
    return nn.Linear(6, 4, dtype=F64)


def _conv() -> nn.Module:
    return nn.Conv2d(3, 5, 3, padding=1, dtype=F64)


def _conv_t() -> nn.Module:
    return nn.ConvTranspose2d(3, 5, 3, dtype=F64)


# ---------------------------------------------------------------------------------------------
# weight_norm


@pytest.mark.parametrize("factory", [_linear, _conv])
def test_weight_norm_keeps_initial_weight(factory) -> None:
    torch.manual_seed(0)
    module = factory()
    before = module.weight.detach().clone()
    weight_norm(module)
    assert parametrize.is_parametrized(module, "weight")
    torch.testing.assert_close(module.weight, before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("factory", "dim"), [(_linear, 0), (_conv, 0), (_conv_t, 1)])
def test_weight_norm_is_g_times_v_over_norm(factory, dim: int) -> None:
    torch.manual_seed(1)
    module = weight_norm(factory(), dim=dim)
    param = module.parametrizations.weight
    with torch.no_grad():  # move away from the init so w == w_orig cannot pass by accident
        param.original0.copy_(torch.rand_like(param.original0) + 0.5)
        param.original1.copy_(torch.randn_like(param.original1))
    g, v = param.original0, param.original1
    other = tuple(d for d in range(v.dim()) if d != dim)
    expected = g * v / torch.linalg.vector_norm(v, dim=other, keepdim=True)
    torch.testing.assert_close(module.weight, expected, rtol=1e-12, atol=1e-12)
    assert g.shape == tuple(v.shape[d] if d == dim else 1 for d in range(v.dim()))


@pytest.mark.parametrize("factory", [_linear, _conv])
def test_weight_norm_state_dict_matches_torch(factory) -> None:
    torch.manual_seed(2)
    ours = factory()
    theirs = copy.deepcopy(ours)
    weight_norm(ours)
    parametrizations.weight_norm(theirs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert {"parametrizations.weight.original0", "parametrizations.weight.original1"} <= set(ours_sd)
    for key in ours_sd:
        torch.testing.assert_close(ours_sd[key], theirs_sd[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("factory", "dim", "x_shape"),
    [
        (_linear, 0, (32, 6)),
        (_linear, 0, (4, 7, 6)),  # the unit axis of a Linear output is the last one
        (_conv, 0, (4, 3, 5, 5)),
        (_conv_t, 1, (4, 3, 4, 4)),
    ],
)
def test_weight_norm_data_init_standardizes_outputs(factory, dim: int, x_shape) -> None:
    torch.manual_seed(3)
    module = factory()
    x = torch.randn(x_shape, dtype=F64) * 3 + 1
    weight_norm(module, dim=dim, init_data=x)
    with torch.no_grad():
        y = module(x)
    channel_axis = -1 if isinstance(module, nn.Linear) else 1
    per_unit = y.movedim(channel_axis, 0).flatten(1)
    var, mean = torch.var_mean(per_unit, dim=1, correction=0)
    torch.testing.assert_close(mean, torch.zeros_like(mean), rtol=0, atol=1e-6)
    torch.testing.assert_close(var.sqrt(), torch.ones_like(var), rtol=0, atol=1e-6)
    # The direction was redrawn from N(0, 0.05²), not kept from the module's own init.
    v = module.parametrizations.weight.original1
    assert abs(v.std().item() - 0.05) < 0.02
    assert not parametrize.is_parametrized(module, "bias")


def test_weight_norm_data_init_without_bias_raises() -> None:
    module = nn.Linear(6, 4, bias=False, dtype=F64)
    with pytest.raises(ShapeError, match="no bias"):
        weight_norm(module, init_data=torch.randn(8, 6, dtype=F64))
    assert not parametrize.is_parametrized(module)  # nothing registered on failure


@pytest.mark.parametrize(("factory", "dim"), [(_conv_t, 0), (_linear, None), (_conv, 1)])
def test_weight_norm_data_init_needs_per_unit_dim(factory, dim) -> None:
    module = factory()
    x = torch.randn(2, 3, 4, 4, dtype=F64) if not isinstance(module, nn.Linear) else torch.randn(8, 6)
    with pytest.raises(SpecError, match="dim="):
        weight_norm(module, dim=dim, init_data=x.to(F64))


def test_weight_norm_data_init_zero_variance_raises() -> None:
    with pytest.raises(ShapeError, match="at least 2"):
        weight_norm(_linear(), init_data=torch.randn(1, 6, dtype=F64))
    with pytest.raises(ShapeError, match="zero"):
        weight_norm(_linear(), init_data=torch.ones(5, 6, dtype=F64))


# ---------------------------------------------------------------------------------------------
# spectral_norm


def _sigma_max(w: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)


@pytest.mark.parametrize(
    ("factory", "x_shape"),
    [(lambda: nn.Linear(16, 8, dtype=F64), (2, 16)), (lambda: nn.Conv2d(3, 6, 3, dtype=F64), (1, 3, 5, 5))],
)
def test_spectral_norm_sigma_converges_to_one(factory, x_shape) -> None:
    torch.manual_seed(4)
    module = spectral_norm(factory())
    x = torch.randn(x_shape, dtype=F64)
    module.train()
    for _ in range(50):
        module(x)
    module.eval()
    assert abs(_sigma_max(module.weight.detach()).item() - 1.0) < 1e-3


def test_spectral_norm_eval_does_not_update_u() -> None:
    torch.manual_seed(5)
    module = spectral_norm(nn.Linear(10, 7, dtype=F64)).eval()
    param = module.parametrizations.weight[0]
    u0, v0 = param._u.clone(), param._v.clone()
    x = torch.randn(3, 10, dtype=F64)
    for _ in range(3):
        y = module(x)
    torch.testing.assert_close(param._u, u0, rtol=0, atol=0)
    torch.testing.assert_close(param._v, v0, rtol=0, atol=0)
    w = module.parametrizations.weight.original
    sigma = u0 @ w @ v0  # σ is recomputed as uᵀWv from the frozen vectors
    torch.testing.assert_close(y, F.linear(x, w / sigma, module.bias), rtol=1e-12, atol=1e-12)
    module.train()
    module(x)
    assert not torch.equal(param._u, u0)  # the same module does iterate once back in train mode


def _slow_converging_linear() -> nn.Linear:
    # Close top singular values keep u moving after the 15 registration iterations, so
    # one iteration more or less is visible.
    torch.manual_seed(6)
    q1, _ = torch.linalg.qr(torch.randn(6, 6, dtype=F64))
    q2, _ = torch.linalg.qr(torch.randn(8, 8, dtype=F64))
    s = torch.tensor([1.0, 0.97, 0.9, 0.5, 0.3, 0.1], dtype=F64)
    module = nn.Linear(8, 6, dtype=F64)
    with torch.no_grad():
        module.weight.copy_(q1 @ torch.diag(s) @ q2[:6])
    return spectral_norm(module)


def _power_step(w: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    u = F.normalize(w @ v, dim=0, eps=1e-12)
    return u, F.normalize(w.T @ u, dim=0, eps=1e-12)


def test_spectral_norm_each_train_access_is_one_iteration() -> None:
    module = _slow_converging_linear().train()
    param = module.parametrizations.weight[0]
    w = module.parametrizations.weight.original.detach()
    u_start, v_start = param._u.clone(), param._v.clone()
    u1, v1 = _power_step(w, v_start)
    u2, _ = _power_step(w, v1)
    assert (u2 - u1).abs().max() > 1e-6  # the test can tell one iteration from two

    module.weight  # noqa: B018 — the access itself is the behaviour under test
    torch.testing.assert_close(param._u, u1, rtol=1e-10, atol=1e-12)
    module.weight  # noqa: B018
    torch.testing.assert_close(param._u, u2, rtol=1e-10, atol=1e-12)

    # parametrize.cached() computes the weight once: two accesses, one iteration.
    with torch.no_grad():
        param._u.copy_(u_start)
        param._v.copy_(v_start)
    with parametrize.cached():
        w_a = module.weight
        w_b = module.weight
    assert w_a is w_b
    torch.testing.assert_close(param._u, u1, rtol=1e-10, atol=1e-12)


def test_spectral_norm_state_dict_matches_torch() -> None:
    torch.manual_seed(7)
    base = nn.Conv2d(3, 4, 3, dtype=F64)
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    torch.manual_seed(8)
    spectral_norm(ours)
    torch.manual_seed(8)
    parametrizations.spectral_norm(theirs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    expected = {f"parametrizations.weight.{k}" for k in ("original", "0._u", "0._v")}
    assert expected <= set(ours_sd)
    for key in ours_sd:
        torch.testing.assert_close(ours_sd[key], theirs_sd[key], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Cosine normalization


def _cosine_linear_reference(x: Tensor, w: Tensor) -> Tensor:
    return (x @ w.T) / (x.norm(dim=-1, keepdim=True) * w.norm(dim=1))


def _cosine_conv_reference(x: Tensor, w: Tensor, stride, padding, dilation) -> Tensor:
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (N, C·kh·kw, L)
    w_flat = w.reshape(c_out, -1)
    x_norm = cols.norm(dim=1)[:, None, :]
    cos = (w_flat @ cols) / (w_flat.norm(dim=1)[:, None] * x_norm)
    cos = torch.where(x_norm == 0, 0.0, cos)  # a patch wholly in the padding is defined as 0
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return cos.reshape(n, c_out, h_out, w_out)


def test_cosine_linear_matches_formula() -> None:
    torch.manual_seed(9)
    layer = CosineLinear(7, 5).to(F64)
    x = torch.randn(2, 3, 7, dtype=F64)
    torch.testing.assert_close(layer(x), _cosine_linear_reference(x, layer.weight), rtol=1e-12, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 2),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    sh=st.integers(1, 3),
    sw=st.integers(1, 2),
    dh=st.integers(1, 2),
    dw=st.integers(1, 2),
    extra_h=st.integers(0, 4),
    extra_w=st.integers(0, 4),
    pad_frac=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_cosine_conv2d_matches_unfold_reference(
    n, c_in, c_out, kh, kw, sh, sw, dh, dw, extra_h, extra_w, pad_frac, seed
) -> None:
    # Padding up to the dilated kernel span, so some patches lie wholly in the padding.
    ph, pw = int(pad_frac * dh * (kh - 1)), int(pad_frac * dw * (kw - 1))
    h = max(1, dh * (kh - 1) + 1 - 2 * ph) + extra_h
    w = max(1, dw * (kw - 1) + 1 - 2 * pw) + extra_w
    torch.manual_seed(seed)
    layer = CosineConv2d(c_in, c_out, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw)).to(F64)
    x = torch.randn(n, c_in, h, w, dtype=F64)
    expected = _cosine_conv_reference(x, layer.weight, (sh, sw), (ph, pw), (dh, dw))
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-12)


def test_cosine_conv2d_same_padding_and_unbatched() -> None:
    torch.manual_seed(10)
    layer = CosineConv2d(2, 3, 3, padding="same", dilation=2).to(F64)
    x = torch.randn(2, 6, 5, dtype=F64)
    expected = _cosine_conv_reference(x[None], layer.weight, (1, 1), (2, 2), (2, 2))[0]
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-12)


def test_cosine_outputs_bounded() -> None:
    torch.manual_seed(11)
    lin = CosineLinear(5, 4)
    x = torch.cat([lin.weight.detach() * 123.0, -lin.weight.detach() * 1e-3, torch.randn(20, 5) * 1e3])
    y = lin(x)
    assert y.abs().max().item() <= 1.0
    torch.testing.assert_close(torch.diagonal(y[:4]), torch.ones(4), rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.diagonal(y[4:8]), -torch.ones(4), rtol=0, atol=1e-6)

    conv = CosineConv2d(3, 4, 3, padding=1, stride=2)
    x = torch.randn(2, 3, 9, 9) * 50
    x[0, :, 1:4, 1:4] = conv.weight.detach()[0] * 9  # output (1, 1) sees rows/cols 1..3: parallel to filter 0
    y = conv(x)
    assert y.abs().max().item() <= 1.0
    torch.testing.assert_close(y[0, 0, 1, 1], torch.tensor(1.0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_cosine_scale_invariance(kind: str) -> None:
    torch.manual_seed(12)
    if kind == "linear":
        layer, x = CosineLinear(6, 3).to(F64), torch.randn(4, 6, dtype=F64)
    else:
        layer, x = CosineConv2d(2, 3, 3, stride=2, padding=1).to(F64), torch.randn(2, 2, 7, 6, dtype=F64)
    y = layer(x)
    torch.testing.assert_close(layer(7 * x), y, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        layer.weight.mul_(3)
    torch.testing.assert_close(layer(x), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_cosine_zero_input_gives_zeros_and_finite_gradients(kind: str) -> None:
    torch.manual_seed(13)
    if kind == "linear":
        layer, x = CosineLinear(6, 3), torch.zeros(4, 6)
        x[2] = torch.randn(6)  # a non-zero row next to zero rows
        zero_out = torch.ones(4, dtype=torch.bool)
        zero_out[2] = False
        select = lambda y: y[zero_out]  # noqa: E731
    else:
        layer, x = CosineConv2d(2, 3, 3, padding=1), torch.zeros(1, 2, 8, 8)
        x[..., :, :3] = torch.randn(1, 2, 8, 3)  # columns ≥ 5 see only zeros
        select = lambda y: y[..., 5:]  # noqa: E731
    x.requires_grad_(True)
    y = layer(x)
    assert torch.isfinite(y).all()
    assert (select(y) == 0).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(layer.weight.grad).all()

    y0 = layer(torch.zeros_like(x))
    assert (y0 == 0).all()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: CosineLinear(4, 3),
        lambda: CosineConv2d(2, 2, 3, stride=2, padding=1, dilation=1),
        lambda: CosineConv2d(2, 3, (2, 3), stride=(1, 2), padding=(1, 2), dilation=(2, 1)),
    ],
)
def test_cosine_gradcheck(factory) -> None:
    torch.manual_seed(14)
    layer = factory().to(F64)
    shape = (2, 4) if isinstance(layer, CosineLinear) else (1, 2, 5, 5)
    x = torch.randn(shape, dtype=F64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)

    def f(x: Tensor, w: Tensor) -> Tensor:
        return torch.func.functional_call(layer, {"weight": w}, (x,))

    assert torch.autograd.gradcheck(f, (x, w))


def test_cosine_init_matches_torch_layers() -> None:
    torch.manual_seed(15)
    ours = CosineLinear(7, 5)
    torch.manual_seed(15)
    ref = nn.Linear(7, 5)
    torch.testing.assert_close(ours.weight, ref.weight, rtol=0, atol=0)
    torch.manual_seed(16)
    ours_c = CosineConv2d(3, 4, (3, 2))
    torch.manual_seed(16)
    ref_c = nn.Conv2d(3, 4, (3, 2))
    torch.testing.assert_close(ours_c.weight, ref_c.weight, rtol=0, atol=0)
    assert [k for k, _ in ours_c.named_parameters()] == ["weight"]
    assert list(ours_c.state_dict()) == ["weight"]


def test_cosine_wrong_input_shape_raises() -> None:
    with pytest.raises(ShapeError, match=r"\(\.\.\., 4\)"):
        CosineLinear(4, 2)(torch.randn(3, 5))
    with pytest.raises(ShapeError, match="CosineConv2d"):
        CosineConv2d(3, 2, 3)(torch.randn(1, 4, 5, 5))
    with pytest.raises(ShapeError, match="CosineConv2d"):
        CosineConv2d(3, 2, 3)(torch.randn(3, 5))
