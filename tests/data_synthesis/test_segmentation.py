"""Segmentation-pair datasets: every layout loads, every bad label map is rejected with the right message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stylenorm.data.images import DataError
from stylenorm.data.scenes import PALETTE, colorize
from stylenorm.data.segmentation import (
    PairedTransform,
    SegmentationDataset,
    collate_semantic,
    colors_to_labels,
    instance_edges,
    open_segmentation,
    semantic_input,
    to_one_hot,
)
from stylenorm.errors import ShapeError, SpecError
from stylenorm.nets.spade import SPADEGenerator


def _save(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _blocks(h: int, w: int, values: tuple[int, int, int, int], dtype=np.uint8) -> np.ndarray:
    """Four quadrants with the given values (top-left, top-right, bottom-left, bottom-right)."""
    a = np.empty((h, w), dtype=dtype)
    a[: h // 2, : w // 2], a[: h // 2, w // 2 :] = values[0], values[1]
    a[h // 2 :, : w // 2], a[h // 2 :, w // 2 :] = values[2], values[3]
    return a


# ------------------------------------------------------------------------------------------ tensors


def test_to_one_hot_matches_a_loop_and_routes_dontcare() -> None:
    labels = torch.tensor([[[0, 2], [1, 2]], [[3, 3], [0, 1]]])
    out = to_one_hot(labels, 4)
    assert out.shape == (2, 4, 2, 2) and out.dtype == torch.float32
    for n in range(2):
        for i in range(2):
            for j in range(2):
                expected = torch.zeros(4)
                expected[labels[n, i, j]] = 1
                assert torch.equal(out[n, :, i, j], expected)
    dont = torch.tensor([[[0, 4], [255, 1]]])  # label_nc and 255 are both don't-care
    d = to_one_hot(dont[:, None], 4, dontcare=True)
    assert d.shape == (1, 5, 2, 2)
    assert d[0, 4].tolist() == [[0, 1], [1, 0]] and d.sum(1).eq(1).all()


def test_to_one_hot_never_indexes_out_of_bounds_silently() -> None:
    with pytest.raises(
        ShapeError, match=r"label value\(s\) \[7\] out of range for label_nc=4: valid are 0\.\.3"
    ):
        to_one_hot(torch.tensor([[[0, 7]]]), 4)
    with pytest.raises(ShapeError, match="255/label_nc are don't-care only with dontcare=True"):
        to_one_hot(torch.tensor([[[255]]]), 4)
    with pytest.raises(ShapeError, match=r"\[-1\]"):
        to_one_hot(torch.tensor([[[-1]]]), 4, dontcare=True)
    with pytest.raises(ShapeError, match="integer tensor"):
        to_one_hot(torch.zeros(1, 2, 2), 4)
    with pytest.raises(ShapeError, match=r"\(N, H, W\)"):
        to_one_hot(torch.zeros(2, 2, dtype=torch.long), 4)


def test_instance_edges_mark_both_sides_of_every_boundary() -> None:
    ids = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]]])
    edges = instance_edges(ids)
    expected = torch.tensor([[[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]]]).float()
    assert edges.shape == (1, 1, 3, 4)
    assert torch.equal(edges[:, 0], expected)
    assert instance_edges(torch.full((2, 1, 3, 3), 5)).sum() == 0


def test_semantic_input_puts_the_edge_channel_last() -> None:
    labels = torch.tensor([[[0, 1], [1, 1]]])
    edges = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    sem = semantic_input(labels, 2, contain_dontcare=True, edges=edges)
    assert sem.shape == (1, 4, 2, 2)
    assert torch.equal(sem[:, 3:], edges) and torch.equal(sem[:, :3], to_one_hot(labels, 2, True))
    with pytest.raises(ShapeError, match="edges must be"):
        semantic_input(labels, 2, edges=torch.zeros(1, 1, 3, 3))


# ------------------------------------------------------------------------------------------ layouts


def _ade(root: Path, split: str, tag: str, labels: np.ndarray, index: int = 1) -> None:
    name = f"ADE_{tag}_{index:08d}"
    base = root / "ADEChallengeData2016"
    h, w = labels.shape
    _save(base / "images" / split / f"{name}.jpg", _photo(h, w, index), quality=95)
    _save(base / "annotations" / split / f"{name}.png", labels)


def test_ade20k_shifts_labels_and_makes_other_the_dontcare_channel(tmp_path: Path) -> None:
    _ade(tmp_path, "training", "train", _blocks(8, 12, (0, 1, 150, 7)), 1)
    _ade(tmp_path, "training", "train", _blocks(8, 12, (2, 2, 2, 2)), 2)
    _ade(tmp_path, "validation", "val", _blocks(8, 12, (3, 3, 3, 3)), 1)
    ds = SegmentationDataset.ade20k(tmp_path, "train")
    assert len(ds) == 2 and ds.label_nc == 150 and ds.semantic_nc == 151 and not ds.use_instance
    item = ds[0]
    assert item["label"].dtype == torch.int64 and item["image"].shape == (3, 8, 12)
    assert item["label"][0, 0] == 150 and item["label"][0, -1] == 0  # 0 "other" → don't-care, 1 → 0
    assert item["label"][-1, 0] == 149 and item["label"][-1, -1] == 6
    assert item["path"].endswith("ADE_train_00000001.jpg")
    val = open_segmentation("ade20k", tmp_path, phase="val")
    assert len(val) == 1 and int(val[0]["label"].max()) == 2


def test_ade20k_value_above_150_is_named_with_its_file(tmp_path: Path) -> None:
    _ade(tmp_path, "training", "train", _blocks(8, 8, (1, 151, 151, 200)))
    ds = SegmentationDataset.ade20k(tmp_path)
    with pytest.raises(
        DataError, match=r"ADE_train_00000001\.png: label value\(s\) 151 \(32 px\), 200 \(16 px\)"
    ) as e:
        ds[0]
    assert "valid range 1..150" in str(e.value) and "label_nc=150" in str(e.value)


def _city(root: Path, split: str, name: str, labels: np.ndarray, instances: np.ndarray | None) -> None:
    city = name.split("_")[0]
    h, w = labels.shape
    _save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", _photo(h, w))
    _save(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", labels)
    _save(root / "gtFine" / split / city / f"{name}_gtFine_color.png", _photo(h, w))  # ignored
    if instances is not None:
        _save(root / "gtFine" / split / city / f"{name}_gtFine_instanceIds.png", instances)


def test_cityscapes_pairs_by_name_and_turns_16_bit_instances_into_edges(tmp_path: Path) -> None:
    inst = _blocks(8, 16, (26001, 26002, 7, 7), dtype=np.uint16)
    _city(tmp_path, "train", "aachen_000000_000019", _blocks(8, 16, (26, 26, 7, 7)), inst)
    _city(tmp_path, "train", "bremen_000001_000002", _blocks(8, 16, (33, 0, 1, 2)), inst)
    ds = SegmentationDataset.cityscapes(tmp_path, "train")
    assert len(ds) == 2 and ds.semantic_nc == 36
    item = ds[0]
    assert item["instance"].shape == (8, 16) and int(item["instance"].max()) == 26002
    edges = item["edges"][0]
    assert edges.shape == (8, 16)
    assert edges[0, 7] == 1 and edges[0, 8] == 1 and edges[0, 0] == 0  # the two cars meet at column 8
    assert edges[3, 0] == 1 and edges[4, 0] == 1 and edges[-1, 0] == 0  # car / road boundary
    assert "bremen" in ds[1]["path"] and int(ds[1]["label"].max()) == 33
    no_inst = SegmentationDataset.cityscapes(tmp_path, "train", use_instance=False)
    assert no_inst.semantic_nc == 35 and "edges" not in no_inst[0]


def test_cityscapes_rejects_255_because_it_has_no_dontcare_channel(tmp_path: Path) -> None:
    _city(tmp_path, "val", "lindau_000000_000019", _blocks(8, 8, (7, 255, 7, 7)), None)
    ds = SegmentationDataset.cityscapes(tmp_path, "val", use_instance=False)
    with pytest.raises(DataError, match=r"don't-care value\(s\) \[255\] but contain_dontcare is off"):
        ds[0]


def test_coco_stuff_maps_255_to_dontcare_and_needs_instance_maps(tmp_path: Path) -> None:
    for i, values in enumerate([(0, 181, 255, 5), (9, 9, 9, 9)]):
        name = f"000000{i:06d}"
        _save(tmp_path / "train_img" / f"{name}.jpg", _photo(8, 8, i), quality=95)
        _save(tmp_path / "train_label" / f"{name}.png", _blocks(8, 8, values))
        _save(tmp_path / "train_inst" / f"{name}.png", _blocks(8, 8, (1, 2, 3, 3)))
    ds = SegmentationDataset.coco_stuff(tmp_path, "train")
    assert len(ds) == 2 and ds.semantic_nc == 184
    label = ds[0]["label"]
    assert label[-1, 0] == 182 and label[0, -1] == 181 and label[0, 0] == 0
    batch = collate_semantic([ds[0], ds[1]], ds.label_nc, ds.contain_dontcare)
    assert batch["semantics"].shape == (2, 184, 8, 8)
    assert batch["semantics"][0, 182, -1, 0] == 1 and batch["semantics"][:, 183].sum() > 0
    (tmp_path / "train_inst" / "000000000001.png").unlink()
    with pytest.raises(DataError, match=r"1 label map\(s\) without an instance map \(000000000001\.png\)"):
        SegmentationDataset.coco_stuff(tmp_path, "train")
    assert len(SegmentationDataset.coco_stuff(tmp_path, "train", use_instance=False)) == 2


def _custom(root: Path, names: list[str], labels: np.ndarray, ext: str = ".png") -> tuple[Path, Path]:
    for i, name in enumerate(names):
        _save(root / "labels" / f"{name}.png", labels)
        _save(root / "images" / f"{name}{ext}", _photo(*labels.shape[:2], i))
    return root / "labels", root / "images"


def test_custom_layout_pairs_by_stem_in_natural_order(tmp_path: Path) -> None:
    label_dir, image_dir = _custom(tmp_path, ["img10", "img2", "img1"], _blocks(6, 6, (0, 1, 2, 3)), ".jpg")
    inst_dir = tmp_path / "inst"
    for name in ("img10", "img2", "img1"):
        _save(inst_dir / f"{name}.png", _blocks(6, 6, (1, 1, 2, 2)))
    ds = SegmentationDataset.custom(label_dir, image_dir, label_nc=4, instance_dir=inst_dir)
    assert [Path(p.image).stem for p in ds.pairs] == ["img1", "img2", "img10"]
    assert ds.semantic_nc == 5 and ds[2]["edges"].shape == (1, 6, 6)


def test_custom_layout_reports_unpaired_files(tmp_path: Path) -> None:
    label_dir, image_dir = _custom(tmp_path, ["a", "b"], _blocks(6, 6, (0, 1, 2, 3)))
    _save(label_dir / "c.png", _blocks(6, 6, (0, 0, 0, 0)))
    _save(image_dir / "d.png", _photo(6, 6))
    with pytest.raises(
        DataError,
        match=r"1 label map\(s\) without a matching image \(c\.png\); "
        r"1 image\(s\) without a matching label map \(d\.png\)",
    ):
        SegmentationDataset.custom(label_dir, image_dir, label_nc=4)
    with pytest.raises(DataError, match="does not exist"):
        SegmentationDataset.custom(tmp_path / "nope", image_dir, label_nc=4)
    with pytest.raises(SpecError, match="unknown dataset layout 'voc'"):
        open_segmentation("voc", tmp_path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "too_large",
            r"label value\(s\) 5 \(9 px\), 9 \(9 px\) outside the valid range 0\.\.3 for label_nc=4",
        ),
        ("colour", r"colour-coded RGB image; an index map is expected"),
        ("jpeg", r"is a JPEG: lossy compression changes class ids"),
        ("size", r"label map .*x\.png is 6×6 \(H×W\) but its image .*x\.png is 6×8"),
        ("float", r"has image mode 'F'"),
        ("dontcare", r"don't-care value\(s\) \[255\] but contain_dontcare is off"),
    ],
)
def test_bad_label_maps_are_rejected_with_clear_messages(tmp_path: Path, case: str, message: str) -> None:
    labels = _blocks(6, 6, (0, 1, 2, 3))
    label_dir, image_dir = tmp_path / "labels", tmp_path / "images"
    _save(image_dir / "x.png", _photo(6, 8 if case == "size" else 6))
    if case == "too_large":
        _save(label_dir / "x.png", _blocks(6, 6, (0, 5, 9, 1)))
    elif case == "colour":
        _save(
            label_dir / "x.png",
            colorize(torch.from_numpy(labels).long()).mul(255).byte().permute(1, 2, 0).numpy(),
        )
    elif case == "jpeg":
        _save(label_dir / "x.jpg", labels)
    elif case == "float":
        _save(label_dir / "x.tif", labels.astype(np.float32))
    elif case == "dontcare":
        _save(label_dir / "x.png", _blocks(6, 6, (0, 255, 1, 1)))
    else:
        _save(label_dir / "x.png", labels)
    ds = SegmentationDataset.custom(label_dir, image_dir, label_nc=4)
    with pytest.raises(DataError, match=message) as e:
        ds[0]
    assert "x." in str(e.value)  # the file is named


def test_grey_rgb_palette_and_16_bit_label_maps_are_accepted(tmp_path: Path) -> None:
    labels = _blocks(6, 6, (0, 1, 2, 3))
    image_dir = tmp_path / "images"
    _save(image_dir / "a.png", _photo(6, 6))
    grey_rgb = np.repeat(labels[..., None], 3, axis=2)
    _save(tmp_path / "rgb" / "a.png", grey_rgb)
    pal = Image.frombytes("P", (6, 6), labels.tobytes())  # indices 0..3 drawn with the scene palette
    pal.putpalette([v for colour in PALETTE for v in colour])
    (tmp_path / "pal").mkdir()
    pal.save(tmp_path / "pal" / "a.png")
    _save(tmp_path / "wide" / "a.png", labels.astype(np.uint16))
    for folder in ("rgb", "pal", "wide"):
        ds = SegmentationDataset.custom(tmp_path / folder, image_dir, label_nc=4)
        assert torch.equal(ds[0]["label"], torch.from_numpy(labels).long()), folder
    dont = SegmentationDataset.custom(tmp_path / "rgb", image_dir, label_nc=3, contain_dontcare=True)
    assert int(dont[0]["label"].max()) == 3  # the value label_nc is don't-care


def test_colors_to_labels_round_trips_the_palette_and_names_unknown_colours() -> None:
    labels = torch.tensor([[0, 1, 2], [3, 4, 5]])
    rgb = (colorize(labels) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(colors_to_labels(rgb, PALETTE), labels.numpy())
    assert np.array_equal(colors_to_labels(Image.fromarray(rgb), PALETTE), labels.numpy())
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(DataError, match=r"colours not in the palette: \(1, 2, 3\) × 1"):
        colors_to_labels(rgb, PALETTE)


# ------------------------------------------------------------------------------------------ transforms


def _painted(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    label = torch.from_numpy(_blocks(h, w, (0, 1, 2, 3))).long()
    label[: h // 4, : w // 4] = 5  # breaks the symmetry so flips are visible
    instance = label * 10 + 1
    return label, colorize(label), instance


def test_paired_crop_and_flip_keep_label_image_and_instances_aligned() -> None:
    label, image, instance = _painted(24, 32)
    t = PairedTransform("crop", crop_size=16, flip=True)
    flips = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        lab, img, ins = t(label, image, instance, generator=g)
        assert lab.shape == (16, 16) and img.shape == (3, 16, 16)
        assert torch.equal(colorize(lab), img) and torch.equal(ins, lab * 10 + 1)
        flips += int(
            not any(torch.equal(lab, label[i : i + 16, j : j + 16]) for i in range(9) for j in range(17))
        )
    assert 0 < flips < 8  # some draws flipped, some did not
    again = t(label, image, instance, generator=torch.Generator().manual_seed(3))
    first = t(label, image, instance, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(again, first, strict=True))


def test_resizes_use_nearest_for_labels_and_keep_regions_aligned() -> None:
    label, image, _ = _painted(16, 16)
    t = PairedTransform("resize_and_crop", load_size=40, crop_size=32, flip=False)
    lab, img, ins = t(label, image, None, generator=torch.Generator().manual_seed(0))
    assert lab.shape == (32, 32) and ins is None
    assert set(torch.unique(lab).tolist()) <= {0, 1, 2, 3, 5}  # no interpolated label values
    interior = torch.ones_like(lab, dtype=torch.bool)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            interior &= torch.roll(lab, (dy, dx), (0, 1)) == lab
    interior[:3], interior[-3:], interior[:, :3], interior[:, -3:] = False, False, False, False
    assert interior.sum() > 150
    assert (colorize(lab) - img).abs()[:, interior].max() < 0.03
    fixed = PairedTransform("fixed", crop_size=32, aspect_ratio=2.0, flip=False)
    assert fixed(label, image)[0].shape == (16, 32)
    width = PairedTransform("scale_width_and_crop", load_size=24, crop_size=12, flip=False)
    assert width(label[:8], image[:, :8])[0].shape == (12, 12)
    with pytest.raises(DataError, match="smaller than crop_size 16"):
        PairedTransform("crop", crop_size=16)(label[:8], image[:, :8])
    with pytest.raises(SpecError, match="preprocess must be one of"):
        PairedTransform("zoom")
    with pytest.raises(SpecError, match="load_size 8 must be ≥ crop_size 16"):
        PairedTransform("resize_and_crop", load_size=8, crop_size=16)


def test_a_loader_batch_feeds_the_generator(tmp_path: Path) -> None:
    label_dir, image_dir = _custom(tmp_path, ["a", "b", "c"], _blocks(40, 40, (0, 1, 2, 3)))
    ds = SegmentationDataset.custom(
        label_dir, image_dir, label_nc=4, transform=PairedTransform(load_size=36, crop_size=32)
    )
    loader = DataLoader(ds, batch_size=2, collate_fn=lambda b: collate_semantic(b, 4, False))
    batch = next(iter(loader))
    assert batch["semantics"].shape == (2, 4, 32, 32) and batch["image"].shape == (2, 3, 32, 32)
    g = SPADEGenerator(4, ngf=4, crop_size=32, hidden=8)
    assert g(batch["semantics"]).shape == (2, 3, 32, 32)
