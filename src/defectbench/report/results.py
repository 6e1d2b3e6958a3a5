"""Everything a report shows, aggregated from an experiment's results store (and nothing else).

Per job: the dataset numbers of its test split (PySODMetrics aggregation over the stored per-image scores),
per defect class, per extra split, and of training images when a maps folder had them; false alarms on
defect-free splits; the anomaly field's numbers stored with the job; mean curves. Per (task, method): mean and
standard deviation over seeds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.bench.store import STORE_NAME, ImageRow, JobRecord, ResultsStore, SpeedRecord
from defectbench.metrics.aggregate import PAPER_METRICS

METRICS = tuple(PAPER_METRICS)
HIGHER_BETTER = {**PAPER_METRICS, "mean_E": True, "adp_E": True, "mean_F": True, "adp_F": True}


@dataclass
class ImageInfo:
    """Where one scored image and its map are, and its S-measure (for picking qualitative examples)."""

    image_id: str
    defect_class: str | None
    image_path: str | None
    mask_path: str | None
    map_path: str | None
    S_alpha: float


@dataclass
class JobSummary:
    """The numbers of one finished job."""

    job: JobRecord
    test: dict[str, float] | None = None
    by_class: dict[str, dict[str, float]] = field(default_factory=dict)
    by_split: dict[str, dict[str, float]] = field(default_factory=dict)
    train: dict[str, float] | None = None
    false_alarms: dict[str, dict[str, float]] = field(default_factory=dict)
    anomaly: dict[str, float] | None = None  # image / pixel AUROC, AUPRO (computed when the job was scored)
    curves: dict[str, np.ndarray] | None = None
    images: dict[str, ImageInfo] = field(default_factory=dict)


@dataclass
class Stat:
    """A number over seeds: mean, sample standard deviation (None for one seed) and how many seeds."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat | None:
        """Return the statistic of a list of values (None when empty)."""
        vals = [float(v) for v in values if v is not None and not np.isnan(v)]
        if not vals:
            return None
        return cls(float(np.mean(vals)), statistics.stdev(vals) if len(vals) > 1 else None, len(vals))


@dataclass
class MethodResult:
    """One method on one task: its jobs (one per seed) and their numbers."""

    task: str
    method: str
    label: str
    method_type: str
    uses_gt: bool
    jobs: list[JobSummary]
    records: list[JobRecord] = field(default_factory=list)
    labels: str | None = None  # labelled training images on the task's labels axis ("8", "all"); None: not on one
    corruption: str | None = None  # corruption of the test images; None: clean

    @property
    def seeds(self) -> list[int]:
        """The seeds of the finished jobs."""
        return [j.job.seed for j in self.jobs]

    def stat(self, metric: str, part: str = "test", key: str | None = None) -> Stat | None:
        """Mean ± std over seeds of ``metric`` on the test split (``part='test'``), a class, an extra split, or train."""
        values = []
        for j in self.jobs:
            src = {"test": j.test, "class": j.by_class.get(key or ""), "split": j.by_split.get(key or ""),
                   "train": j.train, "false_alarms": j.false_alarms.get(key or ""), "anomaly": j.anomaly}[part]
            if src is not None and metric in src:
                values.append(src[metric])
        return Stat.of(values)

    def kind(self) -> str:
        """Human description of the method's type (trained here, checkpoint, SAM oracle / GT-free, outside maps)."""
        if self.method_type == "sam":
            return "SAM, oracle selection" if self.uses_gt else "SAM, GT-free selection"
        if self.method_type == "sam_prompt":
            src = ((self.jobs[0].job.info.get("prompted") or {}).get("protocol") or {}).get("prompts_from") if self.jobs else None
            if src:
                return f"SAM prompted by {src}" + (", oracle mask choice" if self.uses_gt else " (GT-free)")
            return "SAM, oracle prompts (ground truth)"
        if self.method_type == "maps":
            return "maps made elsewhere"
        if self.method_type == "anomaly":
            return "anomaly, fitted on defect-free images"
        if not self.jobs:
            return "SOD"
        info = self.jobs[0].job.info
        return "SOD, trained here" if str(info.get("training", "")).startswith("trained here") else "SOD, checkpoint"


@dataclass
class TaskInfo:
    """A dataset split pair of the experiment."""

    key: str
    dataset: str
    dataset_name: str
    train_split: str | None
    test_split: str


@dataclass
class ExperimentResults:
    """All numbers of an experiment, ready for tables and figures."""

    experiment_dir: Path
    meta: dict[str, Any]
    jobs: list[JobRecord]
    tasks: list[TaskInfo]
    methods: dict[str, list[MethodResult]]
    speed: list[SpeedRecord]
    not_run: dict[str, list[MethodResult]] = field(default_factory=dict)
    # task -> method -> labels ("8", ..., "all") -> result: the learning curves of the labels axis
    label_runs: dict[str, dict[str, dict[str, MethodResult]]] = field(default_factory=dict)
    # task -> corruption -> results of the full-data models on the corrupted test images
    corrupted: dict[str, dict[str, list[MethodResult]]] = field(default_factory=dict)

    def classes(self, task: str) -> list[str]:
        """Return the defect classes seen in a task's test rows (in first-seen order)."""
        seen: dict[str, None] = {}
        for m in self.methods.get(task, []):
            for j in m.jobs:
                for c in j.by_class:
                    seen.setdefault(c, None)
        return list(seen)

    def false_alarm_splits(self, task: str) -> list[str]:
        """Return the extra splits of a task whose images are all defect-free."""
        seen: dict[str, None] = {}
        for m in self.methods.get(task, []):
            for j in m.jobs:
                for s in j.false_alarms:
                    seen.setdefault(s, None)
        return list(seen)

    def unfinished(self) -> list[JobRecord]:
        """Return the jobs that are not done (failed, skipped, pending, running)."""
        return [j for j in self.jobs if j.status != "done"]


def _scores(rows: list[ImageRow]) -> list[Any]:
    from defectbench.metrics.core import ImageScores

    return [ImageScores(**r.fields) for r in rows]


def summarize_job(job: JobRecord, rows: list[ImageRow], experiment_dir: Path) -> JobSummary:
    """Aggregate one job's per-image rows (test, per class, per extra split, train, false alarms, curves)."""
    from defectbench.metrics.aggregate import aggregate, mean_curves

    out = JobSummary(job)
    anomaly = job.info.get("anomaly")
    if isinstance(anomaly, dict):
        out.anomaly = {k: float(v) for k, v in anomaly.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    test = [r for r in rows if r.role == "test"]
    if test:
        scores = _scores(test)
        out.test = aggregate(scores)
        out.curves = mean_curves(scores)
        by_class: dict[str, list[ImageRow]] = defaultdict(list)
        for r in test:
            if r.defect_class:
                by_class[r.defect_class].append(r)
        out.by_class = {c: aggregate(_scores(v)) for c, v in by_class.items()}
    maps_dir = _maps_dir(job, experiment_dir)
    for r in test:
        out.images[r.image_id] = ImageInfo(r.image_id, r.defect_class, r.image_path, r.mask_path,
                                           str(maps_dir / r.map_path) if maps_dir and r.map_path else None,
                                           float(r.fields["S_alpha"]))
    extra: dict[str, list[ImageRow]] = defaultdict(list)
    for r in rows:
        if r.role == "extra":
            extra[r.split].append(r)
    for split, part in extra.items():
        if all(r.gt_area == 0 for r in part):
            out.false_alarms[split] = {"n": len(part), "any_rate": float(np.mean([r.pred_any for r in part])),
                                       "mean_area": float(np.mean([r.pred_area for r in part]))}
            # E-measure / S-measure are defined on empty masks; keep them for completeness
        out.by_split[split] = aggregate(_scores(part))
    train = [r for r in rows if r.role == "train"]
    if train:
        out.train = aggregate(_scores(train))
    return out


def _maps_dir(job: JobRecord, experiment_dir: Path) -> Path | None:
    if not job.maps_dir:
        return None
    p = Path(job.maps_dir)
    return p if p.is_absolute() else experiment_dir / p


def load_results(experiment_dir: str | Path) -> ExperimentResults:
    """Read an experiment's store and aggregate every finished job."""
    from defectbench.locks import runner_active
    from defectbench.bench.status import effective_state

    exp = Path(experiment_dir)
    with ResultsStore(exp / STORE_NAME, readonly=True) as store:
        meta = store.meta()
        jobs = store.jobs()
        active = runner_active(exp)
        for j in jobs:
            j.status = effective_state(j.status, active)
        speed = store.speed_rows()
        tasks: dict[str, TaskInfo] = {}
        groups: dict[tuple[str, str, str | None, str | None], MethodResult] = {}
        for job in jobs:
            if job.kind != "eval" or job.task is None:
                continue
            tasks.setdefault(job.task, TaskInfo(job.task, job.dataset or "", job.dataset_name or "", job.train_split,
                                                job.test_split or ""))
            key = (job.task, job.method, job.labels, job.corruption)
            if key not in groups:
                label = job.label or job.method
                groups[key] = MethodResult(job.task, job.method, label if job.labels in (None, "all") else
                                           f"{label} @ {job.labels}", job.method_type, job.uses_gt, [],
                                           labels=job.labels, corruption=job.corruption)
            groups[key].records.append(job)
            if job.status == "done":
                rows = store.image_rows([job.job_id])
                groups[key].jobs.append(summarize_job(job, rows, exp))
    methods: dict[str, list[MethodResult]] = defaultdict(list)
    not_run: dict[str, list[MethodResult]] = defaultdict(list)
    label_runs: dict[str, dict[str, dict[str, MethodResult]]] = defaultdict(lambda: defaultdict(dict))
    corrupted: dict[str, dict[str, list[MethodResult]]] = defaultdict(lambda: defaultdict(list))
    for (task, method, labels, corruption), m in groups.items():
        if corruption is not None:
            corrupted[task][corruption].append(m)
            continue
        if labels is not None and m.jobs:
            label_runs[task][method][labels] = m
        if labels in (None, "all"):  # the full-data rows of the main tables
            (methods if m.jobs else not_run)[task].append(m)
    return ExperimentResults(exp, meta, jobs, list(tasks.values()), dict(methods), speed, dict(not_run),
                             {t: dict(v) for t, v in label_runs.items()}, {t: dict(v) for t, v in corrupted.items()})
