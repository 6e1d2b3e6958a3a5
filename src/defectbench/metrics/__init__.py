"""Saliency metrics with PySODMetrics 1.6 definitions: arrays in, numbers out (per image and aggregated)."""

from defectbench.metrics.aggregate import (
    PAPER_METRICS,
    SUMMARY_KEYS,
    aggregate,
    mean_curves,
    pixel_f1_curve,
    pixel_max_f1,
)
from defectbench.metrics.core import CURVE_THRESHOLDS, ImageScores, score_image

__all__ = [
    "CURVE_THRESHOLDS", "ImageScores", "PAPER_METRICS", "SUMMARY_KEYS", "aggregate", "mean_curves",
    "pixel_f1_curve", "pixel_max_f1", "score_image",
]
