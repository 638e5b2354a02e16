"""Synthetic outdoor scenes: deterministic, in range, plausible, and written in the custom layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm.data.scenes import (
    PALETTE,
    SCENE_CLASSES,
    SyntheticScenes,
    colorize,
    make_scene,
    scene_seed,
    write_scenes,
)
from stylenorm.data.segmentation import SegmentationDataset
from stylenorm.errors import SpecError

SKY, WATER, GRASS, ROCK, SAND, TREE = range(6)


def test_scenes_are_deterministic_per_seed_and_differ_between_seeds() -> None:
    labels, image = make_scene(48, seed=7)
    labels2, image2 = make_scene(48, seed=7)
    assert torch.equal(labels, labels2) and torch.equal(image, image2)
    other, other_image = make_scene(48, seed=8)
    assert not torch.equal(labels, other) and not torch.equal(image, other_image)


@pytest.mark.parametrize("size", [32, (40, 64)])
def test_labels_in_range_and_images_in_unit_range(size: int | tuple[int, int]) -> None:
    h, w = (size, size) if isinstance(size, int) else size
    for seed in range(12):
        labels, image = make_scene(size, seed)
        assert labels.shape == (h, w) and labels.dtype == torch.int64
        assert int(labels.min()) >= 0 and int(labels.max()) < len(SCENE_CLASSES)
        assert image.shape == (3, h, w) and image.dtype == torch.float32
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_layout_is_plausible_sky_on_top_ground_below() -> None:
    seen = set()
    for seed in range(20):
        labels, _ = make_scene(64, seed)
        top, bottom = labels[:3], labels[-3:]
        assert (top == SKY).float().mean() > 0.9  # trees may poke into the sky
        assert (bottom == SKY).sum() == 0 and (bottom == WATER).float().mean() < 0.9
        rows_with_sky = (labels == SKY).any(dim=1).nonzero().flatten()
        assert int(rows_with_sky.max()) < 48  # no sky in the lower quarter
        assert len(torch.unique(labels)) >= 3
        seen |= set(torch.unique(labels).tolist())
    assert seen == set(range(len(SCENE_CLASSES)))  # every class shows up somewhere


def test_each_class_is_painted_in_its_own_colour() -> None:
    sums = {c: torch.zeros(3) for c in range(6)}
    counts = dict.fromkeys(range(6), 0)
    for seed in range(16):
        labels, image = make_scene(64, seed)
        for c in range(6):
            mask = labels == c
            sums[c] += image[:, mask].sum(dim=1)
            counts[c] += int(mask.sum())
    mean = {c: sums[c] / counts[c] for c in range(6)}
    r, g, b = 0, 1, 2
    assert mean[SKY][b] > mean[SKY][r] and mean[WATER][b] > mean[WATER][r]
    assert mean[GRASS][g] > mean[GRASS][r] and mean[GRASS][g] > mean[GRASS][b]
    assert mean[SAND][r] > mean[SAND][b] and mean[SAND].mean() > mean[GRASS].mean()
    assert mean[TREE].mean() < mean[GRASS].mean()  # foliage darker than grass
    assert abs(float(mean[ROCK][r] - mean[ROCK][g])) < 0.1  # greyish


def test_textures_vary_inside_regions() -> None:
    labels, image = make_scene(64, seed=3)
    for c in torch.unique(labels).tolist():
        mask = labels == c
        if int(mask.sum()) > 30:
            assert float(image[:, mask].std(dim=1).max()) > 0.005, SCENE_CLASSES[c]


def test_dataset_items_and_seeds() -> None:
    ds = SyntheticScenes(5, size=32, seed=11)
    assert len(ds) == 5 and ds.num_classes == 6
    item = ds[3]
    labels, image = make_scene(32, scene_seed(11, 3))
    assert torch.equal(item["label"], labels) and torch.equal(item["image"], image)
    assert torch.equal(ds[-1]["label"], ds[4]["label"])
    assert not torch.equal(ds[0]["label"], SyntheticScenes(5, size=32, seed=12)[0]["label"])
    assert len({scene_seed(s, i) for s in range(4) for i in range(50)}) == 200
    with pytest.raises(IndexError):
        ds[5]


def test_colorize_and_bad_arguments() -> None:
    labels = torch.tensor([[0, 5], [2, 3]])
    rgb = colorize(labels)
    assert rgb.shape == (3, 2, 2)
    assert torch.allclose(rgb[:, 0, 1], torch.tensor(PALETTE[5]) / 255.0)
    assert colorize(labels[None]).shape == (1, 3, 2, 2)
    with pytest.raises(SpecError, match=r"0\.\.5"):
        colorize(torch.tensor([[6]]))
    with pytest.raises(SpecError, match="size"):
        make_scene(4, 0)
    with pytest.raises(SpecError, match="seed"):
        make_scene(32, -1)


def test_write_scenes_gives_a_custom_layout_dataset(tmp_path) -> None:
    root = write_scenes(tmp_path / "scenes", n=3, size=32, seed=5)
    meta = json.loads((root / "classes.json").read_text())
    assert meta["classes"] == list(SCENE_CLASSES) and meta["label_nc"] == 6
    assert sorted(p.name for p in (root / "labels").iterdir()) == [f"scene_0000{i}.png" for i in range(3)]
    assert Image.open(root / "labels" / "scene_00000.png").mode == "L"
    ds = SegmentationDataset.custom(root / "labels", root / "images", label_nc=6)
    expected = SyntheticScenes(3, size=32, seed=5)
    for i in range(3):
        item = ds[i]
        assert torch.equal(item["label"], expected[i]["label"])
        assert (item["image"] - expected[i]["image"]).abs().max() <= 1 / 255 + 1e-6
    assert np.array(Image.open(root / "images" / "scene_00002.png")).shape == (32, 32, 3)
