"""Everything the jobs of a config will open, checked before any work starts (``run --dry-run``).

Each job needs its dataset and splits; each method family adds what its jobs open (``needs(job)`` in the family
module): ImageNet backbone files of saliency models that train from them, SAM checkpoints, explicit checkpoint
files, packages holding weights. :func:`check_config` checks every such need once (weight files against their
official SHA-256, remembered per file) and returns what is missing with the one command that gets it;
:func:`config_weights` lists the weight files ``defectbench weights fetch --for CONFIG`` downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from defectbench.bench.config import ExperimentConfig, TaskSpec
from defectbench.bench.jobs import Job, expand_jobs
from defectbench.data.dataset import Dataset
from defectbench.downloads.catalog import WeightFile
from defectbench.errors import DefectbenchError

FETCH_FOR = "defectbench weights fetch --for {config}"


@dataclass(frozen=True)
class Need:
    """One thing a job will open: ``kind`` (dataset, split, weights, checkpoint, package) and ``name``.

    ``check()`` returns None when it is present and usable, else the problem in one line; ``fix`` is the command
    (or the instruction) that gets it (``{config}`` stands for the config file); ``weights`` is set for files
    ``defectbench weights fetch`` can download.
    """

    kind: str
    name: str
    check: Callable[[], str | None] = field(compare=False, repr=False)
    fix: str = field(default="", compare=False)
    weights: WeightFile | None = field(default=None, compare=False)


@dataclass
class Missing:
    """A need that is not met: what, the problem, how to get it, and the jobs that need it."""

    kind: str
    name: str
    problem: str
    fix: str
    jobs: list[str]


def weights_need(entry: WeightFile, own_weights_hint: str = "", allow_unofficial: bool = False) -> Need:
    """A catalog file, looked for in the checkpoints folder and torch hub's cache and checked against its hash."""
    from defectbench.downloads.files import find, verify
    from defectbench.paths import weights_dir

    def check() -> str | None:
        path = find(entry)
        if path is None:
            return f"not in {weights_dir()} nor in torch hub's cache"
        try:
            verify(path, entry, own_weights_hint=own_weights_hint, allow_unofficial=allow_unofficial)
        except DefectbenchError as exc:
            return str(exc)
        return None

    name = entry.file_name + (" (other weights allowed)" if allow_unofficial else "")
    return Need("weights", name, check, FETCH_FOR, entry)


def file_need(resolve: Callable[[], object], name: str, fix: str, kind: str = "checkpoint") -> Need:
    """A file named in the config: ``resolve()`` finds (and checks) it, raising a one-line error when it is not usable."""
    def check() -> str | None:
        try:
            resolve()
        except DefectbenchError as exc:
            return str(exc)
        return None

    return Need(kind, name, check, fix)


def dataset_need(task: TaskSpec, datasets: Callable[[TaskSpec], Dataset], data_root: str | None) -> Need:
    """The task's dataset, loaded as the runner loads it (which finds its data root and reads its layout)."""
    from defectbench.data.fetch import NRSD_HINT, SOURCES

    root = f" --data-root {data_root}" if data_root else ""
    fix = (f"defectbench data fetch {task.dataset}{root}" if task.dataset in SOURCES else NRSD_HINT
           if task.dataset == "nrsd" else "check the dataset folder named in the config")
    return file_need(lambda: datasets(task), task.dataset, fix, "dataset")


def split_needs(task: TaskSpec, datasets: Callable[[TaskSpec], Dataset]) -> list[Need]:
    """The splits a task reads (train, test, extra), each present and complete on disk once the dataset loads."""
    def need(split: str) -> Need:
        def check() -> str | None:
            try:
                dataset = datasets(task)
            except DefectbenchError:
                return None  # the dataset's own row says why
            try:
                dataset.split(split)
            except DefectbenchError as exc:
                return str(exc)
            return None

        return Need("split", f"{task.dataset}/{split}", check, "fetch the dataset again (its copy is incomplete)")

    return [need(s) for s in (task.train, task.test, *task.extra) if s]


def job_needs(job: Job, datasets: Callable[[TaskSpec], Dataset], data_root: str | None = None) -> list[Need]:
    """What ``job`` will open: its dataset and splits, then what its method family declares."""
    from defectbench.bench.families import family

    if job.kind != "eval" or job.task is None:
        return []  # speed jobs time randomly initialised models
    out = [dataset_need(job.task, datasets, data_root), *split_needs(job.task, datasets)]
    declare = getattr(family(job.method.type), "needs", None)
    return out + (list(declare(job)) if declare else [])


def _dataset_cache(data_root: str | None, loader: Callable[[str, str | None], Dataset] | None):
    from defectbench.bench.runner import DatasetCache

    return DatasetCache(data_root, loader)


def check_config(config: ExperimentConfig, config_path: str | Path, data_root: str | None = None,
                 loader: Callable[[str, str | None], Dataset] | None = None) -> list[Missing]:
    """Check everything the config's jobs will open; return what is missing or unusable (empty: all is there).

    ``data_root`` (``--data-root``) is where datasets are looked for, as in the run; ``loader`` replaces
    :func:`defectbench.data.load_dataset` (tests).
    """
    root = data_root or config.data_root
    datasets = _dataset_cache(root, loader)
    by_need: dict[tuple[str, str], tuple[Need, list[str]]] = {}
    for job in expand_jobs(config):
        for need in job_needs(job, datasets, root):
            by_need.setdefault((need.kind, need.name), (need, []))[1].append(job.id)
    missing = []
    for need, jobs in by_need.values():
        problem = need.check()
        if problem:
            missing.append(Missing(need.kind, need.name, problem, need.fix.format(config=config_path), jobs))
    return missing


def config_weights(config: ExperimentConfig) -> list[WeightFile]:
    """The fetchable weight files the config's jobs need (each once, in job order)."""
    datasets = _dataset_cache(config.data_root, None)
    out: list[WeightFile] = []
    for job in expand_jobs(config):
        for need in job_needs(job, datasets):
            if need.weights is not None and need.weights not in out:
                out.append(need.weights)
    return out
