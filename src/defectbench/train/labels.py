"""Training on a labelled subset: which images (the split module's nested, stratified rule) and for how long (one
step rule for every method and size), so that a learning curve compares like with like."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from defectbench.data.sample import Sample
from defectbench.data.splits import label_subset
from defectbench.errors import ConfigError


def labelled_subset(samples: Sequence[Sample], n: int, seed: int, where: str = "the training split") -> list[Sample]:
    """Return the ``n`` labelled samples of ``seed``: stratified by defect class, nested across ``n``, in split order.

    Samples without a class form one group (the subset is then the first ``n`` in the seeded hash order).
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        by_class[s.defect_class or ""].append(s.id)
    if not 1 <= n <= len(samples):
        raise ConfigError(f"{n} labelled images asked of {where}, which has {len(samples)}; use at most {len(samples)}")
    keep = set(label_subset(dict(by_class), n, seed))
    return [s for s in samples if s.id in keep]


def steps_per_epoch(n_train: int, batch: int) -> int:
    """Optimizer steps of one epoch over ``n_train`` images (the trainer's rule: full batches, at least one step)."""
    return max(1, n_train // batch) if n_train >= batch else 1


@dataclass(frozen=True)
class LabelPlan:
    """How a labelled subset is trained: its size, validation hold-out, epochs and resulting optimizer steps."""

    labels: int
    n_train: int
    n_val: int
    val_fraction: float
    epochs: int
    steps: int
    rule: str

    def record(self) -> dict[str, Any]:
        """The plan as stored in the job's record."""
        return asdict(self)


def label_plan(samples: Sequence[Sample], n: int | None, seed: int, batch: int, val_fraction: float, val_seed: int,
               steps: int, min_epochs: int, val_min: int) -> LabelPlan:
    """Apply the label axis' rule: ``max(ceil(steps / steps_per_epoch), min_epochs)`` epochs; a validation hold-out
    (``val_fraction`` of the subset) only when the subset has at least ``val_min`` images, else the last epoch."""
    from defectbench.train.data import holdout_split

    subset = list(samples) if n is None else labelled_subset(samples, n, seed)
    fraction = val_fraction if len(subset) >= val_min else 0.0
    train, val = holdout_split(subset, fraction, val_seed)
    per_epoch = steps_per_epoch(len(train), batch)
    epochs = max(math.ceil(steps / per_epoch), min_epochs)
    rule = (f"max(ceil({steps} steps / {per_epoch} steps per epoch), {min_epochs}) = {epochs} epochs; "
            + (f"validation {len(val)} of {len(subset)} images (subsets >= {val_min})" if val else
               f"no validation below {val_min} images: last epoch kept"))
    return LabelPlan(len(subset), len(train), len(val), fraction, epochs, epochs * per_epoch, rule)
