"""Validation scores of predicted maps, with the project's metrics (what ``defectbench eval`` reports)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from defectbench.metrics import aggregate, score_image

VALIDATION_KEYS = ("S_alpha", "MAE", "weighted_F")


def score_maps(preds_u8: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[str, float]:
    """Return the dataset-level ``S_alpha``, ``MAE`` and ``weighted_F`` of 8-bit maps against boolean masks."""
    summary = aggregate([score_image(p, g) for p, g in zip(preds_u8, gts, strict=True)])
    return {k: float(summary[k]) for k in VALIDATION_KEYS}
