"""Whitening statistics and colouring against their formulas (float64), their gradients, running
statistics, half precision and their errors.

Tolerances, stated per method (float64, condition number ≈ 170 on these data):
* eigh (ZCA, DBN): the whitened covariance is I to 1e-9;
* Newton–Schulz: 5 iterations (IterNorm's default) leave up to 0.8, 10 about 0.3, 20 and 30 reach
  1e-9 (the error falls until float64's floor: tested). On VGG-16 features (conditions up to 3e6)
  30 iterations in float32 leave ≤ 3e-4 (measured; see stylenorm.norm.whitening).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm import make_norm, make_stats
from stylenorm.norm.whitening import (
    BatchWhitening,
    InstanceWhitening,
    StyleCovariance,
    covariance,
    inverse_sqrt,
    sqrt_and_inverse_sqrt,
    style_covariance,
    whitening_error,
)


def correlated(n: int = 2, c: int = 8, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    """Features with correlated channels and non-zero means (float64)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(c, dtype=torch.float64) + 0.6 * torch.randn(c, c, generator=g, dtype=torch.float64)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    return torch.einsum("cd,ndhw->nchw", mix, x) + torch.randn(1, c, 1, 1, generator=g, dtype=torch.float64)


def numpy_zca(x: np.ndarray, eps: float) -> np.ndarray:
    """An independent reference: ZCA of x (d, m) with numpy, Σ = XXᵀ/m + εI, W = D Λ^{-1/2} Dᵀ."""
    xc = x - x.mean(1, keepdims=True)
    sigma = xc @ xc.T / x.shape[1] + eps * np.eye(x.shape[0])
    lam, d = np.linalg.eigh(sigma)
    return d @ np.diag(lam**-0.5) @ d.T @ xc


def per_sample_groups(y: torch.Tensor, group: int) -> torch.Tensor:
    n, c = y.shape[:2]
    return y.reshape(n, c // group, group, -1)


def test_instance_whitening_with_eigh_is_the_zca_formula() -> None:
    x = correlated()
    layer = InstanceWhitening(8, group_size=4, eps=1e-3, method="eigh")
    y = layer(x)
    for i in range(2):
        for g in range(2):
            ref = numpy_zca(x[i, 4 * g : 4 * g + 4].reshape(4, -1).numpy(), 1e-3)
            np.testing.assert_allclose(y[i, 4 * g : 4 * g + 4].reshape(4, -1).numpy(), ref, atol=1e-10)
    exact = InstanceWhitening(8, group_size=4, eps=0.0, method="eigh")(x)
    assert whitening_error(per_sample_groups(exact, 4)) < 1e-9


def test_newton_schulz_converges_to_the_exact_whitening() -> None:
    x = correlated()
    exact = InstanceWhitening(8, eps=0.0, method="eigh")(x)
    errors = []
    for iterations in (5, 10, 20, 30):
        y = InstanceWhitening(8, eps=0.0, method="newton", iterations=iterations)(x)
        errors.append(whitening_error(per_sample_groups(y, 8)))
    assert errors[:3] == sorted(errors[:3], reverse=True), errors  # falls until float64's floor
    assert errors[0] < 0.8 and errors[1] < 0.3 and max(errors[2:]) < 1e-9, errors
    y = InstanceWhitening(8, eps=0.0, method="newton", iterations=30)(x)
    torch.testing.assert_close(y, exact, atol=1e-8, rtol=0)


def test_the_inverse_and_the_square_root_agree_with_eigh() -> None:
    x = correlated(n=3)
    _, sigma = covariance(x.reshape(3, 8, -1), 1e-4)
    root, inv = sqrt_and_inverse_sqrt(sigma, "newton", 30)
    root_e, inv_e = sqrt_and_inverse_sqrt(sigma, "eigh")
    torch.testing.assert_close(root @ root, sigma, atol=1e-9, rtol=0)
    torch.testing.assert_close(root, root_e, atol=1e-9, rtol=0)
    torch.testing.assert_close(inv, inv_e, atol=1e-9, rtol=0)
    torch.testing.assert_close(inverse_sqrt(sigma, "eigh"), inv_e)
    assert torch.allclose(inv_e, inv_e.transpose(-1, -2))  # ZCA: symmetric, unlike PCA's Λ^{-1/2}Dᵀ


def test_batch_whitening_whitens_the_batch_and_keeps_running_statistics() -> None:
    x = correlated(n=4)
    for method, iterations in (("eigh", 1), ("newton", 30)):
        layer = BatchWhitening(8, group_size=4, eps=0.0, momentum=0.25, method=method, iterations=iterations)
        layer = layer.double().train()
        y = layer(x)
        groups = y.transpose(0, 1).reshape(2, 4, -1)
        assert whitening_error(groups) < 1e-8, method
        xg = x.transpose(0, 1).reshape(2, 4, -1)
        mean, sigma = covariance(xg, 0.0)
        torch.testing.assert_close(layer.running_mean, 0.25 * mean)
        expected = 0.75 * torch.eye(4, dtype=torch.float64) + 0.25 * inverse_sqrt(sigma, "eigh")
        torch.testing.assert_close(layer.running_whitening, expected, atol=1e-8, rtol=0)
        layer.eval()
        out = layer(x)
        ref = (expected @ (xg - 0.25 * mean)).reshape(8, 4, 12, 10).transpose(0, 1)
        torch.testing.assert_close(out, ref)


def test_wct_colours_whitened_content_with_the_style_mean_and_covariance() -> None:
    content, style = correlated(n=1, seed=1), correlated(n=1, h=9, w=7, seed=2)
    layer = make_norm("wct", 8, eps=0.0, method="eigh").double()
    y = layer(content, style)
    mean_y, cov_y = style_covariance(y, 0.0)
    mean_s, cov_s = style_covariance(style, 0.0)
    torch.testing.assert_close(mean_y, mean_s, atol=1e-9, rtol=0)
    torch.testing.assert_close(cov_y, cov_s, atol=1e-9, rtol=0)
    # cached statistics give the same, and the SVD-free default agrees with eigh
    torch.testing.assert_close(layer(content, (mean_s, cov_s + 0.0)), y)
    newton = make_norm("wct", 8, eps=0.0).double()
    torch.testing.assert_close(newton(content, style), y, atol=1e-7, rtol=0)


def test_gradients_match_finite_differences() -> None:
    x = correlated(n=2, c=4, h=5, w=4).requires_grad_()
    style = correlated(n=1, c=4, h=4, w=4, seed=3)
    layers = [
        InstanceWhitening(4, eps=1e-2, method="newton", iterations=8).double(),
        InstanceWhitening(4, group_size=2, eps=1e-2, method="eigh").double(),
        BatchWhitening(4, group_size=2, eps=1e-2, method="newton", iterations=6).double(),
    ]
    for layer in layers:
        assert torch.autograd.gradcheck(lambda t, m=layer: m(t), (x,)), layer
    wct = make_norm("wct", 4, eps=1e-2, iterations=12).double()
    assert torch.autograd.gradcheck(lambda t, s: wct(t, s), (x, style.requires_grad_()))


def test_half_precision_runs_the_covariance_in_float32() -> None:
    x = correlated(n=2, c=16, h=16, w=16).bfloat16()
    layer = InstanceWhitening(16, eps=1e-5)
    ref = layer(x.float())  # the same (rounded) input, all in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.02  # bf16 rounding of the output only (|y| < 4)


def test_groups_the_data_cannot_support_and_bad_options_are_clear_errors() -> None:
    with pytest.raises(ShapeError, match="at least that many elements"):
        InstanceWhitening(16)(torch.randn(1, 16, 3, 3))
    with pytest.raises(ShapeError, match="N·H·W = 4"):
        BatchWhitening(8, group_size=8)(torch.randn(1, 8, 2, 2))
    with pytest.raises(SpecError, match="do not split into groups of 3"):
        make_norm("zca:3", 8)
    with pytest.raises(SpecError, match="method must be one of"):
        make_stats("instance_whiten", 8, method="svd")
    with pytest.raises(ShapeError, match="colouring statistics"):
        StyleCovariance(8)(torch.randn(1, 8, 4, 4), (torch.zeros(1, 8), torch.eye(4)[None]))


def test_whitening_exports_to_onnx_without_an_eigendecomposition(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    layer = make_norm("wct", 8).eval()
    content, style = torch.randn(1, 8, 12, 12), torch.randn(1, 8, 10, 10)
    path = tmp_path / "wct.onnx"
    torch.onnx.export(layer, (content, style), str(path), input_names=["content", "style"], dynamo=True)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"Eig", "Eigh", "SVD", "Svd"}, ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"content": content.numpy(), "style": style.numpy()})
    np.testing.assert_allclose(out, layer(content, style).detach().numpy(), atol=1e-4)
