"""Independent ground truth: the two published architectures, written from their documented layer lists.

These modules deliberately import nothing from stylenorm: they are what the
importers are checked against. Layouts and keys follow
/work/shared/reference/style_transfer_anchors.md §2.2–2.3 (pytorch/examples
fast_neural_style) and §3.2–3.4 (pytorch-AdaIN).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------- pytorch/examples fast_neural_style


class RefConvLayer(nn.Module):
    """ReflectionPad2d(k // 2) then a biased Conv2d (the example's ConvLayer)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)."""
        return self.conv2d(self.reflection_pad(x))


class RefUpsampleConvLayer(nn.Module):
    """Nearest ×2 upsampling, then reflection pad + conv (the example's UpsampleConvLayer)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, upsample: int = 2) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, 2H, 2W)."""
        x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class RefResidualBlock(nn.Module):
    """conv → IN → ReLU → conv → IN, plus the input (no ReLU after the sum)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = RefConvLayer(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = RefConvLayer(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class RefTransformerNet(nn.Module):
    """The example's TransformerNet: RGB in [0, 255] -> unbounded RGB ~[0, 255], no output activation.

    The output is 4-aligned (H, W rounded up by the two stride-2 convs then
    doubled twice), so it is larger than the input when H or W is not a
    multiple of 4.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = RefConvLayer(3, 32, 9)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = RefConvLayer(32, 64, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = RefConvLayer(64, 128, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res1 = RefResidualBlock(128)
        self.res2 = RefResidualBlock(128)
        self.res3 = RefResidualBlock(128)
        self.res4 = RefResidualBlock(128)
        self.res5 = RefResidualBlock(128)
        self.deconv1 = RefUpsampleConvLayer(128, 64, 3)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = RefUpsampleConvLayer(64, 32, 3)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = RefConvLayer(32, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 255] -> (N, 3, 4⌈H/4⌉, 4⌈W/4⌉) unclamped."""
        y = torch.relu(self.in1(self.conv1(x)))
        y = torch.relu(self.in2(self.conv2(y)))
        y = torch.relu(self.in3(self.conv3(y)))
        for block in (self.res1, self.res2, self.res3, self.res4, self.res5):
            y = block(y)
        y = torch.relu(self.in4(self.deconv1(y)))
        y = torch.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


INSTANCE_NORM_NAMES = (
    "in1", "in2", "in3", "in4", "in5", *(f"res{i}.in{j}" for i in range(1, 6) for j in (1, 2))
)


def fast_state_with_legacy_keys(net: RefTransformerNet) -> dict[str, Tensor]:
    """The net's state dict plus the pre-0.4 ``<in>.running_mean/var`` buffers the published files carry."""
    state = dict(net.state_dict())
    for name in INSTANCE_NORM_NAMES:
        c = state[f"{name}.weight"].shape[0]
        state[f"{name}.running_mean"] = torch.randn(c)
        state[f"{name}.running_var"] = torch.rand(c) + 0.5
    return state


# ---------------------------------------------------------------- naoto0804/pytorch-AdaIN


def _pad_conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]


def reference_vgg() -> nn.Sequential:
    """vgg_normalised as a 53-module nn.Sequential (indices as in the published file)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    c_in = 3
    for width, convs in ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)):
        for _ in range(convs):
            layers += [*_pad_conv(c_in, width), nn.ReLU()]
            c_in = width
        layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
    return nn.Sequential(*layers[:-1])  # the file ends with relu5_4: no pool5


def reference_decoder() -> nn.Sequential:
    """pytorch-AdaIN's decoder (29 modules) mirroring vgg up to relu4_1."""
    return nn.Sequential(
        *_pad_conv(512, 256), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        *_pad_conv(256, 256), nn.ReLU(),
        *_pad_conv(256, 256), nn.ReLU(),
        *_pad_conv(256, 256), nn.ReLU(),
        *_pad_conv(256, 128), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        *_pad_conv(128, 128), nn.ReLU(),
        *_pad_conv(128, 64), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
        *_pad_conv(64, 64), nn.ReLU(),
        *_pad_conv(64, 3),
    )


def reference_mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """The port's calc_mean_std: per (n, c) mean and sqrt(unbiased var + eps), each (N, C, 1, 1)."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    return flat.mean(2).view(n, c, 1, 1), (flat.var(2) + eps).sqrt().view(n, c, 1, 1)


def reference_adain(content: Tensor, style: Tensor) -> Tensor:
    """σ(style)·(content − μ(content))/σ(content) + μ(style), both σ with the port's convention."""
    c_mean, c_std = reference_mean_std(content)
    s_mean, s_std = reference_mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


@torch.no_grad()
def reference_style_transfer(
    vgg: nn.Sequential, decoder: nn.Sequential, content: Tensor, style: Tensor, alpha: float = 1.0
) -> Tensor:
    """The port's test.py: encode with vgg[:31] (to relu4_1), AdaIN, alpha mix, decode (8-aligned output)."""
    encoder = vgg[:31]
    c_feat = encoder(content)
    s_feat = encoder(style)
    t = reference_adain(c_feat, s_feat)
    return decoder(alpha * t + (1 - alpha) * c_feat)


def randomize(module: nn.Module, seed: int, scale: float = 1.0) -> nn.Module:
    """Seeded He-style random weights and small random biases, so outputs are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * scale * (2.0 / fan_in) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.InstanceNorm2d) and m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module


def published_like_fast_net(seed: int) -> RefTransformerNet:
    """A random TransformerNet whose outputs span [0, 255] like a trained one (a few pixels clip)."""
    net = randomize(RefTransformerNet(), seed)
    with torch.no_grad():  # random layers give outputs of std ~1: stretch the last conv to pixel scale
        net.deconv3.conv2d.weight.mul_(60.0)
        net.deconv3.conv2d.bias.fill_(127.5)
    return net.eval()


def save_published(state: dict[str, Tensor], path: Path) -> Path:
    """torch.save a plain state dict, as the published .pth files are."""
    torch.save(state, path)
    return path


LEGACY_KEY = re.compile(r"(^|\.)in\d+\.running_(mean|var)$")
