"""The style-transfer losses against their formulas, written out in float64."""

from __future__ import annotations

import pytest
import torch

from stylenorm.errors import ShapeError
from stylenorm.losses.style import (
    content_loss,
    gram_matrix,
    gram_style_loss,
    mean_std,
    mean_std_loss,
    total_variation,
)

D = torch.float64


def _gram_ref(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    out = torch.zeros(n, c, c, dtype=D)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                out[b, i, j] = (f[b, i] * f[b, j]).sum() / (c * h * w)
    return out


def _moments_ref(f: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    m = f.shape[2] * f.shape[3]
    mean = f.sum((2, 3)) / m
    var = ((f - mean[:, :, None, None]) ** 2).sum((2, 3)) / m
    return mean, torch.sqrt(var + eps)


def test_content_loss_is_feature_mse() -> None:
    a, b = torch.randn(2, 3, 4, 5, dtype=D), torch.randn(2, 3, 4, 5, dtype=D)
    want = ((a - b) ** 2).sum() / a.numel()
    torch.testing.assert_close(content_loss(a, b), want, rtol=1e-12, atol=0)
    with pytest.raises(ShapeError):
        content_loss(a, b[:, :2])


def test_gram_matrix_is_f_ft_over_chw() -> None:
    f = torch.randn(2, 3, 4, 5, dtype=D)
    torch.testing.assert_close(gram_matrix(f), _gram_ref(f), rtol=1e-12, atol=1e-14)


def test_gram_style_loss_broadcasts_one_style_over_the_batch() -> None:
    f, s = torch.randn(3, 4, 5, 6, dtype=D), torch.randn(1, 4, 7, 3, dtype=D)
    target = _gram_ref(s)
    want = ((_gram_ref(f) - target) ** 2).sum() / (3 * 4 * 4)
    torch.testing.assert_close(gram_style_loss(f, target), want, rtol=1e-12, atol=0)
    per_sample = _gram_ref(torch.randn(3, 4, 2, 2, dtype=D))
    want = ((_gram_ref(f) - per_sample) ** 2).mean()
    torch.testing.assert_close(gram_style_loss(f, per_sample), want, rtol=1e-12, atol=0)
    with pytest.raises(ShapeError):
        gram_style_loss(f, target[:, :3, :3])
    with pytest.raises(ShapeError):
        gram_style_loss(f, per_sample[:2])


def test_gram_style_loss_gradient() -> None:
    f = torch.randn(2, 3, 3, 4, dtype=D, requires_grad=True)
    target = _gram_ref(torch.randn(1, 3, 5, 5, dtype=D))
    assert torch.autograd.gradcheck(lambda x: gram_style_loss(x, target), (f,))


@pytest.mark.parametrize("eps", [1e-5, 0.0])
def test_mean_std_loss_is_mse_of_means_plus_mse_of_stds(eps: float) -> None:
    f, s = torch.randn(2, 4, 5, 6, dtype=D) * 2 + 1, torch.randn(2, 4, 3, 9, dtype=D)
    fm, fs = _moments_ref(f, eps)
    sm, ss = _moments_ref(s, eps)
    want = ((fm - sm) ** 2).sum() / fm.numel() + ((fs - ss) ** 2).sum() / fs.numel()
    torch.testing.assert_close(mean_std_loss(f, s, eps), want, rtol=1e-12, atol=0)
    torch.testing.assert_close(mean_std_loss(f, (sm, ss), eps), want, rtol=1e-12, atol=0)
    got_m, got_s = mean_std(f, eps)
    torch.testing.assert_close(got_m, fm, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got_s, fs, rtol=1e-12, atol=1e-14)
    with pytest.raises(ShapeError):
        mean_std_loss(f, s[:, :3])


def test_total_variation_is_mean_absolute_neighbour_difference() -> None:
    x = torch.randn(2, 3, 5, 7, dtype=D)
    dh = sum(abs(x[n, c, i + 1, j] - x[n, c, i, j]) for n in range(2) for c in range(3)
             for i in range(4) for j in range(7)) / (2 * 3 * 4 * 7)
    dw = sum(abs(x[n, c, i, j + 1] - x[n, c, i, j]) for n in range(2) for c in range(3)
             for i in range(5) for j in range(6)) / (2 * 3 * 5 * 6)
    torch.testing.assert_close(total_variation(x), dh + dw, rtol=1e-12, atol=0)
    assert float(total_variation(torch.ones(1, 3, 4, 4))) == 0.0
    assert float(total_variation(torch.rand(1, 3, 1, 1))) == 0.0


def test_low_precision_features_give_float32_losses() -> None:
    f = torch.randn(2, 8, 6, 6).bfloat16()
    t = torch.randn(1, 8, 5, 5).bfloat16()
    for value in (
        content_loss(f, f.flip(0)),
        gram_style_loss(f, gram_matrix(t)),
        mean_std_loss(f, t),
        total_variation(f),
    ):
        assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value)
    want = gram_style_loss(f.float(), gram_matrix(t.float()))
    torch.testing.assert_close(gram_style_loss(f, gram_matrix(t)), want)
