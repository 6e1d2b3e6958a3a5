"""Dataset-level numbers from per-image scores, aggregated exactly as PySODMetrics does.

Scalar metrics (S-measure, MAE, adaptive E/F, weighted F) are means over images. The max and mean E- and
F-measure are taken over the 256-threshold curve *averaged over images* (not the mean of per-image maxima).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from defectbench.metrics.core import CURVE_THRESHOLDS, ImageScores

SUMMARY_KEYS = ("n", "S_alpha", "MAE", "max_E", "mean_E", "adp_E", "weighted_F", "max_F", "mean_F", "adp_F")
# the five metrics of the paper's tables, and whether higher is better
PAPER_METRICS = {"S_alpha": True, "MAE": False, "max_E": True, "weighted_F": True, "max_F": True}


def _mean(values: list[float]) -> float:
    return float(np.mean(np.array(values, dtype=np.float64)))


def mean_curves(scores: Sequence[ImageScores]) -> dict[str, np.ndarray]:
    """Return the E-measure, F-measure, precision and recall curves averaged over images (+ thresholds)."""
    if not scores:
        raise ValueError("no images to aggregate")
    return {
        "thresholds": CURVE_THRESHOLDS.copy(),
        "em": np.mean(np.array([s.em_curve for s in scores], dtype=np.float64), axis=0),
        "fm": np.mean(np.array([s.fm_curve for s in scores], dtype=np.float64), axis=0),
        "precision": np.mean(np.array([s.precision for s in scores], dtype=np.float64), axis=0),
        "recall": np.mean(np.array([s.recall for s in scores], dtype=np.float64), axis=0),
    }


def aggregate(scores: Sequence[ImageScores]) -> dict[str, float]:
    """Return the dataset numbers ``n, S_alpha, MAE, max_E, mean_E, adp_E, weighted_F, max_F, mean_F, adp_F``."""
    curves = mean_curves(scores)
    return {
        "n": len(scores),
        "S_alpha": _mean([s.S_alpha for s in scores]),
        "MAE": _mean([s.MAE for s in scores]),
        "max_E": float(curves["em"].max()),
        "mean_E": float(curves["em"].mean()),
        "adp_E": _mean([s.adp_E for s in scores]),
        "weighted_F": _mean([s.weighted_F for s in scores]),
        "max_F": float(curves["fm"].max()),
        "mean_F": float(curves["fm"].mean()),
        "adp_F": _mean([s.adp_F for s in scores]),
    }


def pixel_f1_curve(scores: Sequence[ImageScores], beta2: float = 1.0) -> np.ndarray:
    """Return the pooled pixel-level F-measure (default F1) at the 256 thresholds over all images' pixels."""
    tp = np.sum([s.tp for s in scores], axis=0).astype(np.float64)
    pp = np.sum([s.pp for s in scores], axis=0).astype(np.float64)
    pos = float(sum(s.n_fg for s in scores))
    precision = np.divide(tp, pp, out=np.zeros_like(tp), where=pp > 0)
    recall = tp / pos if pos > 0 else np.zeros_like(tp)
    den = beta2 * precision + recall
    return np.divide((1 + beta2) * precision * recall, den, out=np.zeros_like(tp), where=den > 0)


def pixel_max_f1(scores: Sequence[ImageScores]) -> float:
    """Return the pooled pixel-level max F1 (beta = 1), the anomaly-segmentation literature's number."""
    return float(pixel_f1_curve(scores).max())
