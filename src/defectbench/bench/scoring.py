"""Scoring a job's maps: one :class:`~defectbench.bench.store.ImageRow` per image (split, role, class, metrics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectbench.bench.blob import scores_to_fields
from defectbench.bench.store import ImageRow
from defectbench.data.imageio import images_by_stem, read_map_for_mask
from defectbench.data.sample import Sample
from defectbench.errors import DataError
from defectbench.metrics.anomaly import ANOMALY_METRICS, AnomalyAccumulator

Observer = Callable[["EvalItem", np.ndarray, np.ndarray], None]  # (item, 8-bit map, boolean ground truth)
# a map pixel counts as "defect" above 0.5: 8-bit values >= 128 (128 / 255 > 0.5 > 127 / 255)
DEFECT_U8 = 128


@dataclass(frozen=True)
class EvalItem:
    """An image to score: the sample, the split it belongs to, and its role in the job (test, extra, train)."""

    sample: Sample
    split: str
    role: str


def index_maps(folder: str | Path) -> dict[str, Path]:
    """Map each image stem of a folder of saliency maps to its file."""
    return images_by_stem(folder, "maps folder")


def score_item(job_id: str, item: EvalItem, map_path: Path, resize: bool = False,
               observe: Observer | None = None) -> ImageRow:
    """Score one map against its sample's ground truth (``observe(item, map, gt)`` sees the 8-bit map too)."""
    from defectbench.metrics.core import score_image

    gt = item.sample.mask()
    pred, _ = read_map_for_mask(map_path, gt.shape, resize)
    if observe is not None:
        observe(item, pred, gt)
    fields = scores_to_fields(score_image(pred, gt))
    hi = pred >= DEFECT_U8
    return ImageRow(job_id, item.sample.id, item.split, item.role, item.sample.defect_class, fields,
                    pred_area=float(hi.mean()), pred_any=bool(hi.any()), gt_area=float(gt.mean()),
                    height=int(gt.shape[0]), width=int(gt.shape[1]), map_path=map_path.name,
                    image_path=str(Path(item.sample.image_path).resolve()),
                    mask_path=str(Path(item.sample.mask_path).resolve()) if item.sample.mask_path else None)


def score_items(job_id: str, items: Sequence[EvalItem], maps: dict[str, Path], resize: bool = False,
                advance: Callable[[int], None] | None = None, observe: Observer | None = None) -> list[ImageRow]:
    """Score every item whose map is in ``maps`` (stem -> file); missing maps are an error."""
    missing = [it.sample.id for it in items if it.sample.id not in maps]
    if missing:
        raise DataError(f"no map for {len(missing)} of {len(items)} images (first: {missing[0]})")
    rows = []
    for it in items:
        rows.append(score_item(job_id, it, maps[it.sample.id], resize, observe))
        if advance is not None:
            advance(1)
    return rows


class AnomalyScores:
    """The anomaly field's numbers of a job's maps (image / pixel AUROC, AUPRO), from its test and extra images.

    Every method's 8-bit map is read as a score; images with an empty mask are the normal class. ``info()`` is
    ``{"anomaly": {...}}`` for the job's record (image AUROC None without defect-free images), else empty.
    """

    def __init__(self) -> None:
        self.acc = AnomalyAccumulator()
        self.normal_splits: dict[str, None] = {}

    def add(self, item: EvalItem, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one scored image (training-split images of maps made elsewhere are left out)."""
        if item.role == "train":
            return
        self.acc.add(pred, gt)
        if not gt.any():
            self.normal_splits.setdefault(item.split, None)

    def info(self) -> dict[str, dict]:
        """``{"anomaly": numbers}`` when any of them is defined (defect pixels were scored), else ``{}``."""
        result = self.acc.result()
        if all(result[k] is None for k in ANOMALY_METRICS):
            return {}
        return {"anomaly": {**result, "normal_splits": list(self.normal_splits), "levels": self.acc.levels}}
