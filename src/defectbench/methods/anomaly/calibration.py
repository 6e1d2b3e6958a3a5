"""The score-to-map rule: raw anomaly scores to maps in [0, 1], fitted on held-out defect-free images only.

From the raw maps of ``n`` calibration images (defect-free, used neither to fit nor to test):

* ``low`` = the median of all their pixel scores (a typical good pixel maps to 0);
* ``threshold`` = the k-th smallest of their n per-image maximum scores, k = ceil((n + 1)(1 - alpha)) — the
  split-conformal (1 - alpha) quantile — mapped to 0.5, the level every table counts as "defect";
* with ``u = (score - low) / (threshold - low)`` (the score in units of the good images' spread above their median):
  ``map = 0`` for u <= 0, ``u / 2`` up to the threshold (u <= 1), and ``1 - 1 / (2 u)`` above it. The map is
  continuous with a continuous slope at the threshold, increasing, and never saturates: defect scores far above
  the threshold keep their order (``u = 2`` maps to 0.75, ``u = 10`` to 0.95, an 8-bit map reaches 255 only from
  about ``u = 255`` on), so the saliency metrics, which min-max normalise each map, still see the defect's core.

Then a new defect-free image from the same source shows a defect pixel (any map value >= 0.5) with probability at
most ``alpha`` (exchangeability; the conformal guarantee). The quantile exists only when k <= n, i.e. with at least
``min_images(alpha)`` = ceil((1 - alpha) / alpha) calibration images (19 at the default alpha 0.05).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TARGET_FALSE_ALARMS = 0.05


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` when it is in (0, 1), else raise ValueError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < float(alpha) < 1:
        raise ValueError(f"target_false_alarms must be in (0, 1) (the share of defect-free images allowed a defect "
                         f"pixel), got {alpha!r}")
    return float(alpha)


def conformal_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)): the rank (1-based, ascending) of the conformal quantile among n scores."""
    return math.ceil((n + 1) * (1 - alpha) - 1e-9)


def min_images(alpha: float) -> int:
    """The fewest calibration images for which the conformal quantile exists (k <= n)."""
    n = 1
    while conformal_rank(n, alpha) > n:
        n += 1
    return n


@dataclass(frozen=True)
class ScoreToMap:
    """A fitted rule: ``low`` maps to 0, ``threshold`` to 0.5, higher scores towards 1 (see the module)."""

    low: float
    threshold: float
    alpha: float
    n_images: int

    @classmethod
    def fit(cls, score_maps: Sequence[np.ndarray], alpha: float = TARGET_FALSE_ALARMS) -> ScoreToMap:
        """Fit the rule on the raw maps of defect-free calibration images (ValueError when too few or flat)."""
        alpha = check_alpha(alpha)
        n = len(score_maps)
        if n < min_images(alpha):
            raise ValueError(f"{n} calibration images; the score-to-map rule at target_false_alarms {alpha} needs at "
                             f"least {min_images(alpha)}")
        low = float(np.median(np.concatenate([np.asarray(m, np.float64).ravel() for m in score_maps])))
        maxima = np.sort([float(np.max(m)) for m in score_maps])
        threshold = float(maxima[conformal_rank(n, alpha) - 1])
        if not threshold > low:
            raise ValueError(f"the calibration images' scores do not spread (maximum {threshold} <= median {low})")
        return cls(low, threshold, alpha, n)

    def __call__(self, score_map: np.ndarray) -> np.ndarray:
        """Map raw scores to float32 values in [0, 1]."""
        u = (np.asarray(score_map, np.float64) - self.low) / (self.threshold - self.low)
        return np.where(u <= 1.0, np.clip(u, 0.0, None) * 0.5, 1.0 - 0.5 / np.maximum(u, 1.0)).astype(np.float32)

    def as_dict(self) -> dict[str, float | int]:
        """The rule's numbers (JSON-able)."""
        return {"low": self.low, "threshold": self.threshold, "target_false_alarms": self.alpha,
                "calibration_images": self.n_images}
