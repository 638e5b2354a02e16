"""Class-conditional generator (CBN) and SNGAN projection discriminator."""

from __future__ import annotations

import itertools

import pytest
import torch

from stylenorm.errors import ShapeError, SpecError
from stylenorm.losses.gan import hinge_d_loss, hinge_g_loss
from stylenorm.nets.cgan import ClassConditionalGenerator
from stylenorm.nets.discriminators import ProjectionDiscriminator
from stylenorm.norm import EmbeddingAffine, Normalization

K = 3


@pytest.mark.parametrize(("size", "ngf"), [(32, 4), (64, 2), (128, 1)])
def test_generator_and_discriminator_shapes_at_every_size(size: int, ngf: int) -> None:
    g = ClassConditionalGenerator(K, z_dim=16, ngf=ngf, image_size=size)
    d = ProjectionDiscriminator(K, ndf=ngf * 2, image_size=size)
    y = torch.tensor([0, 2])
    x = g(torch.randn(2, 16), y)
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)


def test_blocks_use_class_conditional_batch_norm_tables() -> None:
    g = ClassConditionalGenerator(K, z_dim=8, ngf=4)
    b1 = g.blocks[0].b1
    assert isinstance(b1, Normalization) and isinstance(b1.modulation, EmbeddingAffine)
    assert g.state_dict()["blocks.0.b1.weight"].shape == (K, 16)  # a (γ, β) row per class
    assert "blocks.0.b1.running_mean" in g.state_dict()  # batch statistics
    torch.testing.assert_close(g.blocks[0].b1.weight, torch.ones(K, 16))  # γ = 1 at the start
    with torch.no_grad():
        for block in g.blocks:
            for norm in (block.b1, block.b2):
                norm.weight.add_(torch.randn_like(norm.weight) * 0.5)
                norm.bias.add_(torch.randn_like(norm.bias) * 0.5)
    g.eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        a, b = g(z, torch.tensor([0, 0])), g(z, torch.tensor([1, 1]))
        again = g(z, torch.tensor([0, 0]))
    torch.testing.assert_close(a, again)
    assert (a - b).abs().max() > 1e-3  # the class steers the image


@pytest.mark.parametrize("norm", ["cbn:group:2", "cbn:instance", "cin"])
def test_other_class_conditional_norms(norm: str) -> None:
    g = ClassConditionalGenerator(K, z_dim=8, ngf=4, norm=norm)
    out = g(torch.randn(2, 8), torch.tensor([1, 2]))
    out.mean().backward()
    assert out.shape == (2, 3, 32, 32)
    assert all(p.grad is not None for p in g.parameters())


def test_bad_generator_configuration_and_inputs_are_clear() -> None:
    with pytest.raises(SpecError, match="class-conditional norm"):
        ClassConditionalGenerator(K, norm="instance")
    with pytest.raises(SpecError, match="image_size"):
        ClassConditionalGenerator(K, image_size=48)
    g = ClassConditionalGenerator(K, z_dim=8, ngf=2)
    with pytest.raises(ShapeError, match=r"class id out of range: got values in \[0, 3\], valid are 0\.\.2"):
        g(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(ShapeError, match="class id out of range"):
        g(torch.randn(1, 8), torch.tensor([-1]))
    with pytest.raises(ShapeError, match="integer tensor"):
        g(torch.randn(2, 8), torch.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match="2 class ids for a batch of 1"):
        g(torch.randn(1, 8), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match=r"z must be \(N, 8\)"):
        g(torch.randn(2, 9), torch.tensor([0, 1]))
    d = ProjectionDiscriminator(K, ndf=4)
    with pytest.raises(ShapeError, match=r"valid are 0\.\.2"):
        d(torch.randn(1, 3, 32, 32), torch.tensor([5]))


def test_projection_discriminator_is_linear_output_plus_class_projection() -> None:
    d = ProjectionDiscriminator(K, ndf=8).eval()  # eval: spectral norm's u, v are frozen
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        phi = torch.relu(d.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        w, b = d.l_out.weight, d.l_out.bias
        expected = phi @ w[0] + b[0] + (d.embed.weight[y] * phi).sum(1)
        torch.testing.assert_close(d(x, y), expected)
        # changing only the class changes the output by exactly <embed(y') − embed(y), φ>
        y2 = torch.tensor([2, 2, 0, 0])
        delta = ((d.embed.weight[y2] - d.embed.weight[y]) * phi).sum(1)
        torch.testing.assert_close(d(x, y2) - d(x, y), delta, rtol=1e-4, atol=1e-4)
    names = set(d.state_dict())
    assert "embed.parametrizations.weight.original" in names  # spectral norm on the embedding too
    assert "l_out.parametrizations.weight.original" in names


def test_cgan_step_is_finite_and_projection_d_learns_a_fixed_batch() -> None:
    g = ClassConditionalGenerator(K, z_dim=16, ngf=4)
    d = ProjectionDiscriminator(K, ndf=8)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
    y = torch.tensor([0, 1, 2, 0])
    z = torch.randn(4, 16)
    real = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1

    g_loss = hinge_g_loss(d(g(z, y), y))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    assert torch.isfinite(g_loss) and all(torch.isfinite(p).all() for p in g.parameters())

    with torch.no_grad():
        fake = g(z, y)
    losses = []
    for _ in range(6):
        d_loss = hinge_d_loss(d(real, y), d(fake, y))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        losses.append(float(d_loss.detach()))
    assert all(b < a for a, b in itertools.pairwise(losses)) and losses[-1] < 0.9 * losses[0], losses
