"""A generic dataset: ``images/`` + ``masks/`` folders (or ``train/`` and ``test/`` folders holding such a pair)."""

from __future__ import annotations

from pathlib import Path

from defectbench.data.dataset import Dataset
from defectbench.data.imageio import list_images
from defectbench.data.layout import first_existing, pair_masks
from defectbench.data.sample import Sample
from defectbench.errors import DataError

IMAGE_DIRS = ("images", "imgs", "image", "img")
MASK_DIRS = ("masks", "mask", "gt", "labels", "annotations", "ground truth")


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
    return Dataset(f"folder:{root}", title, root, samples, (), splits)
