"""NRSD-MN and generic folder layouts, on small synthetic data the tests make."""

import numpy as np
import pytest

from defectbench.data import load_dataset
from defectbench.errors import DataError
from tests.conftest import write_png


def _pair(folder_img, folder_mask, stem, rng, img_ext=".png", mask_ext=".png", size=(24, 32)):
    img = rng.integers(0, 255, size, dtype=np.uint8)
    mask = np.zeros(size, np.uint8)
    mask[4:10, 5:20] = 255
    write_png(folder_img / f"{stem}{img_ext}", img)
    write_png(folder_mask / f"{stem}{mask_ext}", mask)


def test_nrsd_mcnet_layout(tmp_path, rng):
    root = tmp_path / "NRSD-MN"
    for i in range(3):
        _pair(root / "images" / "training", root / "annotations" / "training", f"tr{i}", rng, mask_ext=".jpg")
    for i in range(2):
        _pair(root / "images" / "validation", root / "annotations" / "validation", f"te{i}", rng)
    ds = load_dataset("nrsd", tmp_path)
    assert len(ds.split("train")) == 3 and len(ds.split("test")) == 2
    m = ds["tr0"].mask()
    assert m.shape == (24, 32) and m[5, 10] and not m[0, 0]


def test_nrsd_train_test_layout_with_subsets(tmp_path, rng):
    root = tmp_path / "NRSD-MN"
    for i in range(4):
        _pair(root / "train" / "images", root / "train" / "masks", f"a{i}", rng)
    _pair(root / "test" / "man-made" / "images", root / "test" / "man-made" / "masks", "m0", rng)
    _pair(root / "test" / "natural" / "images", root / "test" / "natural" / "masks", "n0", rng)
    ds = load_dataset("nrsd", tmp_path)
    assert [len(ds.split(s)) for s in ("train", "test")] == [4, 2]
    assert {s.defect_class for s in ds.split("test")} == {"man-made", "natural"}


def test_nrsd_missing_mask_names_the_image(tmp_path, rng):
    root = tmp_path / "NRSD-MN"
    _pair(root / "train" / "images", root / "train" / "masks", "ok", rng)
    write_png(root / "train" / "images" / "lonely.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="lonely.png"):
        load_dataset("nrsd", tmp_path)


def test_folder_dataset_and_its_splits(tmp_path, rng):
    for i in range(3):
        _pair(tmp_path / "flat" / "images", tmp_path / "flat" / "masks", f"f{i}", rng)
    ds = load_dataset(f"folder:{tmp_path / 'flat'}")
    assert len(ds) == 3 and ds.split_names() == ["all"]
    for split, n in (("train", 2), ("test", 1)):
        for i in range(n):
            _pair(tmp_path / "tt" / split / "images", tmp_path / "tt" / split / "masks", f"{split}{i}", rng)
    ds = load_dataset(f"folder:{tmp_path / 'tt'}")
    assert [len(ds.split("train")), len(ds.split("test"))] == [2, 1]


def test_unknown_split_and_dataset_are_clear(tmp_path, rng):
    _pair(tmp_path / "images", tmp_path / "masks", "x", rng)
    ds = load_dataset(f"folder:{tmp_path}")
    with pytest.raises(DataError, match="unknown split 'test'"):
        ds.split("test")
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_folder_good_images_form_the_defect_free_splits(tmp_path, rng):
    from defectbench.data.splits import free_splits

    for split, n in (("train", 2), ("test", 2)):
        for i in range(n):
            _pair(tmp_path / split / "images", tmp_path / split / "masks", f"{split}{i}", rng)
    for i in range(10):
        write_png(tmp_path / "good" / f"ok{i}.jpg", rng.integers(0, 255, (24, 32), dtype=np.uint8))
    ds = load_dataset(f"folder:{tmp_path}")
    free = ds.split("free")
    assert len(free) == 10 and all(s.defect_class == "Free" and s.mask_path is None for s in free)
    assert not free[0].mask().any() and free[0].mask().shape == (24, 32)
    parts = {k: [s.id for s in ds.split(k)] for k in ("free-train", "free-calib", "free-test")}
    assert parts == free_splits([s.id for s in free]) and [len(v) for v in parts.values()] == [5, 2, 3]
    assert len(ds.split("test")) == 2  # the good images are not in the defect test split
    (tmp_path / "good" / "ok0.jpg").rename(tmp_path / "good" / "test0.jpg")  # a stem used twice is refused
    with pytest.raises(DataError, match="duplicate image stems"):
        load_dataset(f"folder:{tmp_path}")
