"""The score-to-map rule: its anchors, its shape, its minimum calibration set and its false-alarm guarantee."""

from __future__ import annotations

import numpy as np
import pytest

from defectbench.data.imageio import saliency_to_uint8
from defectbench.methods.anomaly.calibration import ScoreToMap, conformal_rank, min_images


def test_anchors_median_and_conformal_threshold():
    # 19 calibration maps: pixel values 0..9 plus a peak of 10 + i in image i
    maps = [np.append(np.arange(10.0), 10.0 + i).reshape(1, 11) for i in range(19)]
    rule = ScoreToMap.fit(maps, alpha=0.05)
    assert rule.low == pytest.approx(float(np.median(np.concatenate([m.ravel() for m in maps]))))
    assert conformal_rank(19, 0.05) == 19 and rule.threshold == 28.0  # k = ceil(20 * 0.95) = 19: the largest maximum
    rule10 = ScoreToMap.fit(maps, alpha=0.1)
    assert conformal_rank(19, 0.1) == 18 and rule10.threshold == 27.0


def test_map_shape_is_continuous_increasing_and_never_saturates():
    rule = ScoreToMap(low=2.0, threshold=6.0, alpha=0.05, n_images=19)
    u = np.array([-3.0, 0.0, 0.5, 1.0, 2.0, 10.0, 1e6])
    got = rule(2.0 + 4.0 * u)
    np.testing.assert_allclose(got, [0.0, 0.0, 0.25, 0.5, 0.75, 0.95, 1 - 0.5e-6], rtol=1e-6)
    dense = rule(np.linspace(-10, 1000, 100001))
    assert np.all(np.diff(dense) >= 0) and dense.dtype == np.float32 and dense.max() < 1
    eps = 1e-3  # equal slopes either side of the threshold (0.5 / (threshold - low))
    at, below, above = (float(rule(np.array([x]))[0]) for x in (6.0, 6.0 - eps, 6.0 + eps))
    assert (at - below) / eps == pytest.approx(0.125, rel=1e-3) and (above - at) / eps == pytest.approx(0.125, rel=1e-3)
    # the threshold lands exactly on the 8-bit level the tables count as defect (>= 128); just below it does not
    assert saliency_to_uint8(rule(np.array([6.0])))[0] == 128 and saliency_to_uint8(rule(np.array([5.99])))[0] == 127


def test_minimum_calibration_set():
    assert min_images(0.05) == 19 and min_images(0.1) == 9 and min_images(0.01) == 99 and min_images(0.5) == 1
    maps = [np.random.default_rng(i).random((4, 4)) for i in range(18)]
    with pytest.raises(ValueError, match="18 calibration images.*needs at least 19"):
        ScoreToMap.fit(maps, alpha=0.05)
    with pytest.raises(ValueError, match="target_false_alarms must be in"):
        ScoreToMap.fit(maps, alpha=1.5)
    with pytest.raises(ValueError, match="do not spread"):
        ScoreToMap.fit([np.ones((3, 3))] * 20)


def test_false_alarm_rate_on_new_good_images_is_at_most_alpha():
    rng = np.random.default_rng(0)
    alarms = 0
    trials = 4000
    for _ in range(trials):
        maps = list(rng.gamma(2.0, 1.0, (30, 1, 6)))  # 30 calibration "images" of 6 pixels, then a new one
        rule = ScoreToMap.fit(maps, alpha=0.1)
        alarms += bool((saliency_to_uint8(rule(rng.gamma(2.0, 1.0, (1, 6)))) >= 128).any())
    # k = ceil(31 * 0.9) = 28 of 30: P(alarm) = (30 - 28 + 1) / 31 = 0.097 <= alpha
    assert abs(alarms / trials - 3 / 31) < 0.015
