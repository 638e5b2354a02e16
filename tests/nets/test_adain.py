"""The AdaIN network: pytorch-AdaIN's decoder layout, every stylization option, colour tools."""

from __future__ import annotations

import pytest
import torch

from stylenorm.errors import ShapeError
from stylenorm.nets import AdaINNet, VGGEncoder, coral
from stylenorm.nets.color import ColorTransfer, lab_to_rgb, rgb_to_lab
from stylenorm.norm import style_moments


@pytest.fixture(scope="module")
def net() -> AdaINNet:
    torch.manual_seed(0)
    return AdaINNet(VGGEncoder(19, "relu3_1", "random")).eval()


def test_relu4_1_decoder_has_the_published_keys_and_mirrors_the_encoder() -> None:
    dec = AdaINNet(VGGEncoder(19, "relu4_1", "normalised")).decoder
    weights = [k for k in dec.state_dict() if k.endswith("weight")]
    assert weights == [f"{i}.weight" for i in (1, 5, 8, 11, 14, 18, 21, 25, 28)]
    shapes = [tuple(dec.state_dict()[k].shape[:2]) for k in weights]
    assert shapes == [(256, 512), (256, 256), (256, 256), (256, 256), (128, 256), (128, 128),
                      (64, 128), (64, 64), (3, 64)]
    assert sum(p.numel() for p in dec.parameters()) == 3_505_219


def test_output_has_the_content_size_and_alpha_zero_reconstructs(net: AdaINNet) -> None:
    content, style = torch.rand(1, 3, 37, 45), torch.rand(1, 3, 24, 30)
    with torch.no_grad():
        out = net.stylize(content, [style])
        recon = net.stylize(content, [style], alpha=0.0)
        padded, h, w = net._pad(content)
        expected = net.decode(net.encode(padded), (h, w))
    assert out.shape == content.shape
    torch.testing.assert_close(recon, expected)


def test_style_weights_mix_the_adain_targets(net: AdaINNet) -> None:
    content = torch.rand(1, 3, 32, 32)
    s1, s2 = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16) * 0.2
    with torch.no_grad():
        padded, h, w = net._pad(content)
        feat = net.encode(padded)
        t1, t2 = net.transfer(feat, net.style_stats(s1)), net.transfer(feat, net.style_stats(s2))
        expected = net.decode(0.25 * t1 + 0.75 * t2, (h, w))
        got = net.stylize(content, [s1, net.style_stats(s2)], weights=[1.0, 3.0])
    torch.testing.assert_close(got, expected)


def test_the_content_is_mirrored_by_the_margin_so_no_border_is_seen_by_the_encoder(net: AdaINNet) -> None:
    """stylize = decode(AdaIN(encode(content mirrored by 32 px, aligned))) with the picture cropped out."""
    content, style = torch.rand(1, 3, 50, 61), torch.rand(1, 3, 24, 30)
    m = net.margin
    assert m == 32 and m % net.multiple == 0
    k = net.multiple
    ph, pw = (-(50 + 2 * m)) % k, (-(61 + 2 * m)) % k
    aligned = torch.nn.functional.pad(content, (m, m + pw, m, m + ph), mode="reflect")
    with torch.no_grad():
        t = net.transfer(net.encode(aligned), net.style_stats(style))
        expected = net.decoder(t)[:, :, m : m + 50, m : m + 61]
        got = net.stylize(content, [style])
    torch.testing.assert_close(got, expected)
    tiny = torch.rand(1, 3, 20, 24)  # too small to mirror 32 px: the edge is repeated instead
    with torch.no_grad():
        assert net.stylize(tiny, [style]).shape == tiny.shape


def test_masks_give_each_region_its_style(net: AdaINNet) -> None:
    content = torch.rand(1, 3, 32, 32)
    s1, s2 = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16) * 0.2
    left = torch.zeros(32, 32)
    left[:, :16] = 1
    with torch.no_grad():
        padded, h, w = net._pad(content)  # mirrored by the margin: the masks are extended the same way
        feat = net.encode(padded)
        t = net._masked_transfer(feat, [net.style_stats(s1), net.style_stats(s2)], [left, 1 - left],
                                 (h, w), tuple(padded.shape[2:]))
    half = feat.shape[3] // 2  # the margin is symmetric: the left half of the features is the left region
    left_feat, right_feat = t[..., :half], t[..., half:]
    mean1, _ = net.style_stats(s1)
    mean2, _ = net.style_stats(s2)
    # each region's feature mean is its own style's mean (AdaIN over the region's content stats)
    torch.testing.assert_close(left_feat.mean((2, 3)), mean1, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(right_feat.mean((2, 3)), mean2, rtol=1e-4, atol=1e-4)


def test_bad_stylize_arguments_are_clear(net: AdaINNet) -> None:
    content, style = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    with pytest.raises(ShapeError, match="need 2 non-negative style weights"):
        net.stylize(content, [style, style], weights=[1.0])
    with pytest.raises(ShapeError, match="one mask per style"):
        net.stylize(content, [style, style], masks=[torch.ones(16, 16)])
    with pytest.raises(ShapeError, match="like the content"):
        net.stylize(content, [style], masks=[torch.ones(8, 8)])
    with pytest.raises(ShapeError, match="alpha"):
        net.stylize(content, [style], alpha=1.5)
    with pytest.raises(ShapeError, match="one RGB image"):
        net.stylize(torch.rand(2, 3, 16, 16), [style])


def test_coral_matches_the_target_colour_mean_and_covariance() -> None:
    source = torch.rand(3, 20, 20) * 0.5
    target = torch.rand(3, 20, 20) * 0.3 + 0.4
    out = coral(source, target).reshape(3, -1).double()
    torch.testing.assert_close(out.mean(1), target.reshape(3, -1).double().mean(1), rtol=0, atol=1e-3)
    torch.testing.assert_close(torch.cov(out), torch.cov(target.reshape(3, -1).double()), rtol=0, atol=1e-3)


def test_colour_transfer_moves_lab_statistics_to_the_style() -> None:
    content = torch.rand(1, 3, 24, 24) * 0.4 + 0.3
    style = torch.rand(1, 3, 16, 16) * 0.3 + torch.tensor([0.5, 0.2, 0.1]).view(1, 3, 1, 1)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(content)), content, rtol=0, atol=1e-4)
    out = ColorTransfer()(content, style)
    got_mean, _ = style_moments(rgb_to_lab(out))
    want_mean, _ = style_moments(rgb_to_lab(style))
    torch.testing.assert_close(got_mean, want_mean, rtol=0, atol=0.02)
    torch.testing.assert_close(ColorTransfer()(content, style, alpha=0.0), content, rtol=0, atol=1e-4)
    with pytest.raises(ShapeError, match="RGB images"):
        ColorTransfer()(content[:, :1], style)
