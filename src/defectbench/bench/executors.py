"""What a job's method family gets and gives back, and the table from method type to family ``run``.

Each family (:mod:`defectbench.bench.families`) makes the maps of the images to score and returns a
:class:`Produced`; the runner scores and stores it. Families write only into the job's folder (SAM's proposal
cache aside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectbench.bench.config import TaskSpec
from defectbench.bench.jobs import Job
from defectbench.bench.scoring import EvalItem
from defectbench.data.dataset import Dataset
from defectbench.errors import DataError, DefectbenchError

Advance = Callable[[int], None]


class JobSkipped(DefectbenchError):
    """A job cannot run here for a reason the user can fix (e.g. a SAM checkpoint to download); not a failure."""


@dataclass
class JobContext:
    """What an executor may use: the experiment folder, the device, datasets, and a progress bar factory."""

    experiment_dir: Path
    device: str
    dataset: Callable[[TaskSpec], Dataset]
    bar: Callable[[str, int], Advance] = lambda desc, total: (lambda n: None)
    log: Callable[[str], None] = lambda line: None

    def __post_init__(self) -> None:
        clean = self.dataset
        if getattr(clean, "serves_corrupted", False):
            return

        def dataset(task: TaskSpec) -> Dataset:
            base = clean(task)
            if not task.corruption:
                return base
            from defectbench.data.corruptions import corrupted_dataset

            folder = corrupted_images_dir(self.experiment_dir, task)
            return corrupted_dataset(base, task.test, task.corruption, folder)

        dataset.serves_corrupted = True  # type: ignore[attr-defined]
        self.dataset = dataset


def corrupted_images_dir(experiment_dir: Path, task: TaskSpec) -> Path:
    """Where a corrupted task's test images are written once for every method: ``corrupted/<dataset>/<corruption>``."""
    assert task.corruption
    return Path(experiment_dir) / "corrupted" / task.dataset_id / task.test / task.corruption


@dataclass
class Produced:
    """An executor's result: where the maps are, which images to score, timings and facts for ``run.json``."""

    maps_dir: Path
    items: list[EvalItem]
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    resize: bool = False


def eval_items(dataset: Dataset, task: TaskSpec, include_train: bool = False, include_extra: bool = True) -> list[EvalItem]:
    """Return the images a job scores: the test split, the extra splits, and (for outside maps) the train split."""
    parts = [(task.test, "test")]
    if include_extra:
        parts += [(s, "extra") for s in task.extra]
    if include_train and task.train:
        parts.append((task.train, "train"))
    seen: set[str] = set()
    items = []
    for split, role in parts:
        for sample in dataset.split(split):
            if sample.id not in seen:
                seen.add(sample.id)
                items.append(EvalItem(sample, split, role))
    return items


def check_no_training_images(items: list[EvalItem], train_ids: set[str], what: str) -> None:
    """Refuse to score images a model was trained on (one clear line naming the first one)."""
    leaked = [it for it in items if it.role != "train" and it.sample.id in train_ids]
    if leaked:
        raise DataError(f"{what} was trained on {len(leaked)} of the images to score (first: {leaked[0].sample.id} of "
                        f"split {leaked[0].split}); a model must never be scored on its training images")


EXECUTORS: dict[str, Callable[[Job, JobContext], Produced]] = {}


def executor(method_type: str) -> Callable[[Job, JobContext], Produced]:
    """The ``run`` of a method type's family (tests may replace entries of :data:`EXECUTORS`)."""
    if method_type not in EXECUTORS:
        from defectbench.bench.families import family

        EXECUTORS[method_type] = family(method_type).run
    return EXECUTORS[method_type]


def preflight(job: Job) -> tuple[str, str]:
    """Check a job's file references without running it: ``("ok" | "skip" | "error", message)``."""
    from defectbench.bench.families import family

    check = getattr(family(job.method.type), "preflight", None)
    if job.kind != "eval" or check is None:
        return "ok", ""
    try:
        return "ok", check(job)
    except JobSkipped as exc:
        return "skip", str(exc)
    except DefectbenchError as exc:
        return "error", str(exc)


def validate_jobs(jobs: list[Job], dataset: Callable[[TaskSpec], Dataset]) -> None:
    """Run each family's ``validate(job, dataset)`` before any job starts; its error stops the run (one line).

    A dataset that cannot be loaded is left to fail its jobs when they run, as it would without this check.
    """
    from defectbench.bench.families import family

    for job in jobs:
        check = getattr(family(job.method.type), "validate", None) if job.kind == "eval" else None
        if check is None or job.task is None:
            continue
        try:
            data = dataset(job.task)
        except DefectbenchError:
            continue
        check(job, data)
