"""Small synthetic parts for the anomaly tests: a striped, noisy surface; defects are dark scratches."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.conftest import write_png

SIZE = (128, 144)  # rows, columns


def surface(rng: np.random.Generator, shape: tuple[int, int] = SIZE) -> np.ndarray:
    """A defect-free surface: diagonal stripes with a random phase plus fine noise (uint8 gray)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    stripes = 20 * np.sin((xx + yy) / 3.0 + rng.uniform(0, 2 * np.pi))
    return np.clip(120 + stripes + rng.normal(0, 4, shape), 0, 255).astype(np.uint8)


def with_defect(rng: np.random.Generator, shape: tuple[int, int] = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A surface with one dark scratch (a 5-pixel-wide line segment) and its mask (uint8 0/255)."""
    img = surface(rng, shape)
    mask = np.zeros(shape, np.uint8)
    y, x = int(rng.integers(20, shape[0] - 30)), int(rng.integers(20, shape[1] - 40))
    cv2.line(mask, (x, y), (x + 22, y + 10), 255, 5)
    img[mask > 0] = 70
    return img, mask


def make_parts(root: Path, n_good: int = 60, n_test: int = 6, n_train: int = 4, seed: int = 0) -> Path:
    """A ``folder:`` dataset: train/ and test/ (images + masks, scratched parts) and good/ (defect-free parts)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for k in range(n):
            img, mask = with_defect(rng)
            write_png(root / split / "images" / f"{split}_{k}.png", img)
            write_png(root / split / "masks" / f"{split}_{k}.png", mask)
    for k in range(n_good):
        write_png(root / "good" / f"good_{k}.png", surface(rng))
    return root
