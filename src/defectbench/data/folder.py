"""A generic dataset: ``images/`` + ``masks/`` folders (or ``train/`` and ``test/`` folders holding such a pair).

A ``good/`` folder beside them holds defect-free images (no masks needed; class ``Free``): they form the splits
``free`` (all) and ``free-train`` / ``free-calib`` / ``free-test`` by the seeded rule of
:func:`defectbench.data.splits.free_splits`, as MT_Free does.
"""

from __future__ import annotations

from pathlib import Path

from defectbench.data.dataset import Dataset
from defectbench.data.imageio import list_images
from defectbench.data.layout import first_existing, pair_masks
from defectbench.data.sample import Sample
from defectbench.data.splits import free_splits
from defectbench.errors import DataError

IMAGE_DIRS = ("images", "imgs", "image", "img")
MASK_DIRS = ("masks", "mask", "gt", "labels", "annotations", "ground truth")
GOOD_DIRS = ("good",)
FREE_CLASS = "Free"


def _load_pair(folder: Path, title: str) -> list[Sample]:
    img, mask = first_existing(folder, IMAGE_DIRS), first_existing(folder, MASK_DIRS)
    if img is None or mask is None:
        raise DataError(f"{folder}: expected an images/ and a masks/ folder (or train/ and test/ folders holding them)")
    images = list_images(img)
    if not images:
        raise DataError(f"{img}: no images found")
    masks = pair_masks(images, mask, title)
    return [Sample(p.stem, p, masks[p.stem], None) for p in images]


def load(path: str | Path) -> Dataset:
    """Load a folder dataset; with train/ and test/ sub-folders these become its splits."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    title = f"folder:{root}"
    splits: dict[str, list[str]] = {}
    train, test = first_existing(root, ("train",)), first_existing(root, ("test",))
    if train and test and not first_existing(root, IMAGE_DIRS):
        samples = []
        for name, folder in (("train", train), ("test", test)):
            part = _load_pair(folder, title)
            samples += part
            splits[name] = [s.id for s in part]
    else:
        samples = _load_pair(root, title)
    good = first_existing(root, GOOD_DIRS)
    if good is not None:
        free = [Sample(p.stem, p, None, FREE_CLASS) for p in list_images(good)]
        if not free:
            raise DataError(f"{good}: no images found; put the defect-free images there, or remove the empty folder")
        samples += free
        splits["free"] = [s.id for s in free]
        splits.update(free_splits(splits["free"]))
    return Dataset(f"folder:{root}", title, root, samples, (), splits)
