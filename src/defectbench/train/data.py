"""Training data: the held-out validation part of a training split, and an in-memory augmented sample set."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from defectbench.data import Sample, to_rgb
from defectbench.errors import DataError
from defectbench.methods.saliency.predictor import normalize
from defectbench.train.augment import AugmentParams, augment_pair, resize_pair, sample_rng


def holdout_split(samples: Sequence[Sample], fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, validation), stratified by defect class, ordered by a seeded hash.

    Within each class the ids are sorted by ``sha256(f"{seed}:{id}")`` and the first
    ``round(fraction * class size)`` (at least one when ``fraction > 0``) go to validation.
    """
    if fraction <= 0:
        return list(samples), []
    by_class: dict[str | None, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.defect_class].append(s)
    val_ids: set[str] = set()
    for members in by_class.values():
        ranked = sorted(members, key=lambda s: hashlib.sha256(f"{seed}:{s.id}".encode()).hexdigest())
        n_val = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
        val_ids.update(s.id for s in ranked[:n_val])
    train = [s for s in samples if s.id not in val_ids]
    val = [s for s in samples if s.id in val_ids]
    if not train:
        raise DataError("the validation fraction leaves no training images; lower --val-fraction")
    return train, val


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in NHWC memory order (a no-op for the batches :func:`normalize` makes, which already are)."""
    return x.contiguous(memory_format=torch.channels_last)


class LoadedSamples:
    """Images (RGB uint8) and masks (float32 0/1) of a list of samples, each read once and kept in memory.

    Eager (the default) reads every sample at once; ``lazy=True`` reads a sample on its first use in the process
    that uses it (a loader worker decodes its own share, the training process none).
    """

    def __init__(self, samples: Sequence[Sample], lazy: bool = False) -> None:
        self.samples = list(samples)
        self._images: list[np.ndarray | None] = [None] * len(self.samples)
        self._masks: list[np.ndarray | None] = [None] * len(self.samples)
        if not lazy:
            for i in range(len(self.samples)):
                self.load(i)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (image, mask) of sample ``i``, decoding it on first use; a size mismatch is a :class:`DataError`."""
        img, msk = self._images[i], self._masks[i]
        if img is None or msk is None:
            s = self.samples[i]
            img, msk = to_rgb(s.image()), s.mask().astype(np.float32)
            if img.shape[:2] != msk.shape:
                raise DataError(f"{s.image_path}: image is {img.shape[:2]}, its mask {msk.shape}; they must match")
            self._images[i], self._masks[i] = img, msk
        return img, msk

    @property
    def images(self) -> list[np.ndarray]:
        """Every image (decoding those not read yet)."""
        return [self.load(i)[0] for i in range(len(self.samples))]

    @property
    def masks(self) -> list[np.ndarray]:
        """Every mask (decoding those not read yet)."""
        return [self.load(i)[1] for i in range(len(self.samples))]

    def __len__(self) -> int:
        return len(self.samples)

    def batch(self, indices: Sequence[int], epoch: int, seed: int, size: int,
              params: AugmentParams | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (normalised images ``B x 3 x S x S``, masks ``B x 1 x S x S``); augmented unless ``params`` is None."""
        imgs, msks = [], []
        for i in indices:
            image, mask = self.load(i)
            if params is None:
                img, msk = resize_pair(image, mask, size)
            else:
                img, msk = augment_pair(image, mask, size, sample_rng(seed, epoch, i), params)
            imgs.append(img)
            msks.append(msk)
        return normalize(np.stack(imgs)), torch.from_numpy(np.stack(msks))[:, None]


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """Return the shuffled sample order of one epoch (a pure function of seed and epoch)."""
    g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def batch_size_at(sizes: Sequence[int] | None, default: int, seed: int, epoch: int, step: int) -> int:
    """Return the square input size of one training batch: ``default``, or one of ``sizes`` drawn from (seed, epoch, step)."""
    if not sizes:
        return default
    return int(sizes[int(np.random.default_rng([seed, epoch, step, 7]).integers(0, len(sizes)))])


def data_hash(samples: Sequence[Sample]) -> str:
    """Return a sha256 over the ids and file bytes of ``samples`` (images and masks), for run records."""
    h = hashlib.sha256()
    for s in samples:
        h.update(s.id.encode())
        for path in (s.image_path, s.mask_path):
            if path is not None:
                h.update(path.read_bytes())
    return h.hexdigest()
