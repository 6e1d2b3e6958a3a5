"""Ground-truth-free descriptions of candidate masks, and the small learned selector that reads them.

:func:`candidate_features` describes each candidate (a proposal or its complement) by what can be seen
without ground truth: its size, how much it stands out from a ring of pixels just outside it (a saliency /
contrast prior), its texture, whether it touches the image border, its shape, and SAM's own scores.

:class:`LogisticSelector` is a logistic regression over those features, fitted (by Newton's method with an
L2 penalty, deterministic, NumPy only) on the *training* split's candidates with the label "at least half
of the candidate is defect"; its decision threshold is then tuned on the same training images to maximise
pooled pixel F1. It is stored as plain JSON with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

FEATURES = ("area_px", "area_frac", "log_area", "contrast", "global_contrast", "texture", "border",
            "fill", "log_elongation", "predicted_iou", "stability", "negated")


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of ``mask`` but outside it."""
    k = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return (cv2.dilate(mask.astype(np.uint8), k) > 0) & ~mask


def candidate_features(cands: np.ndarray, origin: list[tuple[int, bool]], gray: np.ndarray,
                       proposals_iou: np.ndarray, proposals_stability: np.ndarray) -> np.ndarray:
    """Return a ``K x len(FEATURES)`` float64 matrix describing ``K x H x W`` candidates of a grayscale image."""
    k = cands.shape[0]
    h, w = gray.shape
    img = gray.astype(np.float64)
    mu, sigma = img.mean(), img.std() + 1e-6
    flat = cands.reshape(k, -1)
    pix = img.reshape(-1)
    area = flat.sum(1).astype(np.float64)
    s1 = flat @ pix
    s2 = flat @ (pix * pix)
    mean_in = np.divide(s1, area, out=np.full(k, mu), where=area > 0)
    var_in = np.divide(s2, area, out=np.zeros(k), where=area > 0) - mean_in**2
    out_area = h * w - area
    mean_out = np.divide(pix.sum() - s1, out_area, out=np.full(k, mu), where=out_area > 0)
    width = max(2, int(round(0.02 * min(h, w))))
    border = np.zeros((h, w), dtype=bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    feats = np.zeros((k, len(FEATURES)))
    for i in range(k):
        m = cands[i]
        ring = _ring(m, width)
        ring_mean = img[ring].mean() if ring.any() else mean_out[i]
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(rows):
            bh, bw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
            fill = area[i] / (bh * bw)
            elong = np.log(max(bh, bw) / min(bh, bw))
        else:
            fill, elong = 0.0, 0.0
        j, neg = origin[i]
        feats[i] = (
            area[i], area[i] / (h * w), np.log(area[i] / (h * w) + 1e-6), (mean_in[i] - ring_mean) / sigma,
            (mean_in[i] - mean_out[i]) / sigma, np.sqrt(max(var_in[i], 0.0)) / sigma,
            m[border].mean(), fill, elong, proposals_iou[j], proposals_stability[j], float(neg),
        )
    return feats


def _design(feats: np.ndarray) -> np.ndarray:
    """Features as the regression sees them (area in pixels dropped: it does not transfer across image sizes)."""
    x = feats[:, 1:].copy()
    x[:, 2] = np.abs(feats[:, 3])  # |contrast| beside signed contrast: defects can be darker or brighter
    return np.concatenate([x, feats[:, 3:4]], axis=1)


@dataclass
class LogisticSelector:
    """Logistic regression over candidate features (standardised), with a decision threshold."""

    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, feats: np.ndarray) -> np.ndarray:
        """Probability that each candidate is mostly defect."""
        x = (_design(feats) - np.array(self.mean)) / np.array(self.std)
        z = x @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (features, weights, threshold, what it was trained on)."""
        return {"kind": "logistic", "features": list(FEATURES), "mean": self.mean, "std": self.std,
                "coef": self.coef, "intercept": self.intercept, "threshold": self.threshold, "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogisticSelector:
        """Inverse of :meth:`to_dict`."""
        if d.get("kind") != "logistic" or list(d.get("features", [])) != list(FEATURES):
            raise ValueError("selector file does not match this version's features")
        return cls(d["mean"], d["std"], d["coef"], float(d["intercept"]), float(d["threshold"]), d.get("info", {}))


def fit_logistic(feats: np.ndarray, labels: np.ndarray, l2: float = 1e-2, iters: int = 50) -> LogisticSelector:
    """Fit a class-balanced, L2-penalised logistic regression by Newton's method (deterministic)."""
    x = _design(feats)
    mean = x.mean(0)
    std = x.std(0) + 1e-9
    xs = (x - mean) / std
    y = labels.astype(np.float64)
    n_pos, n_neg = max(y.sum(), 1.0), max((1 - y).sum(), 1.0)
    sw = np.where(y > 0.5, 0.5 / n_pos, 0.5 / n_neg) * len(y)
    a = np.concatenate([xs, np.ones((len(xs), 1))], axis=1)
    beta = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ beta, -50, 50)))
        grad = a.T @ (sw * (p - y)) / len(y) + reg * beta
        hess = (a * (sw * p * (1 - p))[:, None]).T @ a / len(y) + np.diag(reg) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticSelector(mean.tolist(), std.tolist(), beta[:-1].tolist(), float(beta[-1]))


def candidate_labels(cands: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Training label of each candidate: at least half of its pixels are ground-truth defect."""
    flat = cands.reshape(len(cands), -1)
    area = flat.sum(1)
    inside = flat[:, gt.reshape(-1)].sum(1)
    return (area > 0) & (inside >= 0.5 * np.maximum(area, 1))


def tune_threshold(per_image: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   grid: np.ndarray | None = None) -> tuple[float, float]:
    """Pick the probability threshold maximising pooled pixel F1 of the selected unions.

    ``per_image`` holds ``(probabilities K, candidates K x H x W, ground truth H x W)`` of training images.
    Returns ``(threshold, F1 at that threshold)``.
    """
    grid = np.round(np.arange(0.05, 1.0, 0.05), 2) if grid is None else grid
    tp = np.zeros(len(grid))
    fp = np.zeros(len(grid))
    n_gt = 0
    for probs, cands, gt in per_image:
        n_gt += int(gt.sum())
        for j, t in enumerate(grid):
            keep = probs >= t
            u = np.any(cands[keep], axis=0) if keep.any() else np.zeros(gt.shape, dtype=bool)
            inter = int(np.logical_and(u, gt).sum())
            tp[j] += inter
            fp[j] += int(u.sum()) - inter
    f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + (n_gt - tp)), 0.0)
    j = int(np.argmax(f1))
    return float(grid[j]), float(f1[j])
