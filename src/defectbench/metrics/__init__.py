"""Saliency metrics with PySODMetrics 1.6 definitions: per image, aggregated, and folder-versus-folder."""

from defectbench.metrics.aggregate import (
    PAPER_METRICS,
    SUMMARY_KEYS,
    aggregate,
    mean_curves,
    pixel_f1_curve,
    pixel_max_f1,
)
from defectbench.metrics.core import CURVE_THRESHOLDS, ImageScores, score_image
from defectbench.metrics.evaluate import EvalResult, Pair, evaluate_folders, evaluate_split, score_pairs

__all__ = [
    "CURVE_THRESHOLDS", "EvalResult", "ImageScores", "PAPER_METRICS", "Pair", "SUMMARY_KEYS", "aggregate",
    "evaluate_folders", "evaluate_split", "mean_curves", "pixel_f1_curve", "pixel_max_f1", "score_image",
    "score_pairs",
]
