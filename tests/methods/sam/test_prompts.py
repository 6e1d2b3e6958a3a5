"""Prompt placement on real SD-saliency-900 / MT masks and synthetic ones (checked against SciPy, not OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as nd

from defectbench.errors import ConfigError
from defectbench.methods.sam.prompts import (
    MODES,
    border_distance,
    check_jitter,
    check_k,
    check_mode,
    check_threshold,
    components,
    image_rng,
    interior_point,
    map_regions,
    next_click,
    region_prompts,
    threshold_map,
    tight_box,
)

from tests.conftest import MT, SD900, needs_mt, needs_sd900

EIGHT = np.ones((3, 3), bool)


def _mask(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 128


def _real_masks() -> list[np.ndarray]:
    out = []
    if SD900 is not None and SD900.is_dir():
        out += [_mask(SD900 / "Ground truth" / f"In_{i}.png") for i in (1, 105, 122, 141)]
    if MT is not None and MT.is_dir():
        out += [_mask(p) for p in sorted((MT / "MT_Blowhole" / "Imgs").glob("exp5_num_291077.png"))]
        out += [_mask(p) for p in sorted((MT / "MT_Crack" / "Imgs").glob("*.png"))[:2]]
    return out


def _reference_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return nd.label(mask, EIGHT)


def _edt(region: np.ndarray) -> np.ndarray:
    """SciPy's exact Euclidean distance to the nearest outside pixel (image edge = outside)."""
    return nd.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


@pytest.fixture(scope="module")
def real_masks():
    masks = _real_masks()
    if not masks:
        pytest.skip("real datasets not found")
    return masks


def test_points_lie_inside_each_region_and_farthest_from_its_border(real_masks):
    checked = 0
    for mask in real_masks:
        labels, n = _reference_components(mask)
        prompts = region_prompts(mask, "point-per-region")
        assert len(prompts) == n  # one prompt per connected component
        for p in prompts:
            x, y = (int(v) for v in p.points[0])
            assert p.labels.tolist() == [1]
            assert p.region[y, x]  # inside its region
            lab = labels[y, x]
            assert np.array_equal(p.region, labels == lab)
            d = _edt(labels == lab)
            assert d[y, x] == pytest.approx(d.max(), abs=1e-3)  # and (one of) its farthest pixels from the border
            checked += 1
    assert checked >= 10


def test_boxes_equal_the_components_bounds_and_per_region_counts(real_masks):
    for mask in real_masks:
        labels, n = _reference_components(mask)
        bounds = {}
        for i, sl in enumerate(nd.find_objects(labels), start=1):
            bounds[i] = [sl[1].start, sl[0].start, sl[1].stop - 1, sl[0].stop - 1]
        boxes = region_prompts(mask, "box-per-region")
        assert len(boxes) == n
        got = sorted(p.box.astype(int).tolist() for p in boxes)
        assert got == sorted(bounds.values())
        # the largest comes first in the -largest modes
        areas = np.bincount(labels.ravel())[1:]
        big = int(np.argmax(areas)) + 1
        (largest,) = region_prompts(mask, "box-largest")
        assert largest.box.astype(int).tolist() == bounds[big]
        (pl,) = region_prompts(mask, "point-largest")
        assert labels[int(pl.points[0, 1]), int(pl.points[0, 0])] == big
        (everything,) = region_prompts(mask, "box-all")
        rows, cols = np.nonzero(mask)
        assert everything.box.astype(int).tolist() == [cols.min(), rows.min(), cols.max(), rows.max()]
        assert everything.region is None


def test_synthetic_shapes():
    m = np.zeros((40, 60), bool)
    m[5:16, 10:31] = True  # 11 x 21 rectangle: centre row 10, columns 15..25 tie -> first in raster order
    m[30:33, 50:53] = True
    assert [c.sum() for c in components(m)] == [231, 9]
    assert interior_point(components(m)[0]).tolist() == [15.0, 10.0]
    assert tight_box(m[:20]).tolist() == [10, 5, 30, 15]
    # the image edge counts as border: a region filling the left edge has its point off the edge
    e = np.zeros((20, 20), bool)
    e[:, :5] = True
    assert border_distance(e)[:, 0].max() == 1.0 and interior_point(e)[0] == 2.0
    assert components(m, min_area=10)[0].sum() == 231 and len(components(m, min_area=10)) == 1
    assert region_prompts(np.zeros((8, 8), bool), "box-all") == []


def test_jitter_is_seeded_and_bounded(real_masks):
    mask = real_masks[0]
    base = region_prompts(mask, "box-per-region")
    a = region_prompts(mask, "box-per-region", 0.2, image_rng(3, "In_1"))
    b = region_prompts(mask, "box-per-region", 0.2, image_rng(3, "In_1"))
    c = region_prompts(mask, "box-per-region", 0.2, image_rng(4, "In_1"))
    assert all(np.array_equal(p.box, q.box) for p, q in zip(a, b))
    assert any(not np.array_equal(p.box, q.box) for p, q in zip(a, c))
    h, w = mask.shape
    for p0, p in zip(base, a):
        bw, bh = p0.box[2] - p0.box[0] + 1, p0.box[3] - p0.box[1] + 1
        lim = np.array([bw, bh, bw, bh]) * 0.2 + 1e-4
        assert np.all(np.abs(p.box - p0.box) <= lim) or np.any(p.box in (0, w - 1, h - 1))
        assert 0 <= p.box[0] <= p.box[2] <= w - 1 and 0 <= p.box[1] <= p.box[3] <= h - 1
    moved = 0
    for seed in range(20):
        pts = region_prompts(mask, "point-per-region", 0.3, image_rng(seed, "x"))
        for p0, p in zip(region_prompts(mask, "point-per-region"), pts):
            bw = p0.region.any(0).sum()
            bh = p0.region.any(1).sum()
            d = np.abs(p.points[0] - p0.points[0])
            assert d[0] <= round(0.3 * bw) + 1e-6 and d[1] <= round(0.3 * bh) + 1e-6
            moved += int(d.any())
    assert moved > 0
    assert all(np.array_equal(p.box, q.box) for p, q in zip(base, region_prompts(mask, "box-per-region", 0.0)))


def test_next_click_goes_to_the_largest_error_region():
    gt = np.zeros((50, 50), bool)
    gt[5:25, 5:25] = True  # 400 px
    gt[40:45, 40:45] = True  # 25 px, missed
    pred = np.zeros_like(gt)
    pred[5:25, 5:15] = True  # misses 200 px of the square
    pred[30:35, 0:10] = True  # 50 px false detection
    (x, y), label = next_click(pred, gt)
    assert label == 1 and gt[int(y), int(x)] and not pred[int(y), int(x)]
    missed = gt & ~pred
    biggest = components(missed)[0]
    assert biggest[int(y), int(x)] and _edt(biggest)[int(y), int(x)] == pytest.approx(_edt(biggest).max())
    # once the square is found, the false detection is the largest error: a negative point in it
    pred[5:25, 5:25] = True
    (x, y), label = next_click(pred, gt)
    assert label == 0 and 30 <= y < 35 and 0 <= x < 10
    assert next_click(gt, gt) is None


def test_map_regions_threshold_and_area_rules():
    sal = np.zeros((100, 100), np.float32)
    sal[10:30, 10:30] = 0.9
    sal[60:62, 60:62] = 0.8  # 4 px: below 0.0005 * 10000 = 5 px
    sal[70:80, 70:80] = 0.4  # below 0.5
    r = map_regions(sal, 0.5, 0.0005)
    assert r.sum() == 400 and not r[60, 60] and not r[75, 75]
    assert map_regions(sal, 0.3, 0.0).sum() == 400 + 4 + 100
    assert map_regions(sal, "otsu", 0.0)[75, 75] or map_regions(sal, "otsu", 0.0)[15, 15]
    assert threshold_map(sal, "adaptive").sum() == 504  # 2 x mean (0.08) keeps every non-zero pixel
    assert not map_regions(np.zeros((20, 20), np.float32), "otsu").any()


def test_bad_inputs_are_one_line_config_errors():
    assert check_mode("box-all") == "box-all" and "interactive" in MODES
    for fn, bad in ((check_mode, "box-some"), (check_jitter, 1.0), (check_jitter, -0.1), (check_jitter, "x"),
                    (check_k, 0), (check_k, 2.5), (check_threshold, 1.5), (check_threshold, "median")):
        with pytest.raises(ConfigError) as exc:
            fn(bad)
        assert "\n" not in str(exc.value)


@needs_sd900
@needs_mt
def test_defect_free_mask_gives_no_prompt():
    free = _mask(sorted((MT / "MT_Free" / "Imgs").glob("*.png"))[0])
    assert not free.any()
    assert all(region_prompts(free, m) == [] for m in MODES if m != "interactive")
