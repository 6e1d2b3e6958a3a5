"""Magnetic tile (MT; Huang et al. 2020): ``MT_<Class>/Imgs/<stem>.jpg`` with mask ``<stem>.png``."""

from __future__ import annotations

from defectbench.data.dataset import Dataset
from defectbench.data.layout import locate
from defectbench.data.sample import Sample
from defectbench.data.splits import FREE_SPLITS, mt_splits, stored_or_computed
from defectbench.errors import DataError

NAME = "mt"
TITLE = "MT (magnetic tile)"
DIRNAMES = ("Magnetic-tile-defect-datasets", "Magnetic-tile-defect-datasets.", "Magnetic-tile-defect-datasets.-master", "MT")
CLASSES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")
FREE = "Free"
SPLITS = ("1to1-train", "1to1-test", "7to3-train", "7to3-test", "free", *FREE_SPLITS)
HOW_TO_GET = "run `defectbench data fetch mt` (from github.com/abin24/Magnetic-tile-defect-datasets.) or pass --data-root"


def load(data_root=None) -> Dataset:
    """Load MT (five defect classes plus MT_Free as defect-free) with its seeded stratified splits."""
    root = locate(DIRNAMES, TITLE, HOW_TO_GET, data_root)
    samples: list[Sample] = []
    missing: list[str] = []
    for cls in (*CLASSES, FREE):
        folder = root / f"MT_{cls}" / "Imgs"
        if not folder.is_dir():
            raise DataError(f"{root}: folder MT_{cls}/Imgs is missing; the dataset copy is incomplete — fetch it again")
        for img in sorted(folder.glob("*.jpg")):
            mask = img.with_suffix(".png")
            if not mask.is_file():
                missing.append(str(img))
                continue
            samples.append(Sample(img.stem, img, mask, cls))
    if missing:
        raise DataError(f"{TITLE}: {len(missing)} images have no .png mask beside them (first: {missing[0]})")
    splits = stored_or_computed(NAME, SPLITS, lambda: mt_splits(_ids_by_class(samples)))
    return Dataset(NAME, TITLE, root, samples, CLASSES, splits)


def _ids_by_class(samples: list[Sample]) -> dict[str, list[str]]:
    by_class: dict[str, list[str]] = {}
    for s in samples:
        by_class.setdefault(s.defect_class, []).append(s.id)
    return by_class


def expected_splits(dataset: Dataset) -> dict[str, list[str]]:
    """Recompute the split files' content from the images on disk."""
    return mt_splits(_ids_by_class(dataset.samples))
