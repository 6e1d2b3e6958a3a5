"""Edge cases against the oracle: tiny images, constant maps, full masks, single pixels, empty quadrants."""

from __future__ import annotations

import numpy as np

from defectbench.metrics import aggregate, pixel_max_f1, score_image
from defectbench.metrics.aggregate import pixel_f1_curve
from tests.metrics.oracle import reference


def _compare(preds, gts8, atol=1e-9):
    ref_img, ref_sum = reference(preds, gts8)
    ours = [score_image(p, g > 128) for p, g in zip(preds, gts8)]
    for key in ("S_alpha", "MAE", "adp_E", "weighted_F", "adp_F", "em_curve", "fm_curve", "precision", "recall"):
        got = np.array([getattr(o, key) for o in ours], float)
        np.testing.assert_allclose(got, ref_img[key], rtol=0, atol=atol, equal_nan=True, err_msg=key)
    return ours


def test_random_small_maps_of_many_shapes(rng):
    preds, gts = [], []
    for _ in range(300):
        h, w = rng.integers(1, 24, 2)
        g = (rng.random((h, w)) < rng.uniform(0, 1)).astype(np.uint8) * 255
        if rng.random() < 0.3:
            g = g // 255 * rng.integers(100, 200)  # values around the > 128 rule
        kind = rng.integers(0, 4)
        if kind == 0:
            p = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == 1:
            p = np.full((h, w), rng.integers(0, 256), np.uint8)
        elif kind == 2:
            p = (rng.random((h, w)) < 0.5).astype(np.uint8) * 255
        else:
            p = rng.choice(np.array([0, 3, 77, 128, 254], np.uint8), (h, w))
        preds.append(p)
        gts.append(g.astype(np.uint8))
    _compare(preds, gts)


def test_constant_maps_with_awkward_values_hit_the_same_branches():
    # quadrant SSIM of a constant map against a constant mask depends on exact float equalities
    gts, preds = [], []
    for value in (0, 1, 25, 51, 77, 102, 128, 179, 230, 255):
        for shape in ((7, 9), (30, 31), (64, 3)):
            g = np.zeros(shape, np.uint8)
            g[: shape[0] // 2, : shape[1] // 3 + 1] = 255
            gts.append(g)
            preds.append(np.full(shape, value, np.uint8))
    _compare(preds, gts, atol=1e-12)  # a different branch would differ by a quadrant weight


def test_foreground_in_last_row_gives_the_reference_nan():
    g = np.zeros((10, 10), np.uint8)
    g[9, 9] = 255  # centroid rounds to the last row and column: an empty quadrant
    p = np.zeros((10, 10), np.uint8)
    p[9, 8:] = 200
    (o,) = _compare([p], [g])
    assert np.isnan(o.S_alpha)


def test_perfect_and_worst_predictions_values():
    g = np.zeros((50, 60), np.uint8)
    g[10:30, 20:40] = 255
    perfect = score_image(g.copy(), g > 128)
    assert perfect.MAE == 0 and perfect.weighted_F > 0.999 and perfect.S_alpha > 0.999
    worst = score_image(255 - g, g > 128)
    assert worst.MAE == 1 and worst.weighted_F == 0 and worst.fm_curve.max() < 0.5


def test_pixel_max_f1_pools_pixels_over_images():
    g1 = np.zeros((10, 10), np.uint8)
    g1[:5] = 255
    g2 = np.zeros((10, 10), np.uint8)
    g2[:1, :1] = 255
    s1 = score_image(g1.copy(), g1 > 128)  # perfect: 50 TP
    s2 = score_image(np.zeros_like(g2), g2 > 128)  # predicts nothing useful at high thresholds
    # at threshold 255 (entry 0): TP = 50, predicted = 50, positives = 51 -> F1 = 2*1*(50/51)/(1+50/51)
    assert abs(pixel_f1_curve([s1, s2])[0] - 2 * (50 / 51) / (1 + 50 / 51)) < 1e-12
    assert abs(pixel_max_f1([s1, s2]) - 100 / 101) < 1e-12


def test_aggregate_takes_max_of_mean_curve_not_mean_of_maxima():
    g = np.zeros((20, 20), np.uint8)
    g[5:15, 5:15] = 255
    a = score_image(np.where(g > 0, 100, 0).astype(np.uint8), g > 128)
    b = score_image(np.where(g > 0, 250, 10).astype(np.uint8), g > 128)
    agg = aggregate([a, b])
    assert agg["max_F"] == max((a.fm_curve + b.fm_curve) / 2)
    assert agg["n"] == 2 and set(agg) == {"n", "S_alpha", "MAE", "max_E", "mean_E", "adp_E", "weighted_F", "max_F", "mean_F", "adp_F"}


def test_separable_kernel_equals_matlab_fspecial():
    from defectbench.metrics.core import _WF_KERNEL, _WF_KERNEL_1D

    np.testing.assert_allclose(np.outer(_WF_KERNEL_1D, _WF_KERNEL_1D), _WF_KERNEL, rtol=0, atol=1e-17)
