"""The anomaly field's numbers (image AUROC, pixel AUROC, AUPRO) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from defectbench.metrics.anomaly import AnomalyAccumulator, area_to_limit


def _example(rng: np.random.Generator, n: int = 8, levels: int = 6) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Small maps with few levels (many ties) and masks with several regions, some images defect-free."""
    maps, gts = [], []
    for i in range(n):
        gt = np.zeros((12, 14), bool)
        if i % 3:
            gt[2:5, 2:6] = True
            if i % 2:
                gt[8:11, 9:13] = True  # a second region
        lv = rng.integers(0, levels, gt.shape)
        lv[gt] = np.minimum(lv[gt] + rng.integers(0, 3, int(gt.sum())), levels - 1)  # defects score a bit higher
        maps.append(lv.astype(np.uint8))
        gts.append(gt)
    return maps, gts


def _accumulate(maps, gts) -> dict:
    acc = AnomalyAccumulator()
    for m, g in zip(maps, gts, strict=True):
        acc.add(m, g)
    return acc.result()


def _aupro_by_regionprops(maps, gts, limit: float = 0.3) -> float:
    """The per-region-overlap curve threshold by threshold with skimage's regions, integrated with numpy."""
    from skimage.measure import label, regionprops

    regions = [(i, r.coords) for i, g in enumerate(gts) for r in regionprops(label(g, connectivity=2))]
    normal = np.concatenate([m[~g] for m, g in zip(maps, gts, strict=True)])
    fprs, pros = [0.0], [0.0]
    for t in sorted({int(v) for m in maps for v in np.unique(m)}, reverse=True):
        fprs.append(float((normal >= t).mean()))
        pros.append(float(np.mean([(maps[i][c[:, 0], c[:, 1]] >= t).mean() for i, c in regions])))
    fprs, pros = np.array(fprs), np.array(pros)
    end = np.interp(limit, fprs, pros)  # fprs ascend: the curve's value at the limit, linearly interpolated
    keep = fprs <= limit
    x, y = np.append(fprs[keep], limit), np.append(pros[keep], end)
    return float(np.trapezoid(y, x) / limit)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_aupro_match_independent_computations(seed):
    maps, gts = _example(np.random.default_rng(seed))
    got = _accumulate(maps, gts)
    pixels = np.concatenate([m.ravel() for m in maps]).astype(float)
    truth = np.concatenate([g.ravel() for g in gts])
    assert got["pixel_AUROC"] == pytest.approx(roc_auc_score(truth, pixels), abs=1e-12)
    image_truth = [g.any() for g in gts]
    assert got["image_AUROC"] == pytest.approx(roc_auc_score(image_truth, [m.max() for m in maps]), abs=1e-12)
    assert got["AUPRO"] == pytest.approx(_aupro_by_regionprops(maps, gts), abs=1e-9)
    assert (got["n_anomalous"], got["n_normal"]) == (sum(image_truth), len(gts) - sum(image_truth))


def test_aupro_known_values():
    gt = np.zeros((10, 10), bool)
    gt[2:4, 2:4] = True
    perfect = np.where(gt, 255, 0).astype(np.uint8)
    assert _accumulate([perfect], [gt])["AUPRO"] == pytest.approx(1.0)
    # a constant map: one step from (0, 0) to (1, 1), a straight line: area 0.3^2 / 2 over 0.3
    flat = np.full((10, 10), 7, np.uint8)
    assert _accumulate([flat], [gt])["AUPRO"] == pytest.approx(0.15)
    # an inverted map finds the region only after every defect-free pixel: zero area up to FPR 0.3
    assert _accumulate([255 - perfect], [gt])["AUPRO"] == pytest.approx(0.0)


def test_regions_count_equally_whatever_their_size():
    gt = np.zeros((20, 20), bool)
    gt[0:10, 0:10] = True  # a large region, fully found
    gt[15, 15] = True  # a one-pixel region, missed
    lv = np.zeros((20, 20), np.uint8)
    lv[0:10, 0:10] = 200
    got = _accumulate([lv], [gt])
    # mean overlap 1/2 at FPR 0, then linearly to 1 at FPR 1 (the missed pixel ties with every normal one):
    # at FPR 0.3 it is 0.65, area 0.3 (0.5 + 0.65) / 2 over 0.3
    assert got["AUPRO"] == pytest.approx(0.575)
    assert got["pixel_AUROC"] > 0.99  # pixel AUROC barely notices the small region


def test_missing_class_gives_none():
    gt = np.zeros((5, 5), bool)
    got = _accumulate([np.zeros((5, 5), np.uint8)], [gt])
    assert got["image_AUROC"] is None and got["AUPRO"] is None and got["n_normal"] == 1


def test_area_to_limit_interpolates_the_end_point():
    x, y = np.array([0.0, 0.2, 0.6, 1.0]), np.array([0.0, 0.4, 0.8, 1.0])
    # up to 0.2: triangle 0.04; from 0.2 to 0.3 the curve goes 0.4 -> 0.5: 0.045
    assert area_to_limit(x, y, 0.3) == pytest.approx(0.085)
