"""Image folders: recursive discovery, corrupt files skipped and counted, transforms, resumable sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm.data import (
    IMAGE_EXTENSIONS,
    DataError,
    ImageFolder,
    ResumableSampler,
    find_images,
    load_training_image,
)
from tests.data.drawing import add_corrupt_files, draw_image, image_folder


def test_find_images_is_recursive_case_insensitive_and_counts_unreadable_files(tmp_path: Path) -> None:
    good = image_folder(tmp_path, 4)
    for ext in (".jpeg", ".BMP", ".webp", ".TIF", ".tiff", ".gif"):
        good.append(draw_image(tmp_path / "more" / f"x{ext}", 20, 24, 7))
    (tmp_path / "notes.txt").write_text("not an image, not counted")
    (tmp_path / ".hidden.png").write_bytes(b"editor junk")
    broken = add_corrupt_files(tmp_path, good[1])
    scan = find_images(tmp_path)
    assert scan.images == sorted([*good, broken["truncated"]])  # its header is fine: caught at load time
    assert sorted(p for p, _ in scan.skipped) == sorted([broken["junk"], broken["empty"]])
    assert all(reason for _, reason in scan.skipped)
    assert {p.suffix.lower() for p in scan.images} <= set(IMAGE_EXTENSIONS)


def test_empty_missing_and_all_corrupt_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere", 32)
    good = draw_image(tmp_path / "g.png", 20, 20, 0)
    bad = tmp_path / "bad"
    add_corrupt_files(bad, good)
    (bad / "truncated.png").unlink()
    with pytest.raises(DataError, match="all 2 image files are unreadable"):
        find_images(bad, "content folder")


def test_center_crop_items_are_rgb_floats_in_unit_range(tmp_path: Path) -> None:
    image_folder(tmp_path, 3, size=(48, 40))
    Image.new("L", (40, 44), 128).save(tmp_path / "gray.png")
    Image.new("RGBA", (44, 40), (10, 200, 30, 100)).save(tmp_path / "alpha.png")
    Image.new("P", (40, 40)).save(tmp_path / "palette.gif")
    ds = ImageFolder(tmp_path, 32)
    assert len(ds) == 6
    for i in range(len(ds)):
        img, replaced = ds[i]
        assert replaced == 0
        assert img.shape == (3, 32, 32) and img.dtype == torch.float32
        assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    # Resize(S) + CenterCrop(S): the centre of a 48×40 image resized to 38×32
    ref = Image.open(ds.paths[0]).convert("RGB").resize((38, 32), Image.BILINEAR).crop((3, 0, 35, 32))
    got = (ds[0][0] * 255).round().permute(1, 2, 0).to(torch.uint8).numpy()
    assert np.abs(got.astype(int) - np.asarray(ref).astype(int)).mean() < 3.0


def test_random_crops_keep_aspect_and_follow_the_item_seed(tmp_path: Path) -> None:
    draw_image(tmp_path / "wide.png", 96, 40, 1)
    ds = ImageFolder(tmp_path, 16, crop="random", load_size=20)  # 96×40 -> 48×20, crop 16×16
    a, b = ds[(0, 1)][0], ds[(0, 1)][0]
    assert a.shape == (3, 16, 16)
    assert torch.equal(a, b)  # same seed, same crop
    crops = {ds[(0, s)][0].sum().item() for s in range(8)}
    assert len(crops) > 1  # other seeds, other crops
    with pytest.raises(DataError, match="load size"):
        ImageFolder(tmp_path, 32, crop="random", load_size=16)


def test_an_item_that_fails_to_decode_is_replaced_and_counted(tmp_path: Path) -> None:
    good = image_folder(tmp_path, 2)
    broken = add_corrupt_files(tmp_path, good[-1])
    ds = ImageFolder(tmp_path, 24)
    i = ds.paths.index(broken["truncated"])
    img, replaced = ds[i]
    assert replaced == 1
    assert torch.equal(img, ds[(i + 1) % len(ds)][0])  # the next readable image, deterministically
    assert [p for p, _ in ds.failed] == [broken["truncated"]]
    assert len(ds.skipped) == 2


def test_all_items_failing_at_load_time_is_an_error(tmp_path: Path) -> None:
    good = draw_image(tmp_path / "g.png", 30, 30, 0)
    (tmp_path / "t.png").write_bytes(good.read_bytes()[:80])
    good.unlink()
    ds = ImageFolder(tmp_path, 16)
    with pytest.raises(DataError, match="could be decoded"):
        ds[0]


def test_sampler_is_seeded_shuffled_resumable_and_sharded() -> None:
    data = list(range(10))
    s = ResumableSampler(data, seed=3)
    s.set_epoch(0)
    first = list(s)
    indices = [i for i, _ in first]
    assert sorted(indices) == data and indices != data  # shuffled (pytorch/examples forgets to)
    assert first == list(ResumableSampler(data, seed=3))  # seeded
    s.set_epoch(1)
    assert [i for i, _ in s] != indices  # a new order each epoch
    s.set_epoch(0)
    s.start = 4
    assert list(s) == first[4:] and len(s) == 6  # resumes with the very next draw, same seeds
    ranks = [ResumableSampler(data, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    shards = [[i for i, _ in r] for r in ranks]
    assert sorted(shards[0] + shards[1]) == data
    seeds = [seed for r in ranks for _, seed in r]
    assert len(set(seeds)) == len(seeds)


def test_load_training_image(tmp_path: Path) -> None:
    path = draw_image(tmp_path / "s.png", 30, 20, 0)
    img = load_training_image(path)
    assert img.shape == (1, 3, 20, 30) and float(img.min()) >= 0 and float(img.max()) <= 1
    assert load_training_image(path, size=16).shape == (1, 3, 16, 24)
    with pytest.raises(DataError, match="not found"):
        load_training_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"bad\.png"):
        load_training_image(tmp_path / "bad.png")


def test_linked_folders_are_followed_once_and_hidden_folders_skipped(tmp_path: Path) -> None:
    image_folder(tmp_path / "real", 2)
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    draw_image(tmp_path / ".cache" / "thumb.png", 20, 20, 0)
    scan = find_images(tmp_path)
    assert len(scan.images) == 2 and not scan.skipped
