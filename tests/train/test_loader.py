"""The training loader: batches are a pure function of (seed, epoch, step) whatever the number of worker processes,
workers decode the images themselves, a bad sample is one clear line from a worker too, and the loader never
touches torch's global random state (which the steps use and checkpoints record)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from defectbench.data import Sample
from defectbench.errors import DataError
from defectbench.train.augment import AugmentParams
from defectbench.train.data import LoadedSamples, epoch_order
from defectbench.train.loader import TrainBatches, default_workers, steps_per_epoch


def _samples(tmp_path, n: int = 10, bad: int | None = None) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        h, w = 40 + 4 * i, 56 - 2 * i
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w) if i != bad else (h + 1, w), dtype=np.uint8)
        mask[5:20, 3 + i:30] = 255
        cv2.imwrite(str(tmp_path / f"im{i}.png"), img)
        cv2.imwrite(str(tmp_path / f"im{i}_m.png"), mask)
        out.append(Sample(f"im{i}", tmp_path / f"im{i}.png", tmp_path / f"im{i}_m.png", "c"))
    return out


def _epochs(batches: TrainBatches, epochs: range) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    return [[(x.clone(), y.clone()) for x, y in batches.epoch(e)] for e in epochs]


def test_workers_give_the_batches_of_the_training_process(tmp_path) -> None:
    samples = _samples(tmp_path)
    made = {}
    for workers in (0, 2):
        batches = TrainBatches(samples, 3, seed=4, size=32, train_sizes=(32, 64), params=AugmentParams(),
                               workers=workers)
        try:
            made[workers] = _epochs(batches, range(3))
        finally:
            batches.close()
    assert [len(e) for e in made[0]] == [3, 3, 3] == [steps_per_epoch(10, 3)] * 3
    sizes = {x.shape[-1] for epoch in made[0] for x, _ in epoch}
    assert sizes == {32, 64}  # multi-scale batches come through the loader too
    for e0, e2 in zip(made[0], made[2], strict=True):
        for (x0, y0), (x2, y2) in zip(e0, e2, strict=True):
            assert torch.equal(x0, x2) and torch.equal(y0, y2)
    assert not torch.equal(made[0][0][0][0], made[0][1][0][0])  # another epoch: another order and augmentation
    # batch 0 of epoch 1 holds the first samples of that epoch's seeded order, augmented as LoadedSamples does
    first = LoadedSamples(samples).batch(epoch_order(10, 4, 1)[:3], 1, 4, made[0][1][0][0].shape[-1], AugmentParams())
    assert torch.equal(first[0], made[0][1][0][0]) and torch.equal(first[1], made[0][1][0][1])


def test_the_loader_leaves_the_global_random_state_alone(tmp_path) -> None:
    batches = TrainBatches(_samples(tmp_path, 4), 2, seed=0, size=32, train_sizes=None, params=AugmentParams())
    torch.manual_seed(7)
    before = torch.get_rng_state()
    _epochs(batches, range(2))
    assert torch.equal(torch.get_rng_state(), before)


def test_lazy_samples_decode_on_first_use_and_a_bad_pair_is_one_line(tmp_path) -> None:
    samples = _samples(tmp_path, 4, bad=2)
    with pytest.raises(DataError, match=r"im2\.png: image is \(48, 52\), its mask \(49, 52\)"):
        LoadedSamples(samples)  # eager: refused before training
    lazy = LoadedSamples(samples, lazy=True)
    assert lazy.load(0)[0].shape == (40, 56, 3)
    batches = TrainBatches(samples, 4, seed=0, size=32, train_sizes=None, params=None, workers=1)
    try:
        with pytest.raises(DataError, match=r"^\S+im2\.png: image is \(48, 52\), its mask \(49, 52\); they must match$"):
            _epochs(batches, range(1))  # raised in the worker, re-raised here as the same single line
    finally:
        batches.close()


def test_default_workers() -> None:
    assert default_workers("cpu", 16) == 0
    assert default_workers("cuda", 16) == 4 and default_workers("cuda:1", 2) == 2 and default_workers("cuda", 1) == 1
