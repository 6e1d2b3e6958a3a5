"""Augmentation keeps image and mask aligned and is a pure function of its seed; held-out splits are stratified."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defectbench.data import Sample
from defectbench.train.augment import AugmentParams, augment_pair, sample_rng
from defectbench.train.data import epoch_order, holdout_split


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.zeros((120, 90), dtype=np.float32)
    mask[10:40, 5:70] = 1
    mask[70:115, 60:85] = 1
    img = np.where(mask[..., None] > 0, 220, 30).astype(np.uint8).repeat(3, axis=2)
    img[..., 1] = rng.integers(0, 256, img.shape[:2])  # channel 1 is noise: catches channel mix-ups
    return img, mask


def test_geometry_keeps_image_and_mask_aligned() -> None:
    img, mask = _pair()
    params = AugmentParams(brightness=0.0, contrast=0.0)
    for i in range(20):
        a_img, a_mask = augment_pair(img, mask, 64, sample_rng(1, 0, i), params)
        assert a_img.shape == (64, 64, 3) and a_img.dtype == np.uint8
        assert a_mask.shape == (64, 64) and a_mask.dtype == np.float32
        agree = (a_img[..., 0] > 125) == (a_mask > 0.5)
        assert agree.mean() > 0.97


def test_augmentation_is_a_function_of_seed_epoch_index() -> None:
    img, mask = _pair()
    params = AugmentParams()
    a = augment_pair(img, mask, 64, sample_rng(3, 2, 5), params)
    b = augment_pair(img, mask, 64, sample_rng(3, 2, 5), params)
    c = augment_pair(img, mask, 64, sample_rng(3, 3, 5), params)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_photometric_changes_only_intensity() -> None:
    img, mask = _pair()
    params = AugmentParams(flip=False, rot90=False, crop_prob=0.0, brightness=0.2, contrast=0.3)
    a_img, a_mask = augment_pair(img, mask, 90, sample_rng(0, 0, 0), params)
    assert np.array_equal(a_mask > 0.5, augment_pair(img, mask, 90, sample_rng(0, 0, 0), AugmentParams(
        flip=False, rot90=False, crop_prob=0.0, brightness=0.0, contrast=0.0))[1] > 0.5)


def _samples() -> list[Sample]:
    return [Sample(f"{c}_{i}", Path(f"{c}_{i}.bmp"), Path(f"{c}_{i}.png"), c) for c in ("In", "Pa", "Sc") for i in range(60)]


def test_holdout_split_is_stratified_disjoint_and_seeded() -> None:
    samples = _samples()
    train, val = holdout_split(samples, 0.1, seed=0)
    assert len(val) == 18 and len(train) == 162
    assert {c: sum(s.defect_class == c for s in val) for c in ("In", "Pa", "Sc")} == {"In": 6, "Pa": 6, "Sc": 6}
    assert not {s.id for s in train} & {s.id for s in val}
    assert holdout_split(samples, 0.1, seed=0) == (train, val)
    assert {s.id for s in holdout_split(samples, 0.1, seed=1)[1]} != {s.id for s in val}


def test_epoch_order_is_a_seeded_permutation() -> None:
    a = epoch_order(50, seed=0, epoch=3)
    assert sorted(a) == list(range(50))
    assert a == epoch_order(50, seed=0, epoch=3)
    assert a != epoch_order(50, seed=0, epoch=4)
