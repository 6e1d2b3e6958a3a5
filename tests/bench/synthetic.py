"""Small synthetic experiments: a folder dataset with train/test splits, maps of fake methods, configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import yaml

from defectbench.data.dataset import Dataset
from defectbench.data.folder import load as load_folder
from tests.conftest import write_png

CLASSES = ("Ab", "Cd")



def make_dataset(root: Path, n_train: int = 6, n_test: int = 6, n_free: int = 0, size: int = 48, seed: int = 0) -> Path:
    """Write ``root/{train,test}/{images,masks}``: gray images with one bright blob each (its mask).

    Stems are ``<class>_<k>`` with classes Ab / Cd alternating; ``n_free`` defect-free images (empty masks)
    named ``Free_<k>`` go into the test folder (see :func:`classed_loader` for a ``free`` split).
    """
    rng = np.random.default_rng(seed)
    k = 0
    for split, n in (("train", n_train), ("test", n_test), ("test", n_free)):
        free = split == "test" and n == n_free and n_free and k >= n_train + n_test
        for _ in range(n):
            cls = "Free" if free else CLASSES[k % 2]
            img = rng.integers(60, 110, (size, size), dtype=np.uint8)
            mask = np.zeros((size, size), np.uint8)
            if not free:
                cy, cx = rng.integers(10, size - 10, 2)
                r = int(rng.integers(4, 9))
                cv2.circle(mask, (int(cx), int(cy)), r, 255, -1)
                img[mask > 0] = np.clip(img[mask > 0].astype(int) + 90, 0, 255)
            write_png(root / split / "images" / f"{cls}_{k}.png", img)
            write_png(root / split / "masks" / f"{cls}_{k}.png", mask)
            k += 1
    return root


def classed_loader(name: str, data_root=None) -> Dataset:
    """Load a synthetic folder dataset with classes from stem prefixes and ``Free_*`` test images as split ``free``."""
    ds = load_folder(name.split(":", 1)[1])
    samples = [replace(s, defect_class=s.id.split("_")[0]) for s in ds.samples]
    splits = dict(ds.splits)
    splits["free"] = [s.id for s in samples if s.defect_class == "Free"]
    splits["test"] = [i for i in splits["test"] if not i.startswith("Free_")]
    return Dataset(ds.name, ds.title, ds.root, samples, CLASSES, splits)


def make_maps(dataset_root: Path, out: Path, quality: str, seed: int = 0, test_quality: str | None = None) -> Path:
    """Write a map per image: ``good`` (blurred mask + light noise), ``poor`` (noise + faint blob), ``perfect``.

    With ``test_quality`` the test images get that quality instead (a model that memorised its training set).
    """
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        q = test_quality if (test_quality and split == "test") else quality
        for mpath in sorted((dataset_root / split / "masks").glob("*.png")):
            m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE).astype(np.float64) / 255
            if q == "perfect":
                p = m
            elif q == "good":
                p = cv2.GaussianBlur(m, (5, 5), 1.5) * 0.9 + rng.random(m.shape) * 0.1
            else:
                p = 0.3 * cv2.GaussianBlur(m, (9, 9), 4) + rng.random(m.shape) * 0.6
            write_png(out / f"{mpath.stem}.png", np.clip(np.rint(p * 255), 0, 255).astype(np.uint8))
    return out


def write_config(path: Path, dataset_root: Path, maps: dict[str, Path], experiment: str = "synth",
                 extra: list[str] | None = None, **top) -> Path:
    """Write an experiment YAML with one folder dataset and one maps method per entry of ``maps``."""
    cfg = {
        "experiment": experiment,
        "datasets": [{"name": f"folder:{dataset_root}", "id": "syn", "tasks": [{"train": "train", "test": "test"}],
                      **({"extra_eval": extra} if extra else {})}],
        "methods": [{"name": name, "type": "maps", "path": str(folder)} for name, folder in maps.items()],
        **top,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
