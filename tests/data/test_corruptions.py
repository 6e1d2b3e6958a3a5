"""Test-time corruptions: deterministic per image, the severity they name, masks untouched, names checked."""

from __future__ import annotations

import numpy as np
import pytest

from defectbench.data.corruptions import KINDS, corrupt, corrupted_dataset, parse_corruption
from defectbench.errors import ConfigError


@pytest.fixture
def gray() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(80, 170, (64, 80), dtype=np.uint8)
    img[20:40, 30:50] = 220
    return img


def test_every_kind_is_deterministic_per_image_and_keeps_shape(gray):
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for kind, (_, lo, hi) in KINDS.items():
        name = f"{kind}-{(lo + hi) // 4 or lo}"
        for img in (gray, rgb):
            a, b = corrupt(img, name, "x_1"), corrupt(img, name, "x_1")
            assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b), name
            assert not np.array_equal(a, img), name


def test_salt_and_pepper_hits_the_named_share_of_pixels(gray):
    for severity in (10, 20):
        out = corrupt(gray, f"saltpepper-{severity}", "In_61")
        hit = (out != gray) | np.isin(out, (0, 255))
        share = float(np.mean(np.isin(out, (0, 255)) & (out != gray)))
        assert abs(np.mean(np.isin(out, (0, 255))) - severity / 100) < 0.02 + np.mean(gray == 255)
        assert abs(share - severity / 100) < 0.025 and hit.any()
    assert not np.array_equal(corrupt(gray, "saltpepper-10", "a"), corrupt(gray, "saltpepper-10", "b"))


def test_noise_blur_shift_contrast_and_jpeg_do_what_they_say(gray):
    noisy = corrupt(gray, "gaussnoise-15", "a").astype(float) - gray
    assert 13.0 < noisy.std() < 17.0 and abs(noisy.mean()) < 1.0
    blurred = corrupt(gray, "gaussblur-2", "a")
    assert blurred.astype(float).std() < gray.astype(float).std()
    assert np.array_equal(corrupt(gray, "darker-40", "a"), np.clip(gray.astype(int) - 40, 0, 255))
    assert np.array_equal(corrupt(gray, "brighter-40", "a"), np.clip(gray.astype(int) + 40, 0, 255))
    low = corrupt(gray, "lowcontrast-50", "a").astype(float)
    assert abs(low.std() - gray.std() / 2) < 0.6 and abs(low.mean() - gray.mean()) < 0.6
    assert np.abs(corrupt(gray, "jpeg-10", "a").astype(int) - gray).mean() > np.abs(
        corrupt(gray, "jpeg-90", "a").astype(int) - gray).mean()


@pytest.mark.parametrize("name, message", [("fog-3", "unknown corruption"), ("saltpepper", "unknown corruption"),
                                           ("saltpepper-0", "severity 0 does not exist"),
                                           ("jpeg-100", "it must be 1..95"), ("SaltPepper-10", "unknown")])
def test_unknown_names_and_severities_are_one_line(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_corruption(name)


def test_corrupted_dataset_writes_once_and_leaves_masks_and_other_splits(tmp_path):
    from tests.bench.synthetic import make_dataset
    from defectbench.data.folder import load as load_folder

    ds = load_folder(make_dataset(tmp_path / "ds", 2, 3))
    bad = corrupted_dataset(ds, "test", "jpeg-10", tmp_path / "c")
    test, clean = bad.split("test"), ds.split("test")
    assert [s.mask_path for s in test] == [s.mask_path for s in clean]
    assert all(s.image_path.parent == tmp_path / "c" for s in test)
    assert [s.image_path for s in bad.split("train")] == [s.image_path for s in ds.split("train")]
    assert np.array_equal(test[0].image(), corrupt(clean[0].image(), "jpeg-10", clean[0].id))
    stamp = test[0].image_path.stat().st_mtime_ns
    corrupted_dataset(ds, "test", "jpeg-10", tmp_path / "c")
    assert test[0].image_path.stat().st_mtime_ns == stamp  # cached, not rewritten
