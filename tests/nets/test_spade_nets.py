"""SPADE generator, encoder, discriminators and GAN losses: official layout, shapes, training signal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.errors import ShapeError, SpecError
from stylenorm.losses.gan import (
    VGG_WEIGHTS,
    VGGLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    kl_divergence,
)
from stylenorm.nets.discriminators import MultiscaleDiscriminator, NLayerDiscriminator
from stylenorm.nets.spade import (
    SPECTRAL_KEYS,
    ConvEncoder,
    SPADEGenerator,
    SPADEResBlock,
    init_weights,
    latent_grid,
)
from stylenorm.nets.vgg import VGGEncoder

LABEL_NC = 6


def segmaps(n: int, size: int | tuple[int, int], label_nc: int = LABEL_NC, seed: int = 0) -> torch.Tensor:
    """Random blocky one-hot label maps (n, label_nc, H, W)."""
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(label_nc, (n, 1, 4, 4), generator=g).float()
    labels = F.interpolate(coarse, size=(h, w), mode="nearest").long()[:, 0]
    return F.one_hot(labels, label_nc).permute(0, 3, 1, 2).float()


def tiny_g(**kw) -> SPADEGenerator:
    args = {"label_nc": LABEL_NC, "ngf": 8, "crop_size": 32, "hidden": 16}
    args.update(kw)
    return SPADEGenerator(**args)


# ------------------------------------------------------------------------------------------ generator


@pytest.mark.parametrize(
    ("mode", "crop", "aspect", "out"),
    [
        ("normal", 32, 1.0, (32, 32)),
        ("more", 64, 1.0, (64, 64)),
        ("most", 128, 1.0, (128, 128)),
        ("more", 128, 2.0, (64, 128)),  # Cityscapes-like 2:1
    ],
)
def test_output_shape_and_range_for_every_upsampling_mode(
    mode: str, crop: int, aspect: float, out: tuple[int, int]
) -> None:
    g = tiny_g(num_upsampling_layers=mode, crop_size=crop, aspect_ratio=aspect)
    assert hasattr(g, "up_4") == (mode == "most")
    y = g(segmaps(2, out))
    assert y.shape == (2, 3, *out) and g.out_size == out
    assert y.abs().max() <= 1.0


def test_latent_grid_and_bad_configurations_are_explained() -> None:
    assert latent_grid(256, "normal") == (8, 8)
    assert latent_grid(512, "more", 2.0) == (4, 8)
    assert latent_grid(256, "most") == (2, 2)
    with pytest.raises(SpecError, match="multiple of 2\\^5 = 32"):
        latent_grid(48, "normal")
    with pytest.raises(SpecError, match="normal, more, most"):
        latent_grid(256, "many")
    with pytest.raises(SpecError, match="no rows"):
        latent_grid(32, "normal", aspect_ratio=4.0)


def _official_generator_keys(nf: int, snc: int, hidden: int = 128) -> dict[str, tuple[int, ...]]:
    """NVlabs/SPADE latest_net_G.pth keys and shapes (spectral, sync-batch SPADE, normal, no VAE)."""
    keys: dict[str, tuple[int, ...]] = {"fc.weight": (16 * nf, snc, 3, 3), "fc.bias": (16 * nf,)}

    def conv(prefix: str, cout: int, cin: int, k: int, bias: bool) -> None:
        if bias:
            keys[f"{prefix}.bias"] = (cout,)
        keys[f"{prefix}.weight_orig"] = (cout, cin, k, k)
        keys[f"{prefix}.weight_u"] = (cout,)
        keys[f"{prefix}.weight_v"] = (cin * k * k,)

    def spade(prefix: str, c: int) -> None:
        keys[f"{prefix}.param_free_norm.running_mean"] = (c,)
        keys[f"{prefix}.param_free_norm.running_var"] = (c,)
        keys[f"{prefix}.param_free_norm.num_batches_tracked"] = ()
        keys[f"{prefix}.mlp_shared.0.weight"] = (hidden, snc, 3, 3)
        keys[f"{prefix}.mlp_shared.0.bias"] = (hidden,)
        for part in ("mlp_gamma", "mlp_beta"):
            keys[f"{prefix}.{part}.weight"] = (c, hidden, 3, 3)
            keys[f"{prefix}.{part}.bias"] = (c,)

    widths = {
        "head_0": (16, 16),
        "G_middle_0": (16, 16),
        "G_middle_1": (16, 16),
        "up_0": (16, 8),
        "up_1": (8, 4),
        "up_2": (4, 2),
        "up_3": (2, 1),
    }
    for name, (i, o) in widths.items():
        fin, fout = i * nf, o * nf
        fm = min(fin, fout)
        conv(f"{name}.conv_0", fm, fin, 3, True)
        conv(f"{name}.conv_1", fout, fm, 3, True)
        spade(f"{name}.norm_0", fin)
        spade(f"{name}.norm_1", fm)
        if fin != fout:
            conv(f"{name}.conv_s", fout, fin, 1, False)
            spade(f"{name}.norm_s", fin)
    keys["conv_img.weight"] = (3, nf, 3, 3)
    keys["conv_img.bias"] = (3,)
    return keys


def _to_official(key: str) -> str:
    for ours, theirs in SPECTRAL_KEYS:
        if key.endswith(ours):
            return key[: -len(ours)] + theirs
    for buf in ("running_mean", "running_var", "num_batches_tracked"):
        if key.endswith(f".{buf}"):
            return key[: -len(buf)] + "param_free_norm." + buf
    return key


def test_state_dict_matches_the_official_generator_key_for_key() -> None:
    # ADE20K's config at ngf 8: 151 label channels (150 + don't-care), sync-batch SPADE, hidden 128
    g = SPADEGenerator(150, ngf=8, crop_size=32, norm="spade:sync_batch:3x3", contain_dontcare=True)
    ours = {_to_official(k): tuple(v.shape) for k, v in g.state_dict().items()}
    expected = _official_generator_keys(8, 151)
    assert len(ours) == len(expected) == 234
    assert ours == expected
    top = list(dict.fromkeys(k.split(".")[0] for k in g.state_dict()))
    assert top == ["fc", "head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "conv_img"]
    # spectral norm is on the block convs only, never inside the SPADE norms
    assert "head_0.conv_0.parametrizations.weight.original" in g.state_dict()
    assert not any("norm" in k and "parametrizations" in k for k in g.state_dict())


def test_vae_generator_has_a_linear_fc_and_the_encoder_under_its_own_prefix() -> None:
    g = tiny_g(use_vae=True, z_dim=16, crop_size=64)
    assert isinstance(g.fc, nn.Linear) and g.fc.weight.shape == (16 * 8 * 2 * 2, 16)
    enc_keys = [k for k in g.state_dict() if k.startswith("encoder.")]
    assert "encoder.fc_mu.weight" in enc_keys and "encoder.layer1.0.parametrizations.weight.0._u" in enc_keys
    # at crop ≥ 256 the encoder is the official one: six stride-2 layers, fc from 8·ngf·4·4
    e = ConvEncoder(ngf=2, z_dim=8, crop_size=256)
    assert e.n_layers == 6 and e.fc_mu.weight.shape == (8, 16 * 16)
    mu, logvar = e(torch.rand(1, 3, 100, 80) * 2 - 1)
    assert mu.shape == logvar.shape == (1, 8)


@pytest.mark.parametrize(
    "norm", ["spade:instance:3x3", "spade:sync_batch:3x3", "spade:group:4:3x3", "clade:instance", "instance"]
)
def test_every_block_norm_builds_runs_and_trains(norm: str) -> None:
    # crop 64 gives a 2×2 latent grid: instance statistics of a 1×1 map are constant (no gradient)
    g = tiny_g(norm=norm, crop_size=64)
    init_weights(g, gain=1.0)  # larger weights than the official 0.02: differences are then visible
    seg = segmaps(2, 64)
    y = g(seg)
    y.square().mean().backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0
    with torch.no_grad():
        other = g(segmaps(2, 64, seed=1))
    assert (other - y.detach()).abs().max() > 1e-3  # the label map steers the output


def test_clade_is_much_lighter_than_spade() -> None:
    n_spade = sum(p.numel() for p in tiny_g(norm="spade:instance:3x3").parameters())
    n_clade = sum(p.numel() for p in tiny_g(norm="clade:instance").parameters())
    n_plain = sum(p.numel() for p in tiny_g(norm="instance").parameters())
    assert n_plain < n_clade < n_spade


def test_res_block_shortcut_and_spectral_switch() -> None:
    b = SPADEResBlock(16, 8, "spade:instance:3x3", LABEL_NC, hidden=8)
    keys = list(b.state_dict())
    assert b.learned_shortcut and "conv_s.bias" not in keys
    assert "conv_s.parametrizations.weight.original" in keys and "norm_s.mlp_shared.0.weight" in keys
    # official key order: convs, then norms
    assert [k.split(".")[0] for k in keys].index("norm_0") > [k.split(".")[0] for k in keys].index("conv_s")
    assert b(torch.randn(2, 16, 8, 8), segmaps(2, 8)).shape == (2, 8, 8, 8)
    same = SPADEResBlock(8, 8, "clade:instance", LABEL_NC, spectral=False)
    assert not same.learned_shortcut and "conv_0.weight" in same.state_dict()
    assert not hasattr(same, "conv_s")
    with pytest.raises(SpecError, match="class or style condition"):
        SPADEResBlock(8, 8, "cbn", LABEL_NC)


def test_bad_generator_inputs_are_clear() -> None:
    g = tiny_g()
    with pytest.raises(ShapeError, match="expects 6 label channels"):
        g(segmaps(1, 32, label_nc=5))
    with pytest.raises(ShapeError, match="float one-hot"):
        g(segmaps(1, 32).long())
    with pytest.raises(SpecError, match="use_vae"):
        g(segmaps(1, 32), z=torch.randn(1, 256))
    with pytest.raises(SpecError, match="no image encoder"):
        g.encode(torch.rand(1, 3, 32, 32))
    d = tiny_g(contain_dontcare=True, use_instance=True)
    assert d.semantic_nc == LABEL_NC + 2
    with pytest.raises(ShapeError, match="1 don't-care \\+ 1 instance-edge"):
        d(segmaps(1, 32))
    v = tiny_g(use_vae=True, z_dim=8, crop_size=64)
    with pytest.raises(ShapeError, match="z must be"):
        v(segmaps(1, 64), z=torch.randn(1, 7))
    with pytest.raises(SpecError, match="not both"):
        v(segmaps(1, 64), z=torch.randn(1, 8), style_image=torch.rand(1, 3, 64, 64))


def test_style_image_steers_the_output() -> None:
    g = tiny_g(use_vae=True, z_dim=16, crop_size=64).eval()
    seg = segmaps(1, 64)
    warm = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()
    warm[:, 2] = -0.8  # a reddish gradient
    noisy = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        a1, a2 = g(seg, style_image=warm), g(seg, style_image=warm)
        b = g(seg, style_image=noisy)
        z, mu, _ = g.encode(warm)
        by_z = g(seg, z=mu)
    torch.testing.assert_close(a1, a2)  # eval: the encoder's mean, deterministic
    torch.testing.assert_close(a1, by_z)
    assert torch.equal(z, mu)
    assert (a1 - b).abs().mean() > 0.05 * a1.abs().mean()
    g.train()
    z1, mu1, logvar1 = g.encode(warm)
    z2, _, _ = g.encode(warm)
    assert not torch.equal(z1, z2) and mu1.shape == logvar1.shape == (1, 16)  # training samples z


# ------------------------------------------------------------------------------------------ discriminators


def test_discriminator_patch_sizes_and_keys_follow_the_official() -> None:
    d = MultiscaleDiscriminator(4, num_D=2, ndf=2)
    with torch.no_grad():
        out = d(torch.randn(1, 4, 256, 256))
    assert [s[-1].shape[-1] for s in out] == [35, 19]  # the official 256² patch maps
    assert [len(s) for s in out] == [5, 5]
    keys = list(d.state_dict())
    assert keys[:2] == ["discriminator_0.model0.0.weight", "discriminator_0.model0.0.bias"]
    assert "discriminator_1.model3.0.0.parametrizations.weight.original" in keys
    assert "discriminator_0.model1.0.0.bias" not in keys  # no bias before the instance norm
    assert keys[-2:] == ["discriminator_1.model4.0.weight", "discriminator_1.model4.0.bias"]
    plain = NLayerDiscriminator(4, ndf=2, norm="none")
    assert (
        "model1.0.bias" in plain.state_dict()
        and "model1.0.parametrizations.weight.original" in plain.state_dict()
    )
    with pytest.raises(SpecError, match="unconditional"):
        NLayerDiscriminator(4, norm="cbn")
    with pytest.raises(ShapeError, match="concat\\(label map, image\\)"):
        d(torch.randn(1, 3, 32, 32))


def test_one_gan_step_is_finite_and_the_discriminator_learns_a_fixed_batch() -> None:
    g = tiny_g()
    d = MultiscaleDiscriminator(LABEL_NC + 3, num_D=2, ndf=8, n_layers=3)
    seg = segmaps(2, 32)
    real = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))

    fake = g(seg)
    pred_fake, pred_real = d.discriminate(seg, fake, real)
    g_loss = hinge_g_loss(pred_fake) + 10.0 * feature_matching_loss(pred_fake, pred_real)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    assert torch.isfinite(g_loss)
    assert all(torch.isfinite(p).all() for p in g.parameters())

    # the official init (gain 0.02) starts D at logits ≈ 0, loss 2; a few steps must pull it down
    for group in opt_d.param_groups:
        group["lr"] = 1e-3
    fake = g(seg).detach()
    losses = []
    for _ in range(10):
        pred_fake, pred_real = d.discriminate(seg, fake, real)
        d_loss = hinge_d_loss(pred_real, pred_fake)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        losses.append(float(d_loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.92 * losses[0] and losses[-1] < min(losses[:5]), losses


# ------------------------------------------------------------------------------------------ losses


def test_hinge_losses_match_their_formulas_over_scales() -> None:
    real = [
        [torch.randn(2, 4, 3, 3), torch.randn(2, 1, 5, 5)],
        [torch.randn(2, 4, 2, 2), torch.randn(2, 1, 3, 3)],
    ]
    fake = [
        [torch.randn(2, 4, 3, 3), torch.randn(2, 1, 5, 5)],
        [torch.randn(2, 4, 2, 2), torch.randn(2, 1, 3, 3)],
    ]
    expected_d = sum(
        torch.clamp(1 - r[-1], min=0).mean() / 2 + torch.clamp(1 + f[-1], min=0).mean() / 2
        for r, f in zip(real, fake, strict=True)
    )
    torch.testing.assert_close(hinge_d_loss(real, fake), expected_d)
    torch.testing.assert_close(hinge_g_loss(fake), -(fake[0][-1].mean() + fake[1][-1].mean()) / 2)
    logits = torch.tensor([2.0, 0.5, -3.0])
    # real: relu(1-x) = 0, 0.5, 4; fake: relu(1+x) = 3, 1.5, 0
    torch.testing.assert_close(hinge_d_loss(logits, logits), torch.tensor(4.5 / 3 + 4.5 / 3))
    torch.testing.assert_close(hinge_g_loss(real[0]), -real[0][-1].mean())  # one D's feature list
    with pytest.raises(ShapeError, match="scales"):
        hinge_d_loss(real, fake[:1])


def test_feature_matching_is_l1_over_intermediate_features_averaged_over_scales() -> None:
    fake = [
        [torch.randn(2, 4, 3, 3, requires_grad=True), torch.randn(2, 8, 2, 2), torch.randn(2, 1, 2, 2)]
        for _ in range(2)
    ]
    real = [
        [torch.randn(2, 4, 3, 3, requires_grad=True), torch.randn(2, 8, 2, 2), torch.randn(2, 1, 2, 2)]
        for _ in range(2)
    ]
    expected = sum((f[j] - r[j]).abs().mean() for f, r in zip(fake, real, strict=True) for j in range(2)) / 2
    loss = feature_matching_loss(fake, real)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None  # real features are targets
    with pytest.raises(ShapeError):
        feature_matching_loss(fake, real[:1])


def test_kl_divergence_formula_and_zero_at_the_prior() -> None:
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    expected = sum(
        -0.5 * (1 + logvar[i, j] - mu[i, j] ** 2 - torch.exp(logvar[i, j]))
        for i in range(3)
        for j in range(5)
    )
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)
    assert float(kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4))) == 0.0
    with pytest.raises(ShapeError):
        kl_divergence(mu, logvar[:, :4])


def test_vgg_loss_uses_the_official_layers_and_weights() -> None:
    enc = VGGEncoder(depth=19, last="relu5_1", fmt="random", seed=0)
    loss_fn = VGGLoss(enc)
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    taps = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    fx, fy = enc((x + 1) / 2, taps), enc((y + 1) / 2, taps)
    expected = sum(w * (fx[t] - fy[t]).abs().mean() for t, w in zip(taps, VGG_WEIGHTS, strict=True))
    loss = loss_fn(x, y)
    torch.testing.assert_close(loss, expected)
    assert VGG_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert float(loss_fn(y, y)) == 0.0
    with pytest.raises(SpecError, match="relu5_1"):
        VGGLoss(VGGEncoder(depth=19, last="relu4_1", fmt="random"))
