"""The feed-forward transformation network of fast style transfer (Johnson et al. 2016).

Layout and state-dict keys follow pytorch/examples ``fast_neural_style``
(``conv1.conv2d.weight``, ``in1.weight``, ``res1.conv1.conv2d.weight`` …), so
its published models import unchanged. The norm of every layer is a spec
string: ``instance`` (Ulyanov) by default, ``cin`` for multi-style models
(Dumoulin et al. 2017: call ``net(x, style)`` with indices (N,) or mixing
weights (N, S)). Images are RGB in [0, 1]; the output has the input's size
(the input is reflect-padded to a multiple of 4 and the output cropped back).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from stylenorm.errors import ShapeError
from stylenorm.norm import make_norm


class ConvLayer(nn.Module):
    """Reflection pad + conv (the padding keeps the border free of zero-padding artefacts)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: int = 1) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H·up/stride, W·up/stride)."""
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.pad(x))


def _norm_call(norm: nn.Module, x: Tensor, style: Tensor | None) -> Tensor:
    return norm(x, style) if getattr(norm, "conditional", False) else norm(x)


class ResidualBlock(nn.Module):
    """conv → norm → ReLU → conv → norm, plus the input (no activation after the sum)."""

    def __init__(self, channels: int, norm: str, norm_options: dict) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = make_norm(norm, channels, **norm_options)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = make_norm(norm, channels, **norm_options)

    def forward(self, x: Tensor, style: Tensor | None = None) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        y = F.relu(_norm_call(self.in1, self.conv1(x), style))
        return x + _norm_call(self.in2, self.conv2(y), style)


class TransformerNet(nn.Module):
    """Image → stylized image, (N, 3, H, W) RGB [0, 1] -> (N, 3, H, W).

    ``norm``: any non-spatial spec (``instance``, ``batch``, ``cin`` …);
    ``num_styles`` for ``cin``; ``pixel_scale`` 255 for nets trained on
    [0, 255] images (pytorch/examples); ``output`` ``"sigmoid"`` (ours) or
    ``"linear"`` (pytorch/examples; the result is clamped to [0, 1]).
    """

    def __init__(
        self,
        norm: str = "instance",
        num_styles: int | None = None,
        pixel_scale: float = 1.0,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if output not in ("sigmoid", "linear"):
            raise ShapeError(f"output must be 'sigmoid' or 'linear'; got {output!r}")
        options: dict = {"affine": True} if norm.split(":")[0] == "instance" else {}
        if num_styles is not None:
            options["num_styles"] = num_styles
        self.norm, self.num_styles = norm, num_styles
        self.pixel_scale, self.output = pixel_scale, output
        self.conv1 = ConvLayer(3, 32, 9)
        self.in1 = make_norm(norm, 32, **options)
        self.conv2 = ConvLayer(32, 64, 3, stride=2)
        self.in2 = make_norm(norm, 64, **options)
        self.conv3 = ConvLayer(64, 128, 3, stride=2)
        self.in3 = make_norm(norm, 128, **options)
        for i in range(1, 6):
            setattr(self, f"res{i}", ResidualBlock(128, norm, options))
        self.deconv1 = ConvLayer(128, 64, 3, upsample=2)
        self.in4 = make_norm(norm, 64, **options)
        self.deconv2 = ConvLayer(64, 32, 3, upsample=2)
        self.in5 = make_norm(norm, 32, **options)
        self.deconv3 = ConvLayer(32, 3, 9)

    @property
    def conditional(self) -> bool:
        """Whether the net needs a style argument (a ``cin`` net)."""
        return getattr(self.in1, "conditional", False)

    def forward(self, x: Tensor, style: Tensor | None = None) -> Tensor:
        """x (N, 3, H, W) in [0, 1]; style (N,) indices or (N, S) weights for cin -> (N, 3, H, W)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError(f"expected RGB images (N, 3, H, W); got shape {tuple(x.shape)}")
        if self.conditional and style is None:
            raise ShapeError(f"this multi-style net needs a style (one of {self.num_styles})")
        h, w = x.shape[2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        if pad_h or pad_w:
            mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = x * self.pixel_scale
        y = F.relu(_norm_call(self.in1, self.conv1(y), style))
        y = F.relu(_norm_call(self.in2, self.conv2(y), style))
        y = F.relu(_norm_call(self.in3, self.conv3(y), style))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y, style)
        y = F.relu(_norm_call(self.in4, self.deconv1(y), style))
        y = F.relu(_norm_call(self.in5, self.deconv2(y), style))
        y = self.deconv3(y)
        if self.output == "sigmoid":
            y = y.sigmoid()
        else:  # clamp at the boundary only, so training keeps its gradients
            y = y / self.pixel_scale
            y = y if self.training else y.clamp(0, 1)
        return y[:, :, :h, :w]
