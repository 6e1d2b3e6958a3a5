"""The training batches as a torch ``DataLoader``: decoding and augmentation in worker processes (or in the training
process with ``workers=0``), pinned memory when the batches go to a GPU.

Batch ``b`` of epoch ``e`` is a pure function of ``(seed, e, b)`` (the epoch's seeded order, the batch's seeded input
size, every sample's seeded augmentation), so the number of workers never changes a batch, and a resumed run sees
the batches an uninterrupted one would. The loader draws its workers' base seed from a generator of its own, never
from torch's global random state (which the training steps use and checkpoints record).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from defectbench.data import Sample
from defectbench.errors import DefectbenchError
from defectbench.train.augment import AugmentParams
from defectbench.train.data import LoadedSamples, batch_size_at, epoch_order

MAX_AUTO_WORKERS = 4


def default_workers(device: str, cpus: int | None = None) -> int:
    """Return the loader workers of ``workers: auto``: 0 on the CPU (the steps use every core; measured faster on a
    2-core machine, see benchmarks/train_speed.py), else ``min(4, cpus)`` for a GPU run."""
    if not device.startswith("cuda"):
        return 0
    return max(0, min(MAX_AUTO_WORKERS, cpus if cpus is not None else (os.cpu_count() or 1)))


def steps_per_epoch(n: int, batch: int) -> int:
    """Return the steps of one epoch over ``n`` training images: full batches only (one short batch when n < batch)."""
    return max(1, n // batch) if n >= batch else 1


@dataclass
class _Failed:
    """A :class:`DefectbenchError` raised in a worker, carried to the training process as a value (one line)."""

    kind: type
    message: str


class EpochBatches(Dataset):
    """Map-style dataset of whole batches, keyed ``(epoch, step)``; images are decoded on first use in each process."""

    def __init__(self, samples: Sequence[Sample], batch: int, seed: int, size: int, train_sizes: Sequence[int] | None,
                 params: AugmentParams | None, lazy: bool = True) -> None:
        self.data = LoadedSamples(samples, lazy=lazy)
        self.batch, self.seed, self.size, self.train_sizes, self.params = batch, seed, size, train_sizes, params
        self.steps = steps_per_epoch(len(self.data), batch)
        self._order: tuple[int, list[int]] | None = None

    def __len__(self) -> int:
        return self.steps

    def indices(self, epoch: int, step: int) -> list[int]:
        """Return the sample indices of batch ``step`` of ``epoch``."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.data), self.seed, epoch))
        return self._order[1][step * self.batch:(step + 1) * self.batch]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, step = key
        try:
            size = batch_size_at(self.train_sizes, self.size, self.seed, epoch, step)
            return self.data.batch(self.indices(epoch, step), epoch, self.seed, size, self.params)
        except DefectbenchError as exc:
            return _Failed(type(exc), str(exc))


class EpochSampler(Sampler):
    """Yields the ``(epoch, step)`` keys of the epoch set with :meth:`set_epoch` (read by the loader each epoch)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.epoch = steps, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration yield the batches of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, b) for b in range(self.steps)])

    def __len__(self) -> int:
        return self.steps


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core: OpenCV's own threads would only oversubscribe


def _worker_context() -> str:
    """The start method of loader workers: ``forkserver`` where the platform has it, else ``spawn``."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class TrainBatches:
    """The training batches of a run, epoch by epoch: ``for x, y in batches.epoch(e)`` (CPU tensors, pinned for a GPU)."""

    def __init__(self, samples: Sequence[Sample], batch: int, seed: int, size: int, train_sizes: Sequence[int] | None,
                 params: AugmentParams | None, workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset = EpochBatches(samples, batch, seed, size, train_sizes, params, lazy=workers > 0)
        self.sampler = EpochSampler(self.dataset.steps)
        self.workers = workers
        self.loader = DataLoader(self.dataset, batch_size=None, sampler=self.sampler, num_workers=workers,
                                 pin_memory=pin_memory, persistent_workers=workers > 0,
                                 prefetch_factor=2 if workers > 0 else None,
                                 worker_init_fn=_worker_init if workers > 0 else None,
                                 # forked workers of a process whose OpenMP/torch threads already ran can deadlock
                                 # (seen: a pytest-xdist worker hung with both loader workers idle); a forkserver
                                 # starts them from a clean, single-threaded process
                                 multiprocessing_context=_worker_context() if workers > 0 else None,
                                 generator=torch.Generator().manual_seed(seed))

    @property
    def steps(self) -> int:
        """Steps (batches) per epoch."""
        return self.dataset.steps

    def __len__(self) -> int:
        return len(self.dataset.data)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the ``(images, masks)`` batches of ``epoch`` in order."""
        self.sampler.set_epoch(epoch)
        for item in self.loader:
            if isinstance(item, _Failed):
                raise item.kind(item.message)
            yield item

    def close(self) -> None:
        """Stop the worker processes (also done when the object is collected)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None
