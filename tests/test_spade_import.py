"""The official SPADE generator importer: an independent reference implementation, round trips, clear errors.

The reference below is written from the documented layers and keys of NVlabs/SPADE
(``SPADE``, ``SPADEResnetBlock``, ``SPADEGenerator``; see the semantic-synthesis
anchors, §2.1–2.3 and §2.9) with torch's *legacy* spectral-norm hooks, so its
state dict has the official ``weight_orig/weight_u/weight_v`` and
``param_free_norm.*`` keys. It deliberately imports nothing from ``stylenorm.nets``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from stylenorm import models
from stylenorm.cli import main
from stylenorm.data.layouts import LAYOUT_PRESETS, get_layout
from stylenorm.data.segmentation import map_labels
from stylenorm.errors import ShapeError
from stylenorm.inference.synthesize import labels_from_image, synthesize
from stylenorm.interop.importers import import_spade, spade_key_from_official
from stylenorm.repository import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------------------------ reference


class RefSPADE(nn.Module):
    """SPADE: param-free norm, then x̂·(1 + γ(m)) + β(m) from a shared 3×3 conv + ReLU on the label map."""

    def __init__(self, norm_nc: int, label_nc: int, param_free: str, nhidden: int) -> None:
        super().__init__()
        if param_free == "batch":  # the released models' SynchronizedBatchNorm2d has BatchNorm2d's layout
            self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        else:
            self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, 3, padding=1)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class RefBlock(nn.Module):
    """SPADEResnetBlock: SPADE → lrelu(0.2) → spectral conv, twice; learned shortcut SPADE → 1×1 conv."""

    def __init__(self, fin: int, fout: int, semantic_nc: int, param_free: str, nhidden: int) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        sn = nn.utils.spectral_norm  # the legacy hook: weight_orig, weight_u, weight_v
        self.conv_0 = sn(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(fmiddle, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = sn(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = RefSPADE(fin, semantic_nc, param_free, nhidden)
        self.norm_1 = RefSPADE(fmiddle, semantic_nc, param_free, nhidden)
        if self.learned_shortcut:
            self.norm_s = RefSPADE(fin, semantic_nc, param_free, nhidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class RefGenerator(nn.Module):
    """SPADEGenerator without VAE: the label map at (sh, sw) through a 3×3 conv, 7 (or 8) blocks, conv_img."""

    def __init__(
        self, semantic_nc: int, ngf: int, crop_size: int, num_up: str, param_free: str, nhidden: int,
        aspect_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        nf, self.num_up = ngf, num_up
        self.sw = crop_size // 2 ** {"normal": 5, "more": 6, "most": 7}[num_up]
        self.sh = round(self.sw / aspect_ratio)
        self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> RefBlock:
            return RefBlock(fin, fout, semantic_nc, param_free, nhidden)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, nf)
        final_nc = nf
        if num_up == "most":
            self.up_4 = block(nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, seg: Tensor) -> Tensor:
        x = self.fc(F.interpolate(seg, size=(self.sh, self.sw)))
        x = self.head_0(x, seg)
        x = self.G_middle_0(self.up(x), seg)
        if self.num_up in ("more", "most"):
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        x = self.up_0(self.up(x), seg)
        x = self.up_1(self.up(x), seg)
        x = self.up_2(self.up(x), seg)
        x = self.up_3(self.up(x), seg)
        if self.num_up == "most":
            x = self.up_4(self.up(x), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def make_reference(seed: int, warmup: int = 3, **kwargs: object) -> RefGenerator:
    """A reference generator with random weights, converged spectral vectors and random running stats."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # the legacy spectral_norm is deprecated; it is what the checkpoints hold
        warnings.simplefilter("ignore")
        ref = RefGenerator(**kwargs)  # type: ignore[arg-type]
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "mlp" in name or name.startswith(("fc", "conv_img")):
                p.normal_(0.0, 0.1 if p.dim() > 1 else 0.3)
        semantic_nc = ref.fc.in_channels
        ref.train()
        for _ in range(warmup):  # every train-mode forward runs a power iteration of each spectral conv
            ref(torch.rand(2, semantic_nc, 16, 16))
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return ref.eval()


def blocky_labels(n: int, size: tuple[int, int], classes: int, seed: int) -> Tensor:
    """(n, H, W) class ids in 0..classes-1: 8×8 random cells, upsampled (regions with edges)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(classes, (n, 1, 8, 8), generator=g).float()
    return F.interpolate(cells, size=size, mode="nearest")[:, 0].long()


def one_hot(labels: Tensor, channels: int) -> Tensor:
    return torch.zeros(labels.shape[0], channels, *labels.shape[1:]).scatter_(1, labels.unsqueeze(1), 1.0)


def edges_of(ids: Tensor) -> Tensor:
    """The official instance-edge map: 1 where a 4-neighbour differs (both sides of a boundary)."""
    e = torch.zeros(ids.shape, dtype=torch.bool)
    h = ids[:, :, 1:] != ids[:, :, :-1]
    v = ids[:, 1:, :] != ids[:, :-1, :]
    e[:, :, 1:] |= h
    e[:, :, :-1] |= h
    e[:, 1:, :] |= v
    e[:, :-1, :] |= v
    return e.unsqueeze(1).float()


def save_official(ref: nn.Module, path: Path) -> Path:
    torch.save(ref.state_dict(), path)
    return path


# ------------------------------------------------------------------------------------------ round trips


def test_reference_has_the_official_keys() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy spectral_norm's deprecation
        ref = RefGenerator(semantic_nc=151, ngf=2, crop_size=64, num_up="normal", param_free="batch",
                           nhidden=128)
    keys = list(ref.state_dict())
    assert len(keys) == 234  # the anchors' count for the ADE20K latest_net_G.pth
    assert keys[:2] == ["fc.weight", "fc.bias"]
    assert "up_0.conv_s.weight_orig" in keys and "up_0.conv_s.bias" not in keys
    assert "head_0.norm_0.param_free_norm.num_batches_tracked" in keys
    assert spade_key_from_official("up_0.conv_s.weight_u") == "up_0.conv_s.parametrizations.weight.0._u"
    assert spade_key_from_official("head_0.norm_1.param_free_norm.running_var") == "head_0.norm_1.running_var"


@pytest.mark.parametrize(
    ("norm", "param_free", "dontcare", "instance", "num_up", "crop"),
    [
        ("spade:sync_batch:3x3", "batch", True, True, "normal", 64),  # the official default G
        ("spade:instance:3x3", "instance", False, False, "more", 128),  # spadeinstance3x3, Cityscapes depth
    ],
)
def test_imported_generator_equals_the_reference(
    tmp_path: Path, norm: str, param_free: str, dontcare: bool, instance: bool, num_up: str, crop: int
) -> None:
    label_nc = 5
    semantic_nc = label_nc + int(dontcare) + int(instance)
    ref = make_reference(1, semantic_nc=semantic_nc, ngf=2, crop_size=crop, num_up=num_up,
                         param_free=param_free, nhidden=16)
    pth = save_official(ref, tmp_path / "latest_net_G.pth")
    folder = import_spade(
        pth, tmp_path / "models", "spade-ref", label_nc, ngf=2, num_upsampling_layers=num_up,
        crop_size=crop, use_instance=instance, contain_dontcare=dontcare, norm=norm,
    )
    loaded = models.load(folder)
    assert loaded.card.architecture == "spade" and loaded.card.arguments["hidden"] == 16
    assert loaded.card.contract["size"] == [crop, crop] and len(loaded.card.contract["palette"]) == label_nc
    assert loaded.card.contract["classes"] == [f"class_{i}" for i in range(label_nc)]

    # the module, on a map with don't-care pixels and arbitrary instance edges
    labels = blocky_labels(2, (crop, crop), label_nc + int(dontcare), seed=3)
    seg = one_hot(labels, label_nc + int(dontcare))
    if instance:
        seg = torch.cat([seg, edges_of(blocky_labels(2, (crop, crop), 9, seed=4))], 1)
    with torch.no_grad():
        expected = ref(seg)
        got = loaded.module(seg)
    assert expected.std() > 0.05 and expected.abs().max() < 0.999  # not a saturated, trivial output
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)

    # the API: class ids in, [0, 1] out; instance edges stand in as the label boundaries
    ids = blocky_labels(1, (crop, crop), label_nc, seed=5)
    seg = one_hot(ids, label_nc + int(dontcare))
    if instance:
        seg = torch.cat([seg, edges_of(ids)], 1)
    with torch.no_grad():
        expected = (ref(seg) + 1) / 2
    torch.testing.assert_close(synthesize(loaded, ids), expected, rtol=0, atol=1e-4)


def test_cli_import_with_class_names_and_a_label_png(tmp_path: Path) -> None:
    ref = make_reference(2, semantic_nc=4, ngf=2, crop_size=64, num_up="normal", param_free="batch",
                         nhidden=8)
    pth = save_official(ref, tmp_path / "latest_net_G.pth")
    (tmp_path / "names.json").write_text('["sky", "sea", "sand", "rock"]')
    code = main([
        "import", "spade", "--weights", str(pth), "--name", "tiny-spade", "--label-nc", "4", "--ngf", "2",
        "--crop-size", "64", "--no-instance", "--classes", str(tmp_path / "names.json"),
        "--models-dir", str(tmp_path / "models"),
    ])
    assert code == 0
    loaded = models.load("tiny-spade", tmp_path / "models")
    assert loaded.card.contract["classes"] == ["sky", "sea", "sand", "rock"]
    assert loaded.card.provenance["source"] == "latest_net_G.pth"
    # a colour-coded PNG in the card's palette gives the same labels as the index map
    ids = blocky_labels(1, (64, 64), 4, seed=6)
    palette = torch.tensor(loaded.card.contract["palette"], dtype=torch.uint8)
    Image.fromarray(palette[ids[0]].numpy()).save(tmp_path / "painted.png")
    assert torch.equal(labels_from_image(loaded, tmp_path / "painted.png"), ids)
    with torch.no_grad():
        expected = (ref(one_hot(ids, 4)) + 1) / 2
    torch.testing.assert_close(synthesize(loaded, ids), expected, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------ errors


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sync-batch generator with 151 channels: ADE20K's layout (150 classes + don't-care, no instances)."""
    ref = make_reference(3, warmup=1, semantic_nc=151, ngf=2, crop_size=64, num_up="normal",
                         param_free="batch", nhidden=8)
    return save_official(ref, tmp_path_factory.mktemp("official") / "latest_net_G.pth")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_nc": 151}, r"takes 151 label channels, but label_nc 151 \+ 1 instance-edge channel = 152.*"
                            r"ADE20K: --label-nc 150 --contain-dontcare --no-instance"),
        ({"label_nc": 150, "contain_dontcare": True, "use_instance": False, "ngf": 4},
         r"has ngf 2 .* use --ngf 2"),
        ({"label_nc": 150, "contain_dontcare": True, "use_instance": False, "norm": "spade:instance:3x3"},
         r"batch statistics .*--norm spade:sync_batch:3x3"),
        ({"label_nc": 150, "contain_dontcare": True, "use_instance": False, "num_upsampling_layers": "most"},
         r"num_upsampling_layers normal"),
    ],
)
def test_settings_that_contradict_the_checkpoint_are_explained(
    official_pth: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    args = {"ngf": 2, "crop_size": 64} | kwargs
    label_nc = args.pop("label_nc")
    with pytest.raises(ModelError, match=message):
        import_spade(official_pth, tmp_path, "x", label_nc, **args)
    assert not (tmp_path / "x").exists()


def test_the_ade20k_layout_imports(official_pth: Path, tmp_path: Path) -> None:
    folder = import_spade(official_pth, tmp_path, "ade", 150, ngf=2, crop_size=64, contain_dontcare=True,
                          use_instance=False)
    loaded = models.load(folder)
    assert loaded.module.semantic_nc == 151 and len(loaded.card.contract["classes"]) == 150
    with pytest.raises(ModelError, match="already exists"):
        import_spade(official_pth, tmp_path, "ade", 150, ngf=2, crop_size=64, contain_dontcare=True,
                     use_instance=False)


def test_foreign_files_are_refused(tmp_path: Path, official_pth: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"refused to load|could not be read"):
        import_spade(tmp_path / "junk.pth", tmp_path, "x", 4)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match=r"no fc\.weight"):
        import_spade(tmp_path / "other.pth", tmp_path, "x", 4)
    vae = torch.load(official_pth, weights_only=True)
    vae["fc.weight"] = torch.zeros(2 * 16 * 4, 256)
    torch.save(vae, tmp_path / "vae.pth")
    with pytest.raises(ModelError, match="--use_vae generator"):
        import_spade(tmp_path / "vae.pth", tmp_path, "x", 150, contain_dontcare=True, use_instance=False)
    broken = torch.load(official_pth, weights_only=True)
    del broken["up_1.conv_1.weight_u"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match=r"missing keys up_1.conv_1.parametrizations.weight.0._u"):
        import_spade(tmp_path / "broken.pth", tmp_path, "x", 150, ngf=2, crop_size=64, contain_dontcare=True,
                     use_instance=False)
    code = main(["import", "spade", "--weights", str(tmp_path / "none.pth"), "--name", "x", "--label-nc", "3",
                 "--models-dir", str(tmp_path)])
    assert code == 2


# ------------------------------------------------------------------------------------------ dataset layouts

LAYOUT_SIZE = 256  # the ADE20K and COCO-Stuff presets' crop size


@pytest.fixture(scope="module")
def ade_official(tmp_path_factory: pytest.TempPathFactory) -> tuple[RefGenerator, Path]:
    """A fake official ADE20K release: 150 classes + don't-care, no instances, at the preset's 256 × 256."""
    ref = make_reference(11, warmup=1, semantic_nc=151, ngf=2, crop_size=LAYOUT_SIZE, num_up="normal",
                         param_free="batch", nhidden=8)
    return ref, save_official(ref, tmp_path_factory.mktemp("ade") / "latest_net_G.pth")


def ade_label_file(seed: int) -> np.ndarray:
    """An ADEChallengeData2016-style annotation: values 0 ("other") … 150, some pixels 0 and some 150."""
    values = blocky_labels(1, (LAYOUT_SIZE, LAYOUT_SIZE), 151, seed=seed)[0].numpy().astype(np.uint8)
    values[:32, :32] = 0  # "other": the don't-care channel
    values[-32:, -32:] = 150  # the last class (flag)
    values[:32, -32:] = 1  # the first class (wall)
    return values


def test_an_ade20k_label_png_gives_the_reference_output(
    ade_official: tuple[RefGenerator, Path], tmp_path: Path
) -> None:
    """The issue's check: the imported ADE20K-layout model fed the dataset's own label PNG equals the
    generator fed the hand-shifted one-hot map (file 0 -> don't-care channel 150, file v -> class v-1)."""
    ref, pth = ade_official
    code = main(["import", "spade", "--weights", str(pth), "--name", "ade", "--layout", "ade20k",
                 "--models-dir", str(tmp_path / "models")])  # no other flags
    assert code == 0
    loaded = models.load("ade", tmp_path / "models")
    assert loaded.card.license.startswith("CC-BY-NC-SA-4.0")  # NVlabs/SPADE: non-commercial
    raw = ade_label_file(seed=21)
    Image.fromarray(raw, "L").save(tmp_path / "ADE_val_00000001.png")

    shifted = torch.from_numpy(np.where(raw == 0, 150, raw.astype(np.int64) - 1))[None]
    seg = one_hot(shifted, 151)  # the reference: labels shifted by hand, the official loader's postprocess
    with torch.no_grad():
        expected = (ref(seg) + 1) / 2
        module_out = (loaded.module(seg) + 1) / 2
    assert expected.std() > 0.05

    labels = labels_from_image(loaded, tmp_path / "ADE_val_00000001.png")
    assert torch.equal(labels, shifted)  # 0 -> 150 (don't-care), v -> v - 1
    # the same convention as training's ADE20K dataset reads the file with
    assert np.array_equal(labels[0].numpy(), map_labels(raw, 150, True, shift=-1))
    got = synthesize(loaded, labels)
    assert torch.equal(got, module_out.clamp(0, 1))  # exactly the generator on the hand-shifted map
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)  # and the independent reference
    # what the issue saw: the file read as raw class indices gives another image
    unshifted = torch.from_numpy(np.minimum(raw.astype(np.int64), 150))[None]
    with torch.no_grad():
        wrong = (ref(one_hot(unshifted, 151)) + 1) / 2
    assert (wrong - expected).abs().max() > 0.05

    # the CLI reads it the same way, with no extra flags
    assert main(["synthesize", "--model", "ade", "--labels", str(tmp_path / "ADE_val_00000001.png"),
                 "--out", str(tmp_path / "out.png"), "--models-dir", str(tmp_path / "models"),
                 "--device", "cpu"]) == 0
    written = torch.from_numpy(np.asarray(Image.open(tmp_path / "out.png").convert("RGB"), np.float32) / 255)
    assert (written.permute(2, 0, 1) - expected[0]).abs().max() <= 1 / 255 + 1e-4


def test_the_ade20k_card_names_the_classes_and_the_label_file(
    ade_official: tuple[RefGenerator, Path], tmp_path: Path
) -> None:
    folder = import_spade(ade_official[1], tmp_path, "ade", layout="ade20k")
    card = models.load(folder).card
    assert card.arguments["label_nc"] == 150 and card.arguments["contain_dontcare"] is True
    assert card.arguments["use_instance"] is False and card.arguments["ngf"] == 2  # ngf from the checkpoint
    classes = card.contract["classes"]
    assert len(classes) == 150 and len(card.contract["palette"]) == 150
    assert classes[:8] == ["wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed"]
    assert classes[20:23] == ["car", "water", "painting"] and classes[-1] == "flag"
    assert card.contract["palette"][:2] == [[120, 120, 120], [180, 120, 120]]
    assert card.contract["size"] == [LAYOUT_SIZE, LAYOUT_SIZE]
    assert card.contract["layout"] == "ade20k"
    assert card.contract["label_file"] == {"shift": -1, "dontcare": [0, 255]}
    # explicit flags override the preset
    small = models.load(import_spade(ade_official[1], tmp_path, "ade-small", layout="ade20k", crop_size=64))
    assert small.card.contract["size"] == [64, 64] and small.card.contract["classes"] == classes


def test_a_bad_value_in_a_dataset_label_file_is_named(
    ade_official: tuple[RefGenerator, Path], tmp_path: Path
) -> None:
    loaded = models.load(import_spade(ade_official[1], tmp_path, "ade", layout="ade20k"))
    raw = ade_label_file(seed=22)
    raw[100:110, 100:110] = 200
    Image.fromarray(raw, "L").save(tmp_path / "bad.png")
    with pytest.raises(ShapeError, match=r"pixel value\(s\) 200 \(100 px\) are not labels of model 'ade' "
                                         r"\(ade20k label file: file value v is class v−1 \(1\.\.150\); "
                                         r"0, 255 are don't-care; classes 0 wall"):
        labels_from_image(loaded, tmp_path / "bad.png")


def test_a_coco_stuff_label_png_with_255_gives_the_reference_output(tmp_path: Path) -> None:
    """COCO-Stuff: file value = class, 255 (unlabeled) is the don't-care channel 182; instance edges last."""
    size = 64  # an explicit --crop-size overrides the preset's 256 (and keeps the test fast)
    ref = make_reference(12, warmup=1, semantic_nc=184, ngf=2, crop_size=size, num_up="normal",
                         param_free="batch", nhidden=8)
    pth = save_official(ref, tmp_path / "latest_net_G.pth")
    loaded = models.load(import_spade(pth, tmp_path / "models", "coco", layout="coco-stuff", crop_size=size))
    assert loaded.card.contract["classes"][:2] == ["person", "bicycle"]
    assert loaded.card.contract["classes"][91] == "banner" and loaded.card.contract["classes"][-1] == "wood"
    assert loaded.card.contract["label_file"] == {"shift": 0, "dontcare": [182, 255]}
    raw = blocky_labels(1, (size, size), 182, seed=23)[0].numpy().astype(np.uint8)
    raw[:16, :16] = 255
    Image.fromarray(raw, "L").save(tmp_path / "000000000139.png")

    ids = torch.from_numpy(np.where(raw == 255, 182, raw.astype(np.int64)))[None]
    seg = torch.cat([one_hot(ids, 183), edges_of(ids)], 1)  # the label boundaries stand in for instances
    with torch.no_grad():
        expected = (ref(seg) + 1) / 2
        module_out = ((loaded.module(seg) + 1) / 2).clamp(0, 1)
    assert expected.std() > 0.05
    labels = labels_from_image(loaded, tmp_path / "000000000139.png")
    assert torch.equal(labels, ids)
    got = synthesize(loaded, labels)
    assert torch.equal(got, module_out)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    assert np.array_equal(labels[0].numpy(), map_labels(raw, 182, True))  # as training reads it


def test_the_presets_hold_the_public_class_lists() -> None:
    for layout in LAYOUT_PRESETS.values():
        assert len(layout.classes) == layout.label_nc == len(set(layout.classes))
        assert len(set(layout.palette)) == layout.label_nc
    city = get_layout("cityscapes")
    assert city.semantic_nc == 36 and city.num_upsampling_layers == "more" and city.aspect_ratio == 2.0
    assert city.classes[:3] == ("unlabeled", "ego vehicle", "rectification border")
    assert city.classes[7] == "road" and city.classes[26] == "car" and city.classes[33] == "bicycle"
    assert city.palette[7] == (128, 64, 128) and city.palette[26] == (0, 0, 142)
    assert city.label_file.card() == {"shift": 0, "dontcare": []}
    assert get_layout("coco_stuff") is get_layout("coco-stuff")
    assert get_layout("coco-stuff").semantic_nc == 184
    assert get_layout("ade20k").semantic_nc == 151


def test_a_layout_the_checkpoint_does_not_have_is_a_clear_error(
    ade_official: tuple[RefGenerator, Path], tmp_path: Path
) -> None:
    pth = ade_official[1]
    message = (r"takes 151 label channels, but layout coco-stuff \(COCO-Stuff\) gives label_nc 182 \+ 1 "
               r"don't-care \+ 1 instance-edge channel = 184.*it fits --layout ade20k")
    with pytest.raises(ModelError, match=message):
        import_spade(pth, tmp_path, "x", layout="coco-stuff")
    with pytest.raises(ModelError, match=r"layout cityscapes \(Cityscapes\) gives label_nc 35 \+ 1 "
                                         r"instance-edge channel = 36"):
        import_spade(pth, tmp_path, "x", layout="cityscapes")
    with pytest.raises(ModelError, match=r"label_nc 151 is not layout ade20k's 150 classes"):
        import_spade(pth, tmp_path, "x", 151, layout="ade20k")
    with pytest.raises(ModelError, match=r"give label_nc .* or a dataset layout"):
        import_spade(pth, tmp_path, "x")
    code = main(["import", "spade", "--weights", str(pth), "--name", "x", "--dataset", "coco-stuff",
                 "--models-dir", str(tmp_path)])
    assert code == 2 and not (tmp_path / "x").exists()
    assert main(["import", "spade", "--weights", str(pth), "--name", "x", "--models-dir", str(tmp_path)]) == 2


def test_the_server_reads_an_ade20k_label_png_by_the_card(
    ade_official: tuple[RefGenerator, Path], tmp_path: Path
) -> None:
    """POST /v1/synthesize with the dataset's label file, no extra fields: the reference image."""
    import io

    from tests.server.conftest import live_server

    ref, pth = ade_official
    import_spade(pth, tmp_path / "models", "ade", layout="ade20k")
    raw = ade_label_file(seed=24)
    buf = io.BytesIO()
    Image.fromarray(raw, "L").save(buf, "PNG")
    shifted = torch.from_numpy(np.where(raw == 0, 150, raw.astype(np.int64) - 1))[None]
    with torch.no_grad():
        expected = (ref(one_hot(shifted, 151)) + 1) / 2
    with live_server(tmp_path / "models") as server:
        answer = server.client.post("/v1/synthesize", files={"labels": ("ADE_val.png", buf.getvalue())})
        assert answer.status_code == 200, answer.text
        detail = server.client.get("/v1/models/ade").json()
    assert detail["contract"]["label_file"] == {"shift": -1, "dontcare": [0, 255]}
    got = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"), np.float32) / 255
    assert (torch.from_numpy(got).permute(2, 0, 1) - expected[0]).abs().max() <= 1 / 255 + 1e-4
