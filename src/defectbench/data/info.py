"""``defectbench data info``: what a dataset holds — counts per class and split, image sizes, mask coverage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from defectbench.data.dataset import Dataset
from defectbench.errors import DataError


@dataclass
class DatasetInfo:
    """Summary statistics of a dataset."""

    title: str
    root: str
    n_images: int
    counts: dict[str, dict[str, int]]  # split -> class -> count
    sizes: Counter = field(default_factory=Counter)  # (w, h) -> count
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> stats of defect-pixel share


def dataset_info(ds: Dataset, read_files: bool = True) -> DatasetInfo:
    """Count samples per split and class; with ``read_files``, also image sizes and mask coverage."""
    counts: dict[str, dict[str, int]] = {}
    for split in ds.split_names():
        c = Counter(s.defect_class or "-" for s in ds.split(split))
        counts[split] = dict(sorted(c.items()))
    info = DatasetInfo(ds.title, str(ds.root), len(ds), counts)
    if read_files:
        shares: dict[str, list[float]] = {}
        for s in ds.samples:
            h, w = s.image().shape[:2]
            mask = s.mask()
            if mask.shape != (h, w):
                raise DataError(f"{s.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {w}x{h}")
            info.sizes[(w, h)] += 1
            shares.setdefault(s.defect_class or "-", []).append(float(mask.mean()))
        for cls, vals in sorted(shares.items()):
            arr = np.array(vals)
            info.coverage[cls] = {
                "mean": float(arr.mean()),
                "median": float(np.median(arr)),
                "min": float(arr.min()),
                "max": float(arr.max()),
                "empty": int((arr == 0).sum()),
            }
    return info
