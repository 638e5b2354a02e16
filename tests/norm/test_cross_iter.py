"""Cross-Iteration BN: BN at k=1, plain accumulation, Taylor compensation, gradients, edge cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.norm.cross_iter import CrossIterBatchNorm2d, CrossIterBatchStats

D64 = torch.float64
EPS = 1e-5


def _rand(*shape: int, seed: int, offset: float = 0.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D64) + offset


def _randomize_affine(layer: nn.Module, seed: int) -> None:
    with torch.no_grad():
        layer.weight.copy_(_rand(layer.weight.shape[0], seed=seed) + 1.0)
        layer.bias.copy_(_rand(layer.bias.shape[0], seed=seed + 1))


# ---------------------------------------------------------------- references (float64, explicit)


def _ref_plain(past: list[Tensor], x: Tensor, scale: Tensor | None, shift: Tensor | None) -> Tensor:
    """BN over the current batch x and the (detached) past batches: mean of μ, mean of ν."""
    mus = [b.detach().mean((0, 2, 3)) for b in past] + [x.mean((0, 2, 3))]
    nus = [b.detach().square().mean((0, 2, 3)) for b in past] + [x.square().mean((0, 2, 3))]
    mu = torch.stack(mus).mean(0)
    var = (torch.stack(nus).mean(0) - mu.square()).clamp_min(0)
    y = (x - mu.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + EPS)
    if scale is not None:
        y = y * (scale.view(1, -1, 1, 1) if scale.dim() == 1 else scale[:, :, None, None])
    if shift is not None:
        y = y + (shift.view(1, -1, 1, 1) if shift.dim() == 1 else shift[:, :, None, None])
    return y


def _patches(z: Tensor) -> Tensor:
    """(N, Cin, H, W) -> (N·H·W, Cin·3·3): the rows a 3×3 conv with padding 1 multiplies."""
    p = F.unfold(z, 3, padding=1)
    return p.transpose(1, 2).reshape(-1, p.shape[1])


def _ref_cbn(
    past: list[tuple[Tensor, Tensor]], z: Tensor, w: Tensor, gamma: Tensor, beta: Tensor
) -> Tensor:
    """CBN written out with analytic derivatives: μ_c = W_c·E[p], ν_c = W_cᵀ E[ppᵀ] W_c.

    past: (z_τ, W_τ) newest first; the current output is conv(z, w) (3×3, pad 1, no bias).
    """
    c = w.shape[0]
    w_now = w.detach().reshape(c, -1)
    mus, nus, keep = [], [], []
    for z_p, w_p in past:
        p = _patches(z_p.detach())
        wf = w_p.detach().reshape(c, -1)
        e_p, m_pp = p.mean(0), p.T @ p / p.shape[0]
        mu, nu = wf @ e_p, ((p @ wf.T) ** 2).mean(0)
        dmu = e_p.expand(c, -1)  # ∂μ_c/∂W_c
        dnu = 2 * wf @ m_pp  # ∂ν_c/∂W_c
        mu_c = mu + (dmu * (w_now - wf)).sum(1)
        nu_c = nu + (dnu * (w_now - wf)).sum(1)
        mus.append(mu_c)
        nus.append(nu_c)
        keep.append(nu_c - mu_c.square() >= 0)
    y = F.conv2d(z, w, padding=1)
    mus.append(y.mean((0, 2, 3)))
    nus.append(y.square().mean((0, 2, 3)))
    keep.append(torch.ones(c, dtype=torch.bool))
    k = torch.stack(keep).to(D64)
    mu = (torch.stack(mus) * k).sum(0) / k.sum(0)
    var = ((torch.stack(nus) * k).sum(0) / k.sum(0) - mu.square()).clamp_min(0)
    x_hat = (y - mu.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + EPS)
    return x_hat * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


# ---------------------------------------------------------------- k = 1 is BatchNorm2d


@pytest.mark.parametrize("momentum", [0.1, None])
def test_window_one_is_batchnorm2d(momentum: float | None) -> None:
    c = 3
    ours = CrossIterBatchNorm2d(c, window=1, momentum=momentum).double()
    bn = nn.BatchNorm2d(c, momentum=momentum).double()
    _randomize_affine(bn, seed=1)
    assert list(ours.state_dict()) == list(bn.state_dict())
    ours.load_state_dict(bn.state_dict())
    for step in range(3):
        x = _rand(4, c, 3, 5, seed=10 + step, offset=step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y_bn = ours(x), bn(x2)
        torch.testing.assert_close(y, y_bn, rtol=0, atol=1e-12)
        g = _rand(*y.shape, seed=20 + step)
        (y * g).sum().backward()
        (y_bn * g).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.weight.grad, bn.weight.grad, rtol=0, atol=1e-12)
    for key, value in bn.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=1e-14)
    ours.eval()
    bn.eval()
    x = _rand(2, c, 4, 4, seed=99, offset=3.0)
    torch.testing.assert_close(ours(x), bn(x), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- plain accumulation (CmBN-like)


def test_plain_accumulation_matches_reference_and_running_stats_follow_bn() -> None:
    c, k = 3, 3
    stats = CrossIterBatchStats(c, window=k).double()
    bn = nn.BatchNorm2d(c, affine=False).double()
    batches = [_rand(2 + s % 2, c, 3, 4, seed=30 + s, offset=0.5 * s) for s in range(6)]
    for t, x in enumerate(batches):
        # alternate per-channel and per-sample affines to cover both folding paths
        if t % 2:
            scale, shift = _rand(x.shape[0], c, seed=40 + t), _rand(x.shape[0], c, seed=50 + t)
        else:
            scale, shift = _rand(c, seed=40 + t), _rand(c, seed=50 + t)
        y = stats(x, scale, shift)
        past = batches[max(0, t - (k - 1)):t]
        assert len(past) == min(t, k - 1)  # the first steps use the history that exists
        torch.testing.assert_close(y, _ref_plain(past, x, scale, shift), rtol=0, atol=1e-10)
        bn(x)
        # running stats come from the current iteration only, exactly as BatchNorm2d's
        torch.testing.assert_close(stats.running_mean, bn.running_mean, rtol=0, atol=1e-13)
        torch.testing.assert_close(stats.running_var, bn.running_var, rtol=0, atol=1e-13)
    assert int(stats.num_batches_tracked) == int(bn.num_batches_tracked) == 6
    assert stats.history_moments()[0].shape == (k - 1, c)
    # eval uses the running buffers exactly like BatchNorm2d eval; history is untouched
    stats.eval()
    bn.eval()
    x = _rand(2, c, 4, 4, seed=77, offset=1.0)
    torch.testing.assert_close(stats(x), bn(x), rtol=0, atol=1e-12)
    assert stats.history_moments()[0].shape == (k - 1, c)


def test_compensate_false_or_no_weight_is_plain_accumulation() -> None:
    c = 2
    w0 = _rand(c, 2, 3, 3, seed=1).requires_grad_()
    w1 = (w0.detach() + 0.3 * _rand(c, 2, 3, 3, seed=2)).requires_grad_()
    z0, z1 = _rand(2, 2, 4, 4, seed=3), _rand(2, 2, 4, 4, seed=4)
    outs = []
    for compensate, pass_weight in [(False, True), (True, False)]:
        layer = CrossIterBatchNorm2d(c, 2, compensate=compensate).double()
        layer(F.conv2d(z0, w0, padding=1), w0 if pass_weight else None)
        outs.append(layer(F.conv2d(z1, w1, padding=1), w1 if pass_weight else None))
    y0, y1 = F.conv2d(z0, w0, padding=1), F.conv2d(z1, w1, padding=1)
    expected = _ref_plain([y0], y1, None, None)
    for out in outs:
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


# ---------------------------------------------------------------- Taylor compensation


def test_compensation_is_exact_for_mean_when_only_the_weight_changes() -> None:
    c = 3
    z = _rand(2, 2, 5, 5, seed=5, offset=1.0)
    conv = nn.Conv2d(2, c, 3, padding=1, bias=False).double()
    norm = CrossIterBatchNorm2d(c, window=2).double()
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    loss = (norm(conv(z), conv.weight) * _rand(2, c, 5, 5, seed=6)).sum()
    loss.backward()
    opt.step()  # updates conv.weight in place: the stored weight must be a copy
    with torch.no_grad():
        true_mean = conv(z).mean((0, 2, 3))
    comp_mean, _ = norm.stats.history_moments(conv.weight)
    raw_mean, _ = norm.stats.history_moments()
    torch.testing.assert_close(comp_mean[0], true_mean, rtol=0, atol=1e-10)
    assert (raw_mean[0] - true_mean).abs().max() > 1e-3  # the change is visible without compensation


def test_compensation_is_first_order_for_second_moment() -> None:
    c = 3
    z = _rand(2, 2, 5, 5, seed=8, offset=1.0)
    w0 = _rand(c, 2, 3, 3, seed=9).requires_grad_()
    direction = _rand(c, 2, 3, 3, seed=10)
    stats = CrossIterBatchStats(c, window=2).double()
    stats(F.conv2d(z, w0, padding=1), weight=w0)
    errors = []
    for delta in (1e-3, 1e-4):
        w1 = w0.detach() + delta * direction
        true_nu = F.conv2d(z, w1, padding=1).square().mean((0, 2, 3))
        comp_err = (stats.history_moments(w1)[1][0] - true_nu).abs().max()
        raw_err = (stats.history_moments()[1][0] - true_nu).abs().max()
        assert comp_err < 1e-2 * raw_err
        errors.append(comp_err)
    # ν is quadratic in W: the first-order remainder shrinks exactly with δ²
    assert errors[0] / errors[1] == pytest.approx(100.0, rel=1e-3)


def test_compensated_output_and_gradients_match_analytic_reference() -> None:
    c, k = 3, 3
    layer = CrossIterBatchNorm2d(c, window=k).double()
    _randomize_affine(layer, seed=11)
    ref_gamma = layer.weight.detach().clone().requires_grad_()
    ref_beta = layer.bias.detach().clone().requires_grad_()
    past: list[tuple[Tensor, Tensor]] = []
    w = _rand(c, 2, 3, 3, seed=12)
    for t in range(5):
        z = _rand(2, 2, 4, 4, seed=100 + t, offset=0.3 * t).requires_grad_()
        w_t = w.clone().requires_grad_()
        y = layer(F.conv2d(z, w_t, padding=1), w_t)
        z_ref = z.detach().clone().requires_grad_()
        w_ref = w.clone().requires_grad_()
        y_ref = _ref_cbn(past, z_ref, w_ref, ref_gamma, ref_beta)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
        g = _rand(*y.shape, seed=200 + t)
        (y * g).sum().backward()
        (y_ref * g).sum().backward()
        torch.testing.assert_close(z.grad, z_ref.grad, rtol=0, atol=1e-10)
        torch.testing.assert_close(w_t.grad, w_ref.grad, rtol=0, atol=1e-10)
        past = [(z.detach(), w.clone()), *past][: k - 1]
        w = w + 0.2 * _rand(c, 2, 3, 3, seed=300 + t)  # an "optimizer step"
    torch.testing.assert_close(layer.weight.grad, ref_gamma.grad, rtol=0, atol=1e-10)
    torch.testing.assert_close(layer.bias.grad, ref_beta.grad, rtol=0, atol=1e-10)


def test_past_iteration_with_negative_compensated_variance_is_dropped_per_channel() -> None:
    c = 2
    z = _rand(3, 2, 4, 4, seed=13, offset=2.0)
    w0 = _rand(c, 2, 3, 3, seed=14).requires_grad_()
    stats = CrossIterBatchStats(c, window=2).double()
    stats(F.conv2d(z, w0, padding=1), weight=w0)
    w1 = w0.detach().clone()
    w1[0] *= 0.2  # channel 0: ν' = ν − 1.6ν < 0 to first order; channel 1 unchanged
    w1.requires_grad_()
    mean, second = stats.history_moments(w1)
    assert second[0, 0] - mean[0, 0] ** 2 < 0 <= second[0, 1] - mean[0, 1] ** 2
    y1 = F.conv2d(z, w1, padding=1)
    out = stats(y1, weight=w1)
    # channel 0 uses the current batch only; channel 1's past equals the current batch
    expected = F.batch_norm(y1.detach(), None, None, training=True, eps=EPS)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    assert torch.isfinite(out).all()


def test_weight_that_input_does_not_depend_on_raises() -> None:
    stats = CrossIterBatchStats(2, window=2).double()
    w = _rand(2, 2, 3, 3, seed=15).requires_grad_()
    x = _rand(2, 2, 3, 3, seed=16).requires_grad_()
    with pytest.raises(ShapeError, match="does not depend"):
        stats(x, weight=w)
    with pytest.raises(ShapeError, match="output channels"):
        stats(x, weight=_rand(3, 2, 3, 3, seed=17))


# ---------------------------------------------------------------- backward


def test_backward_goes_through_current_iteration_only() -> None:
    c = 3
    stats = CrossIterBatchStats(c, window=3).double()
    p1 = _rand(2, c, 3, 3, seed=18).requires_grad_()
    p2 = _rand(3, c, 3, 3, seed=19, offset=1.0).requires_grad_()
    stats(p1)
    stats(p2)
    x = _rand(2, c, 3, 3, seed=20, offset=-1.0).requires_grad_()
    scale = _rand(c, seed=21).requires_grad_()
    shift = _rand(c, seed=22).requires_grad_()
    g = _rand(2, c, 3, 3, seed=23)
    (stats(x, scale, shift) * g).sum().backward()
    assert p1.grad is None and p2.grad is None  # the history is detached
    grads = [t.grad.clone() for t in (x, scale, shift)]
    for t in (x, scale, shift):
        t.grad = None
    (_ref_plain([p1, p2], x, scale, shift) * g).sum().backward()
    for ours, ref in zip(grads, (x.grad, scale.grad, shift.grad), strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_gradcheck_with_history() -> None:
    c = 2
    stats = CrossIterBatchStats(c, window=3).double()
    p1, p2 = _rand(2, c, 2, 2, seed=24), _rand(2, c, 2, 2, seed=25, offset=0.5)

    def plain(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        stats.reset_history()
        stats(p1)
        stats(p2)
        return stats(x, scale, shift)

    inputs = (
        _rand(2, c, 2, 2, seed=26).requires_grad_(),
        _rand(2, c, seed=27).requires_grad_(),
        _rand(c, seed=28).requires_grad_(),
    )
    assert torch.autograd.gradcheck(plain, inputs)

    w_past = _rand(c, 1, 3, 3, seed=29).requires_grad_()
    w_now = w_past.detach() + 0.1 * _rand(c, 1, 3, 3, seed=30)
    z_past = _rand(2, 1, 2, 2, seed=31)

    def compensated(z: Tensor) -> Tensor:
        stats.reset_history()
        stats(F.conv2d(z_past, w_past, padding=1), weight=w_past)
        w = w_now.clone().requires_grad_()
        return stats(F.conv2d(z, w, padding=1), weight=w)

    assert torch.autograd.gradcheck(compensated, (_rand(2, 1, 2, 2, seed=32).requires_grad_(),))


# ---------------------------------------------------------------- edge cases


def test_no_nan_for_constant_or_offset_inputs() -> None:
    stats = CrossIterBatchStats(2, window=3)
    for _ in range(4):  # constant per channel: σ̄² = 0 after averaging equal batches
        out = stats(torch.full((2, 2, 3, 3), 5.0))
        assert torch.isfinite(out).all() and out.abs().max() < 1e-3  # step 1 is torch's BN rounding
    stats.reset_history()
    for s in range(4):  # float32 with a huge offset: ν − μ² would cancel to < 0
        x = 1e4 + 1e-3 * torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(s))
        assert torch.isfinite(stats(x)).all()


@pytest.mark.parametrize("window", [0, -1])
def test_window_below_one_raises(window: int) -> None:
    with pytest.raises(ShapeError, match="window"):
        CrossIterBatchStats(4, window=window)
    with pytest.raises(ShapeError, match="window"):
        CrossIterBatchNorm2d(4, window=window)


def test_single_value_per_channel_raises_in_training() -> None:
    with pytest.raises(ShapeError, match="more than one value"):
        CrossIterBatchStats(2, window=2)(torch.randn(1, 2, 1, 1))


def test_history_follows_input_dtype() -> None:
    c = 2
    layer = CrossIterBatchNorm2d(c, window=3).double()
    z = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=D64)
    w = torch.randn(c, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=D64, requires_grad=True)
    layer(F.conv2d(z, w, padding=1), w)
    mean, second = layer.stats.history_moments()
    assert mean.dtype == second.dtype == D64
    # .float() does not see the history; the next float32 forward moves it along
    layer.float()
    out = layer(F.conv2d(z.float(), w.detach().float().requires_grad_(), padding=1))
    assert out.dtype == torch.float32
    mean, second = layer.stats.history_moments()
    assert mean.dtype == second.dtype == torch.float32 and mean.shape == (2, c)


def test_reset_history_and_load_state_dict_clear_the_window() -> None:
    c = 2
    layer = CrossIterBatchNorm2d(c, window=3).double()
    batches = [_rand(2, c, 3, 3, seed=40 + s, offset=s) for s in range(3)]
    layer(batches[0])
    layer(batches[1])
    layer.reset_history()
    assert layer.stats.history_moments()[0].shape == (0, c)
    torch.testing.assert_close(layer(batches[2]), _ref_plain([], batches[2], None, None), rtol=0, atol=1e-10)
    layer(batches[0])
    layer.load_state_dict(nn.BatchNorm2d(c).double().state_dict())
    assert layer.stats.history_moments()[0].shape == (0, c)


def test_spec_builds_plain_accumulation_layer() -> None:
    from stylenorm.norm.registry import make_norm

    c = 3
    from_spec = make_norm("cross_iter_batch:3", c).double()
    direct = CrossIterBatchNorm2d(c, window=3).double()
    assert list(from_spec.state_dict()) == list(direct.state_dict())
    for s in range(4):
        x = _rand(2, c, 3, 3, seed=60 + s, offset=s)
        torch.testing.assert_close(from_spec(x), direct(x), rtol=0, atol=1e-12)
