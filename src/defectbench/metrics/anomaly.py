"""The anomaly-detection field's numbers for any map (an anomaly map, or a saliency map read as a score).

* image AUROC — images ranked by the maximum of their map; positives are images with any defect pixel;
* pixel AUROC — every pixel of every scored image ranked by its value; positives are defect pixels;
* AUPRO — the per-region-overlap curve of Bergmann et al. (MVTec AD, as anomalib's ``AUPRO``): for a threshold, the
  false-positive rate over all defect-free pixels (x) and the mean over every connected defect region (8-connected)
  of the share of its pixels above the threshold (y); the area under it up to x = 0.3, divided by 0.3.

Maps are integer levels (8-bit maps: 0..255; any ``levels``), so every curve is exact on per-level histograms:
AUROCs are scikit-learn's ``roc_auc_score`` over the distinct levels weighted by their pixel counts (the same
number as over every pixel, ties included), and the PRO curve has one point per level plus (0, 0), integrated with
trapezoids and a linearly interpolated end point at the limit (the MVTec evaluation code's ``trapezoid``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FPR_LIMIT = 0.3
ANOMALY_METRICS = ("image_AUROC", "pixel_AUROC", "AUPRO")


def _weighted_auroc(normal: np.ndarray, anomalous: np.ndarray) -> float | None:
    """AUROC of two per-level count histograms (None without both classes), by scikit-learn."""
    from sklearn.metrics import roc_auc_score

    if normal.sum() == 0 or anomalous.sum() == 0:
        return None
    levels = np.arange(len(normal), dtype=np.float64)
    keep_n, keep_a = normal > 0, anomalous > 0
    scores = np.concatenate([levels[keep_n], levels[keep_a]])
    labels = np.concatenate([np.zeros(int(keep_n.sum())), np.ones(int(keep_a.sum()))])
    weights = np.concatenate([normal[keep_n], anomalous[keep_a]]).astype(np.float64)
    return float(roc_auc_score(labels, scores, sample_weight=weights))


def pro_curve(normal: np.ndarray, regions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The PRO curve from per-level histograms: defect-free pixels (``normal``) and one per defect region.

    Returns ``(fpr, pro)``, from (0, 0) (threshold above every level) to (1, 1) (every pixel above it).
    """
    n_normal = normal.sum()
    above = lambda h: np.cumsum(h[::-1])  # noqa: E731 - pixels at or above each level, highest level first
    fpr = above(normal) / n_normal
    pro = np.mean([above(h) / h.sum() for h in regions], axis=0)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], pro])


def area_to_limit(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under ``y(x)`` (x non-decreasing) from x[0] to ``limit``, interpolating the end point."""
    inside = int(np.searchsorted(x, limit, side="right"))  # points with x <= limit
    area = float(np.sum(0.5 * (y[1:inside] + y[:inside - 1]) * np.diff(x[:inside])))
    if inside < len(x) and x[inside - 1] < limit:
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        y_end = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_end) * (limit - x0)
    return area


def aupro(normal: np.ndarray, regions: list[np.ndarray], limit: float = FPR_LIMIT) -> float | None:
    """Normalised area under the PRO curve up to FPR ``limit`` (None without defect-free pixels or regions)."""
    if normal.sum() == 0 or not regions:
        return None
    fpr, pro = pro_curve(normal, regions)
    return area_to_limit(fpr, pro, limit) / limit


def defect_regions(gt: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the 8-connected defect regions of a ground truth."""
    import cv2

    n, labels = cv2.connectedComponents(np.ascontiguousarray(gt, dtype=np.uint8), connectivity=8)
    return [labels == k for k in range(1, n)]


@dataclass
class AnomalyAccumulator:
    """Collects what the anomaly metrics need from (map, ground truth) pairs, image by image; ``result()`` scores.

    Maps are integer levels in ``[0, levels)``; an image with any defect pixel is anomalous.
    """

    levels: int = 256
    limit: float = FPR_LIMIT
    image_max: list[int] = field(default_factory=list)
    image_anomalous: list[bool] = field(default_factory=list)
    normal: np.ndarray | None = None
    anomalous: np.ndarray | None = None
    regions: list[np.ndarray] = field(default_factory=list)

    def add(self, level_map: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: its map as integer levels and its boolean ground truth of the same shape."""
        if level_map.shape != gt.shape:
            raise ValueError(f"map {level_map.shape} and ground truth {gt.shape} differ in shape")
        if self.normal is None:
            self.normal = np.zeros(self.levels, np.int64)
            self.anomalous = np.zeros(self.levels, np.int64)
        lv = np.asarray(level_map).astype(np.intp, copy=False)
        gt = np.asarray(gt, dtype=bool)
        self.image_max.append(int(lv.max()))
        self.image_anomalous.append(bool(gt.any()))
        self.normal += np.bincount(lv[~gt], minlength=self.levels)
        if gt.any():
            self.anomalous += np.bincount(lv[gt], minlength=self.levels)
            self.regions += [np.bincount(lv[r], minlength=self.levels) for r in defect_regions(gt)]

    def result(self) -> dict[str, float | int | None]:
        """Image AUROC, pixel AUROC and AUPRO (each None where its classes are missing) and the image counts."""
        labels = np.array(self.image_anomalous, dtype=bool)
        out: dict[str, float | int | None] = {"n_normal": int((~labels).sum()), "n_anomalous": int(labels.sum())}
        out.update({k: None for k in ANOMALY_METRICS})
        if self.normal is None:
            return out
        if labels.any() and not labels.all():
            from sklearn.metrics import roc_auc_score

            out["image_AUROC"] = float(roc_auc_score(labels, np.array(self.image_max, dtype=np.float64)))
        out["pixel_AUROC"] = _weighted_auroc(self.normal, self.anomalous)
        out["AUPRO"] = aupro(self.normal, self.regions, self.limit)
        return out
