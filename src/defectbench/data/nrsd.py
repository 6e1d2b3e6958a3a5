"""NRSD-MN (no-service rail surfaces; Zhang et al., MCnet 2021), in the layouts its authors publish.

Accepted layouts under the dataset folder (``NRSD-MN``):

* MCnet's loader layout: ``images/training``, ``annotations/training`` (train) and
  ``images/validation``, ``annotations/validation`` (test);
* ``train/`` and ``test/`` folders, each with an image folder (``images``, ``imgs``, ``Image``…) and a
  mask folder (``masks``, ``gt``, ``labels``, ``annotations``…), or with sub-sets (e.g. ``test/man-made``,
  ``test/natural``) that each hold such a pair.

The split is the published one: the train and test folders (2086 / 1130 images in the release).
"""

from __future__ import annotations

from pathlib import Path

from defectbench.data.dataset import Dataset
from defectbench.data.imageio import list_images
from defectbench.data.layout import first_existing, locate, pair_masks
from defectbench.data.sample import Sample
from defectbench.errors import DataError

NAME = "nrsd"
TITLE = "NRSD-MN"
DIRNAMES = ("NRSD-MN", "NRSD", "nrsd-mn")
HOW_TO_GET = ("NRSD-MN cannot be downloaded automatically: get it from github.com/zdfcvsn/MCnet (the authors "
              "send the archive password by e-mail), unpack it as <data-root>/NRSD-MN, or pass --data-root")
IMAGE_DIRS = ("images", "image", "imgs", "img", "Source Images")
MASK_DIRS = ("masks", "mask", "gt", "ground truth", "groundtruth", "labels", "label", "annotations")
TRAIN_DIRS = ("train", "training")
TEST_DIRS = ("test", "testing", "validation", "val")


def _pairs_in(folder: Path) -> list[tuple[Path, Path, str]]:
    """Return (image dir, mask dir, subset name) pairs in ``folder`` or in its direct sub-folders."""
    img, mask = first_existing(folder, IMAGE_DIRS), first_existing(folder, MASK_DIRS)
    if img and mask:
        return [(img, mask, "")]
    pairs = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        img, mask = first_existing(sub, IMAGE_DIRS), first_existing(sub, MASK_DIRS)
        if img and mask:
            pairs.append((img, mask, sub.name))
    return pairs


def _split_folders(root: Path) -> dict[str, list[tuple[Path, Path, str]]]:
    images, annotations = first_existing(root, ("images",)), first_existing(root, ("annotations",))
    if images and annotations and first_existing(images, TRAIN_DIRS):
        out = {}
        for split, names in (("train", TRAIN_DIRS), ("test", TEST_DIRS)):
            img, mask = first_existing(images, names), first_existing(annotations, names)
            if img and mask:
                out[split] = [(img, mask, "")]
        return out
    out = {}
    for split, names in (("train", TRAIN_DIRS), ("test", TEST_DIRS)):
        folder = first_existing(root, names)
        if folder:
            out[split] = _pairs_in(folder)
    return out


def load(data_root=None) -> Dataset:
    """Load NRSD-MN from its published train/test folder layout."""
    root = locate(DIRNAMES, TITLE, HOW_TO_GET, data_root)
    folders = _split_folders(root)
    if not folders.get("train") and not folders.get("test"):
        raise DataError(f"{root}: no train/test image and mask folders found; expected images/training + "
                        "annotations/training (MCnet layout) or train/images + train/masks")
    samples: list[Sample] = []
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for split, pairs in folders.items():
        for img_dir, mask_dir, subset in pairs:
            images = list_images(img_dir)
            masks = pair_masks(images, mask_dir, f"{TITLE} {split}")
            for p in images:
                samples.append(Sample(p.stem, p, masks[p.stem], subset or None))
                splits[split].append(p.stem)
    classes = tuple(sorted({s.defect_class for s in samples if s.defect_class}))
    return Dataset(NAME, TITLE, root, samples, classes, splits)
