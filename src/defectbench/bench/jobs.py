"""The job matrix: an experiment config expanded into (task × method × seed) jobs plus speed measurements."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from defectbench.bench.config import ExperimentConfig, MethodSpec, SpeedSpec, TaskSpec, spec_hash

# method options that change how a result is shown or scheduled, never the result itself: they stay out of a
# job's fingerprint, so renaming a row (or moving it to other hardware) never recomputes a finished job
NOT_RESULT_OPTIONS = frozenset({"label", "resources"})
# training options (a method's ``train`` mapping) that change how fast a model trains or how often it is saved, never
# its weights: loader workers, last.pt interval, loss-read interval. The same set as
# defectbench.train.config.SPEED_ONLY_OPTIONS (kept here so that the job matrix does not import torch; a test checks)
NOT_RESULT_TRAIN_OPTIONS = frozenset({"workers", "save_every", "log_every"})


def result_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Return a job spec without the method options in :data:`NOT_RESULT_OPTIONS` and the training options in
    :data:`NOT_RESULT_TRAIN_OPTIONS` (a ``train`` mapping left empty is dropped); also for specs stored earlier."""
    method = dict(spec.get("method") or {})
    options = {k: v for k, v in (method.get("options") or {}).items() if k not in NOT_RESULT_OPTIONS}
    if isinstance(options.get("train"), dict):
        train = {k: v for k, v in options["train"].items() if k not in NOT_RESULT_TRAIN_OPTIONS}
        if train:
            options["train"] = train
        else:
            del options["train"]
    method["options"] = options
    return {**spec, "method": method}


@dataclass(frozen=True)
class Job:
    """One unit of work: score ``method`` (seed ``seed``) on ``task``; or, with ``kind='speed'``, time the method."""

    method: MethodSpec
    seed: int = 0
    task: TaskSpec | None = None
    kind: str = "eval"
    speed: SpeedSpec | None = None
    labels: int | str | None = None  # labelled training images on the task's labels axis (a count or "all")
    source: Job | None = None  # the job whose maps this one reads (prompts_from: {method}); its spec is in ours

    @property
    def id(self) -> str:
        """The job's id, also its folder under the experiment: ``<dataset>-<split>/<method>/seed<k>``."""
        if self.kind == "speed":
            return f"speed/{speed_key(self.method)}"
        assert self.task is not None
        method = self.method.name if self.labels is None else f"{self.method.name}@{self.labels}"
        return f"{self.task.key}/{method}/seed{self.seed}"

    def spec(self) -> dict[str, Any]:
        """Return everything that determines the job's result (and nothing else), as JSON-able data."""
        out: dict[str, Any] = {"kind": self.kind, "method": {"name": self.method.name, "type": self.method.type,
                                                             "options": self.method.options}}
        if self.kind == "speed":
            out["speed"] = asdict(self.speed) if self.speed else None
        else:
            out["task"] = self.task.spec() if self.task else None
            out["seed"] = self.seed
            if self.labels is not None:
                axis = self.task.labels if self.task else None
                out["labels"] = {"n": self.labels, **(axis.rule() if axis else {})}
            if self.source is not None:  # the maps it reads: their settings are part of this job's result
                out["prompts_from"] = self.source.spec()
        return result_spec(out)

    def spec_hash(self) -> str:
        """Return the hash of :meth:`spec`; a finished job whose hash changed was made with other settings."""
        return spec_hash(self.spec())

    def run_dir(self, experiment_dir: Path) -> Path:
        """Return the job's folder: ``runs/<experiment>/<dataset>-<split>/<method>/seed<k>/``."""
        return Path(experiment_dir) / self.id


def speed_methods(config: ExperimentConfig) -> list[MethodSpec]:
    """Return the methods whose speed the config measures (all methods with a model unless listed)."""
    if config.speed is None:
        return []
    if config.speed.methods is not None:
        return [config.method(n) for n in config.speed.methods if config.method(n).type != "maps"]
    return [m for m in config.methods if m.type != "maps"]


def expand_jobs(config: ExperimentConfig) -> list[Job]:
    """Expand a config into its job matrix, ordered task by task (cheap methods first within a task)."""
    jobs: list[Job] = []
    order = {"maps": 0, "sod": 1, "anomaly": 1, "sam": 2, "sam_prompt": 3}  # prompt sources first
    for task in config.tasks:
        methods = sorted((m for m in config.methods if m.applies_to(task.dataset_id)), key=lambda m: order[m.type])
        clean = [job for method in methods for job in _task_jobs(method, task)]
        jobs += clean
        # the full-data models of the clean jobs on the corrupted test images (maps made elsewhere saw clean ones)
        for name in task.corruptions:
            bad = task.corrupted(name)
            jobs += [replace(j, task=bad) for j in clean if j.labels in (None, "all") and j.method.type != "maps"]
    jobs = link_sources(jobs)
    seen: set[str] = set()
    for method in speed_methods(config):
        key = speed_key(method)
        if key in seen:
            continue
        seen.add(key)
        jobs.append(Job(method, 0, None, "speed", config.speed))
    return jobs


def source_method(method: MethodSpec) -> str | None:
    """The name of the method whose maps ``method`` reads (a family's ``source_method``), else None."""
    from defectbench.bench.families import family

    get = getattr(family(method.type), "source_method", None)
    return get(method) if get else None


def source_job(job: Job, jobs: list[Job]) -> Job | None:
    """The job of the matrix whose maps ``job`` reads: the source method's full-data job on the same task, with
    the job's seed, else the source's lowest seed (None when the job reads no method's maps or none is found)."""
    name = source_method(job.method) if job.kind == "eval" and job.task is not None else None
    if name is None:
        return None
    assert job.task is not None
    found = [j for j in jobs if j.kind == "eval" and j.method.name == name and j.task is not None
             and j.task.key == job.task.key and j.labels in (None, "all")]
    exact = [j for j in found if j.seed == job.seed]
    return (exact or sorted(found, key=lambda j: j.seed) or [None])[0]


def link_sources(jobs: list[Job]) -> list[Job]:
    """Give each job that reads another method's maps its :attr:`Job.source` (and so that job's spec)."""
    return [replace(j, source=source_job(j, jobs)) if source_method(j.method) else j for j in jobs]


def takes_labels(method: MethodSpec) -> bool:
    """True for methods that train on the task's labelled images (a labels axis gives them one job per size)."""
    from defectbench.bench.families import family

    check = getattr(family(method.type), "takes_labels", None)
    return bool(check and check(method))


def _task_jobs(method: MethodSpec, task: TaskSpec) -> list[Job]:
    """The clean jobs of one method on one task: per seed, and per labelled-images size when it trains on them."""
    if task.labels is None or not takes_labels(method):
        return [Job(method, seed, task) for seed in method.seeds]
    return [Job(method, seed, task, labels="all" if size is None else size)
            for size in task.labels.sizes for seed in task.labels.seeds_for(size, method.seeds)]


def speed_key(method: MethodSpec) -> str:
    """Return the model a speed job measures, ``<type>-<model>`` (SAM selections share their model's speed);
    ``anomaly-<method name>`` for anomaly methods, whose backbone, input size and bank make their speed, and
    ``sam_prompt-<method name>`` for prompt rows (encoder once plus their decoder calls, and the light model)."""
    if method.type in ("anomaly", "sam_prompt"):  # their input size / prompts make their speed
        return f"{method.type}-{method.name}"
    return f"{method.type}-{method.options.get('model')}"
