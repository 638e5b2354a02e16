"""Conditional layers (CIN, CBN, AdaIN, SPADE, CLADE, FiLM) and the equivalences that tie them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from stylenorm.errors import ShapeError, SpecError
from stylenorm.norm import (
    EmbeddingAffine,
    Normalization,
    make_norm,
    make_stats,
    style_moments,
)
from tests.conftest import per_channel, randomize_, reference_norm

D = torch.float64


def x64(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=D) * 2 + 0.5


def one_hot_map(labels: torch.Tensor, label_nc: int) -> torch.Tensor:
    return F.one_hot(labels, label_nc).permute(0, 3, 1, 2).to(D)


# ----------------------------------------------------------------------------- CIN


def test_cin_picks_a_row_per_style() -> None:
    cin = randomize_(make_norm("cin", 4, num_styles=3).double())
    x, styles = x64(3, 4, 5, 5), torch.tensor([2, 0, 1])
    gamma, beta = cin.weight[styles], cin.bias[styles]
    expected = reference_norm(x, (2, 3)) * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(cin(x, styles), expected, rtol=0, atol=1e-10)


def test_cin_mixing_weights_give_the_convex_combination_of_outputs() -> None:
    cin = randomize_(make_norm("cin", 4, num_styles=3).double())
    x = x64(2, 4, 5, 5)
    weights = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]], dtype=D)
    singles = [cin(x, torch.full((2,), s)) for s in range(3)]
    expected = sum(weights[:, s, None, None, None] * singles[s] for s in range(3))
    torch.testing.assert_close(cin(x, weights), expected, rtol=0, atol=1e-10)


def test_cin_tables_start_at_identity_and_learn_per_style() -> None:
    cin = make_norm("cin", 3, num_styles=2).double()
    x = x64(2, 3, 4, 4)
    torch.testing.assert_close(cin(x, torch.tensor([0, 1])), F.instance_norm(x), rtol=0, atol=1e-10)
    cin(x, torch.tensor([1, 1])).pow(2).sum().backward()
    assert cin.weight.grad[0].abs().sum() == 0 and cin.weight.grad[1].abs().sum() > 0


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        (torch.tensor([0, 5]), "out of range"),
        (torch.tensor([0, 1, 1]), "3 style indices for a batch of 2"),
        (torch.rand(2, 4, dtype=D), r"mixing weights must be \(N, 3\)"),
        (torch.rand(2, dtype=D), "integer indices"),
        ("starry", "must be a tensor"),
    ],
)
def test_cin_rejects_bad_conditions(cond: object, message: str) -> None:
    cin = make_norm("cin", 4, num_styles=3).double()
    with pytest.raises(ShapeError, match=message):
        cin(x64(2, 4, 3, 3), cond)


def test_cin_over_batch_statistics_is_one_spec_away() -> None:
    layer = randomize_(make_norm("cin:batch", 3, num_styles=2).double())
    x, styles = x64(4, 3, 3, 3), torch.tensor([0, 1, 1, 0])
    expected = reference_norm(x, (0, 2, 3)) * layer.weight[styles][:, :, None, None]
    expected = expected + layer.bias[styles][:, :, None, None]
    torch.testing.assert_close(layer(x, styles), expected, rtol=0, atol=1e-10)
    assert "running_mean" in layer.state_dict()


def test_any_statistic_pairs_with_any_modulation_without_a_new_class() -> None:
    layer = Normalization(make_stats("group:2", 4), EmbeddingAffine(3, 4), num_features=4).double()
    randomize_(layer)
    x, styles = x64(2, 4, 3, 3), torch.tensor([1, 2])
    grouped = reference_norm(x.view(2, 2, 2, 3, 3), (2, 3, 4)).view(2, 4, 3, 3)
    expected = grouped * layer.weight[styles][:, :, None, None] + layer.bias[styles][:, :, None, None]
    torch.testing.assert_close(layer(x, styles), expected, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- CBN and FiLM


def test_class_cbn_starts_as_batch_norm_and_is_the_table_formula() -> None:
    cbn = make_norm("cbn", 3, num_classes=5).double()
    x, classes = x64(4, 3, 3, 3), torch.tensor([4, 0, 2, 2])
    torch.testing.assert_close(cbn(x, classes), reference_norm(x, (0, 2, 3)), rtol=0, atol=1e-10)
    randomize_(cbn)
    expected = reference_norm(x, (0, 2, 3)) * cbn.weight[classes][:, :, None, None]
    expected = expected + cbn.bias[classes][:, :, None, None]
    torch.testing.assert_close(cbn(x, classes), expected, rtol=0, atol=1e-10)


def test_vector_cbn_and_film_are_affines_from_an_mlp() -> None:
    x, e = x64(3, 4, 3, 3), torch.randn(3, 6, dtype=D)
    cbn = make_norm("cbn:instance", 4, cond_dim=6, hidden=8).double()
    torch.testing.assert_close(cbn(x, e), reference_norm(x, (2, 3)), rtol=0, atol=1e-10)  # zero init
    randomize_(cbn)
    delta = cbn.modulation.delta(e)
    gamma, beta = cbn.weight + delta[:, :4], cbn.bias + delta[:, 4:]
    expected = reference_norm(x, (2, 3)) * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(cbn(x, e), expected, rtol=0, atol=1e-10)
    film = randomize_(make_norm("film", 4, cond_dim=6).double())
    delta = film.modulation.delta(e)
    gamma, beta = film.weight + delta[:, :4], film.bias + delta[:, 4:]
    expected = x * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(film(x, e), expected, rtol=0, atol=1e-10)
    with pytest.raises(ShapeError, match=r"\(N, cond_dim\) = \(3, 6\)"):
        film(x, torch.randn(3, 5, dtype=D))


def test_cbn_needs_exactly_one_kind_of_condition() -> None:
    with pytest.raises(SpecError, match="exactly one of num_classes"):
        make_norm("cbn", 4)
    with pytest.raises(SpecError, match="exactly one of num_classes"):
        make_norm("cbn", 4, num_classes=3, cond_dim=5)


# ----------------------------------------------------------------------------- AdaIN


def official_adain(x: torch.Tensor, s: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Huang & Belongie's Lua code: content biased var + ε inside; style biased std, no ε."""
    s_mean = s.mean(dim=(2, 3), keepdim=True)
    s_std = s.var(dim=(2, 3), correction=0, keepdim=True).sqrt()
    return reference_norm(x, (2, 3), eps) * s_std + s_mean


def port_adain(x: torch.Tensor, s: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The PyTorch port's convention: unbiased variance + ε for content and style."""
    s_mean = s.mean(dim=(2, 3), keepdim=True)
    s_std = (s.var(dim=(2, 3), correction=1, keepdim=True) + eps).sqrt()
    return reference_norm(x, (2, 3), eps, correction=1) * s_std + s_mean


def test_adain_is_the_official_formula_and_transfers_the_style_moments() -> None:
    x, s = x64(2, 4, 6, 5), x64(2, 4, 3, 7) * 3
    y = make_norm("adain", 4).double()(x, s)
    torch.testing.assert_close(y, official_adain(x, s), rtol=0, atol=1e-10)
    torch.testing.assert_close(y.mean(dim=(2, 3)), s.mean(dim=(2, 3)))
    biased_std = {"dim": (2, 3), "correction": 0}
    torch.testing.assert_close(y.std(**biased_std), s.std(**biased_std), rtol=1e-4, atol=1e-4)


def test_adain_port_convention_is_an_option_and_really_differs() -> None:
    x, s = x64(1, 3, 8, 8), x64(1, 3, 5, 5)
    port = make_norm("adain", 3, unbiased=True).double()(x, s)
    torch.testing.assert_close(port, port_adain(x, s), rtol=0, atol=1e-10)
    assert (port - official_adain(x, s)).abs().max() > 1e-3


def test_adain_accepts_cached_moments_and_broadcasts_one_style() -> None:
    layer = make_norm("adain", 4).double()
    x, s = x64(3, 4, 5, 5), x64(1, 4, 6, 6)
    from_features = layer(x, s)
    torch.testing.assert_close(from_features, official_adain(x, s.expand(3, -1, -1, -1)), rtol=0, atol=1e-10)
    torch.testing.assert_close(layer(x, style_moments(s)), from_features, rtol=0, atol=0)


def test_adain_on_single_pixels_gives_the_style_mean_not_nan() -> None:
    layer = make_norm("adain", 3).double()
    s = x64(2, 3, 1, 1)
    y = layer(x64(2, 3, 1, 1), s)
    torch.testing.assert_close(y, s)
    port = make_norm("adain", 3, unbiased=True).double()(x64(2, 3, 4, 4), s)
    assert torch.isfinite(port).all()


def test_adain_rejects_mismatched_style() -> None:
    layer = make_norm("adain", 4)
    with pytest.raises(ShapeError, match="AdaIN style features"):
        layer(torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3))
    with pytest.raises(ShapeError, match="AdaIN style mean"):
        layer(torch.randn(2, 4, 3, 3), (torch.randn(3, 4), torch.rand(3, 4)))


# ----------------------------------------------------------------------------- SPADE and CLADE


def test_spade_is_norm_times_one_plus_gamma_plus_beta_from_the_resized_map() -> None:
    layer = make_norm("spade:instance:3x3", 4, label_nc=3, hidden=5).double()
    x = x64(2, 4, 8, 8)
    segmap = one_hot_map(torch.randint(0, 3, (2, 4, 4)), 3)
    mod = layer.modulation
    resized = segmap.repeat_interleave(2, 2).repeat_interleave(2, 3)  # nearest ×2
    actv = F.relu(F.conv2d(resized, mod.mlp_shared[0].weight, mod.mlp_shared[0].bias, padding=1))
    gamma = F.conv2d(actv, mod.mlp_gamma.weight, mod.mlp_gamma.bias, padding=1)
    beta = F.conv2d(actv, mod.mlp_beta.weight, mod.mlp_beta.bias, padding=1)
    expected = reference_norm(x, (2, 3)) * (1 + gamma) + beta
    torch.testing.assert_close(layer(x, segmap), expected, rtol=0, atol=1e-10)
    assert {"mlp_shared.0.weight", "mlp_gamma.weight", "mlp_beta.bias"} == {
        k for k in layer.state_dict() if k.startswith("mlp_")
    } - {"mlp_shared.0.bias", "mlp_gamma.bias", "mlp_beta.weight"}


def test_spade_parses_multi_digit_kernels_and_inner_statistics() -> None:
    layer = make_norm("spade:group:2:11x11", 4, label_nc=2)
    assert layer.modulation.mlp_gamma.kernel_size == (11, 11)
    assert layer.stats.num_groups == 2
    assert make_norm("spade", 4, label_nc=2).modulation.mlp_gamma.kernel_size == (3, 3)
    with pytest.raises(SpecError, match="square and odd"):
        make_norm("spade:instance:3x5", 4, label_nc=2)


def test_spade_with_batch_stats_and_a_constant_map_is_class_cbn() -> None:
    label_nc, c = 3, 4
    spade = make_norm("spade:batch:1x1", c, label_nc=label_nc, hidden=6).double()
    classes = torch.tensor([2, 0, 1, 2])
    x = x64(4, c, 5, 5)
    segmap = one_hot_map(classes[:, None, None].expand(4, 5, 5), label_nc)
    cbn = make_norm("cbn", c, num_classes=label_nc).double()
    with torch.no_grad():
        eye = torch.eye(label_nc, dtype=D)[:, :, None, None]
        actv = spade.modulation.mlp_shared(eye)
        cbn.weight.copy_(1 + spade.modulation.mlp_gamma(actv)[:, :, 0, 0])
        cbn.bias.copy_(spade.modulation.mlp_beta(actv)[:, :, 0, 0])
    torch.testing.assert_close(spade(x, segmap), cbn(x, classes), rtol=0, atol=1e-10)


def test_spade_3x3_zero_padding_breaks_constancy_only_at_the_border() -> None:
    spade = make_norm("spade:instance:3x3", 2, label_nc=2, hidden=4).double()
    segmap = one_hot_map(torch.zeros(1, 9, 9, dtype=torch.long), 2)
    scale, _ = spade.modulation(x64(1, 2, 9, 9), segmap)
    interior = scale[:, :, 2:-2, 2:-2]
    assert (interior - interior[:, :, :1, :1]).abs().max() < 1e-12
    assert (scale[:, :, 0, 0] - scale[:, :, 4, 4]).abs().max() > 1e-6


def test_spade_instance_with_style_moment_modulation_is_adain() -> None:
    c, label_nc = 3, 2
    spade = make_norm("spade:instance:1x1", c, label_nc=label_nc, hidden=1).double()
    x, s = x64(1, c, 6, 6), x64(1, c, 4, 4)
    s_mean, s_std = style_moments(s)
    with torch.no_grad():  # a constant hidden unit of 1, γ = σ(s) − 1 and β = μ(s) from the biases
        spade.modulation.mlp_shared[0].weight.zero_()
        spade.modulation.mlp_shared[0].bias.fill_(1.0)
        spade.modulation.mlp_gamma.weight.zero_()
        spade.modulation.mlp_gamma.bias.copy_(s_std[0] - 1)
        spade.modulation.mlp_beta.weight.zero_()
        spade.modulation.mlp_beta.bias.copy_(s_mean[0])
    segmap = one_hot_map(torch.zeros(1, 6, 6, dtype=torch.long), label_nc)
    y = spade(x, segmap)
    torch.testing.assert_close(y, official_adain(x, s), rtol=0, atol=1e-10)
    assert (y - port_adain(x, s)).abs().max() > 1e-3


def test_clade_lookup_equals_einsum_and_a_bias_free_1x1_conv() -> None:
    layer = randomize_(make_norm("clade", 4, label_nc=5).double())
    x = x64(2, 4, 6, 6)
    labels = torch.randint(0, 5, (2, 3, 3))
    segmap = one_hot_map(labels, 5)
    resized = segmap.repeat_interleave(2, 2).repeat_interleave(2, 3)
    gamma = torch.einsum("nlhw,lc->nchw", resized, layer.weight)
    beta = F.conv2d(resized, layer.bias.t()[:, :, None, None])
    expected = reference_norm(x, (2, 3)) * gamma + beta
    torch.testing.assert_close(layer(x, segmap), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("spec", ["spade:instance:3x3", "clade"])
def test_label_maps_are_validated(spec: str) -> None:
    layer = make_norm(spec, 4, label_nc=3)
    x = torch.randn(2, 4, 6, 6)
    with pytest.raises(ShapeError, match=r"\(N, label_nc, h, w\) = \(2, 3"):
        layer(x, torch.rand(2, 4, 6, 6))
    with pytest.raises(ShapeError, match="float"):
        layer(x, torch.ones(2, 3, 6, 6, dtype=torch.long))
    with pytest.raises(ShapeError, match="label map"):
        layer(x, torch.rand(2, 6, 6))


# ----------------------------------------------------------------------------- the calling contract


def test_conditional_layers_need_a_condition_and_others_refuse_one() -> None:
    with pytest.raises(ShapeError, match="is conditional"):
        make_norm("adain", 3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ShapeError, match="takes no condition"):
        make_norm("batch", 3)(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]))


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 6), w=st.integers(1, 6),
    styles=st.integers(1, 4),
)
def test_cin_and_adain_are_finite_and_shape_preserving_for_any_shape(
    n: int, c: int, h: int, w: int, styles: int
) -> None:
    x = x64(n, c, h, w)
    cin = make_norm("cin", c, num_styles=styles).double()
    y = cin(x, torch.randint(0, styles, (n,)))
    assert y.shape == x.shape and torch.isfinite(y).all()
    z = make_norm("adain", c).double()(x, x64(1, c, w, h))
    assert z.shape == x.shape and torch.isfinite(z).all()


def test_per_sample_affine_path_has_the_reference_gradient() -> None:
    cin = randomize_(make_norm("cin", 3, num_styles=2).double())
    x = x64(2, 3, 4, 4).requires_grad_()
    styles = torch.tensor([1, 0])
    y = cin(x, styles)
    gamma, beta = cin.weight[styles][:, :, None, None], cin.bias[styles][:, :, None, None]
    ref = reference_norm(x, (2, 3)) * gamma + beta
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, cin.weight), g)
    ref_grads = torch.autograd.grad(ref, (x, cin.weight), g)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    assert per_channel(cin.weight[0]).shape == (1, 3, 1, 1)
