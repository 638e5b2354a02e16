"""VGG-16/19 encoders for style losses and AdaIN, in the two weight formats people have.

* ``torchvision``: ``torchvision.models.vgg16/19`` feature layers (zero padding,
  floor pooling) with ImageNet weights; inputs are normalized with the
  ImageNet mean/std inside the encoder.
* ``normalised``: the "vgg_normalised" VGG-19 of AdaIN (Gatys' rescaled Caffe
  weights): a fixed 1×1 conv that maps RGB [0, 1] to mean-subtracted BGR·255,
  reflection padding, ceil-mode pooling. Key names follow pytorch-AdaIN's
  ``vgg_normalised.pth`` (``features.<index>.*``).
* ``random``: the torchvision layout with seeded random weights (documented
  lower quality; He, Wang & Hopcroft 2016 show random VGG features still carry
  style statistics).

At the boundary images are RGB in [0, 1], (N, 3, H, W).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from stylenorm.errors import MissingWeightsError, SpecError

_CONFIG = {
    16: [2, 2, 3, 3, 3],
    19: [2, 2, 4, 4, 4],
}
_WIDTHS = [64, 128, 256, 512, 512]
# torchvision's published file names in the hub cache (torch.hub.get_dir()/checkpoints)
HUB_FILES = {16: "vgg16-397923af.pth", 19: "vgg19-dcbb9e9d.pth"}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
FORMATS = ("torchvision", "normalised", "random")


def layer_names(depth: int) -> list[str]:
    """The named outputs of VGG-depth in order: conv1_1, relu1_1, …, pool5 (one per torchvision layer)."""
    names = []
    for block, convs in enumerate(_CONFIG[depth], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def _check(depth: int, last: str) -> None:
    if depth not in _CONFIG:
        raise SpecError(f"VGG depth must be 16 or 19; got {depth}")
    if last not in layer_names(depth):
        raise SpecError(f"unknown VGG-{depth} layer {last!r}; valid: {', '.join(layer_names(depth))}")


class VGGEncoder(nn.Module):
    """A frozen VGG cut at ``last``; ``encoder(x, taps)`` returns {tap: features} for RGB x in [0, 1].

    ``fmt`` is one of ``torchvision``, ``normalised`` (VGG-19 only) or
    ``random`` (torchvision layout, seeded weights). Weights are loaded with
    :func:`load_vgg_weights` (the constructor leaves them random).
    """

    def __init__(self, depth: int = 19, last: str = "relu4_1", fmt: str = "torchvision", seed: int = 0):
        super().__init__()
        _check(depth, last)
        if fmt not in FORMATS:
            raise SpecError(f"VGG weight format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        if fmt == "normalised" and depth != 19:
            raise SpecError("the 'normalised' (AdaIN) VGG exists for depth 19 only")
        self.depth, self.last, self.fmt = depth, last, fmt
        self.names: list[str] = []  # output name of each module in self.features (None for pads)
        layers: list[nn.Module] = []
        names: list[str | None] = []
        normalised = fmt == "normalised"
        if normalised:
            layers.append(nn.Conv2d(3, 3, 1))  # the fixed RGB[0,1] -> BGR·255 − mean conv
            names.append("preprocess")
        c_in = 3
        for name in layer_names(depth):
            if name.startswith("conv"):
                width = _WIDTHS[int(name[4]) - 1]
                if normalised:
                    layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, width, 3)]
                    names += [None, name]
                else:
                    layers.append(nn.Conv2d(c_in, width, 3, padding=1))
                    names.append(name)
                c_in = width
            elif name.startswith("relu"):
                layers.append(nn.ReLU(inplace=False))
                names.append(name)
            else:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=normalised))
                names.append(name)
            if name == last:
                break
        self.features = nn.Sequential(*layers)
        self.names = names  # type: ignore[assignment]
        self.out_channels = c_in
        if not normalised:
            self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if fmt == "random":
            self.randomize(seed)
        self.requires_grad_(False)

    @torch.no_grad()
    def randomize(self, seed: int) -> None:
        """Seeded He-normal conv weights, zero biases (the ``random`` encoder)."""
        g = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                std = (2.0 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1])) ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                m.bias.zero_()

    def forward(self, x: Tensor, taps: tuple[str, ...] | None = None) -> dict[str, Tensor]:
        """x (N, 3, H, W) RGB in [0, 1] -> {tap: (N, C_tap, H_tap, W_tap)}; default taps = (last,)."""
        taps = taps or (self.last,)
        unknown = set(taps) - {n for n in self.names if n}
        if unknown:
            raise SpecError(f"VGG encoder cut at {self.last} has no layer(s) {sorted(unknown)}")
        if self.fmt != "normalised":
            x = (x - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for name, layer in zip(self.names, self.features, strict=True):
            x = layer(x)
            if name in taps:
                out[name] = x
                if len(out) == len(taps):
                    break
        return out


def hub_path(depth: int) -> Path:
    """Where torchvision's downloader keeps the ImageNet VGG weights (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILES[depth]


def _read_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    if not isinstance(state, dict):
        raise SpecError(f"{path} does not hold a state dict")
    return state


def load_vgg_weights(encoder: VGGEncoder, path: str | Path | None = None) -> VGGEncoder:
    """Load pretrained weights into encoder from ``path`` or (torchvision format) the torch hub cache.

    Accepts torchvision's full-model files (``features.N.*`` and classifier
    keys) or pytorch-AdaIN's ``vgg_normalised.pth`` (``N.*``). Raises
    MissingWeightsError naming the file to provide when none is found.
    """
    if encoder.fmt == "random":
        return encoder
    if path is None:
        if encoder.fmt == "normalised":
            raise MissingWeightsError(
                "the AdaIN encoder needs vgg_normalised.pth (released with pytorch-AdaIN); pass its "
                "path, or use the random encoder (--encoder random, lower quality)"
            )
        path = hub_path(encoder.depth)
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"VGG-{encoder.depth} weights not found at {path}. Provide torchvision's "
            f"{HUB_FILES[encoder.depth]} (ImageNet) there or give its path, or use the random "
            "encoder (--encoder random, lower quality)"
        )
    state = _read_state(path)
    wanted = encoder.features.state_dict()
    if not any(k.startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items()}
    picked = {k[len("features."):]: v for k, v in state.items() if k[len("features."):] in wanted}
    missing = sorted(set(wanted) - set(picked))
    if missing:
        raise SpecError(
            f"{path} does not fit a {encoder.fmt} VGG-{encoder.depth} cut at {encoder.last}: "
            f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}"
        )
    encoder.features.load_state_dict(picked)
    return encoder
