"""Training augmentation on uint8 images and float masks: random resized crop, flips, 90° rotations, photometric.

Randomness comes from an explicit :class:`numpy.random.Generator`, so an augmented sample is a pure function of
``(seed, epoch, index)`` — the key to bit-for-bit resumable training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    """Which augmentations to apply and how strongly."""

    flip: bool = True
    rot90: bool = True
    crop_prob: float = 0.8
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.15
    contrast: float = 0.2


def random_crop_box(h: int, w: int, rng: np.random.Generator, scale: tuple[float, float],
                    ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """Return ``(top, left, height, width)`` of a random crop covering ``scale`` of the area at aspect ``ratio``."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    return 0, 0, h, w


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (bilinear) and a float mask (bilinear, stays soft) to ``size x size``."""
    img = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    msk = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return img, msk


def augment_pair(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator,
                 params: AugmentParams) -> tuple[np.ndarray, np.ndarray]:
    """Return an augmented ``size x size`` (uint8 ``HxWx3`` image, float32 ``HxW`` mask in [0, 1]) pair."""
    h, w = image.shape[:2]
    if params.crop_prob > 0 and rng.random() < params.crop_prob:
        top, left, ch, cw = random_crop_box(h, w, rng, params.crop_scale, params.crop_ratio)
        image = image[top:top + ch, left:left + cw]
        mask = mask[top:top + ch, left:left + cw]
    img, msk = resize_pair(image, mask, size)
    if params.flip:
        if rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        if rng.random() < 0.5:
            img, msk = img[::-1], msk[::-1]
    if params.rot90:
        k = int(rng.integers(0, 4))
        if k:
            img, msk = np.rot90(img, k), np.rot90(msk, k)
    if params.brightness > 0 or params.contrast > 0:
        c = 1.0 + rng.uniform(-params.contrast, params.contrast)
        b = 255.0 * rng.uniform(-params.brightness, params.brightness)
        mean = float(img.mean())
        img = np.clip((img.astype(np.float32) - mean) * c + mean + b, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img), np.ascontiguousarray(msk, dtype=np.float32)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Return the generator for one sample of one epoch (independent of loader order and workers)."""
    return np.random.default_rng([seed, epoch, index])
