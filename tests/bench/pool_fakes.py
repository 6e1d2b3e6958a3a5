"""Compute functions for the ``--gpus`` pool tests, importable by its spawned workers: timed, crashing."""

from __future__ import annotations

import os
import signal
import time

from defectbench.bench.runner import JobOutcome, compute_job

PAUSE_S = float(os.environ.get("DEFECTBENCH_TEST_PAUSE", "0.6"))


def timed_compute(job, ctx, meta) -> JobOutcome:
    """compute_job after a pause (no CPU used) for maps jobs, a skip for others; each job's worker-side start, end,
    pid and device go to ``<experiment>/timeline.tsv`` (one appended line: atomic)."""
    t0 = time.time()
    time.sleep(PAUSE_S)
    if job.method.type == "maps":
        out = compute_job(job, ctx, meta)
    else:
        out = JobOutcome(job.id, "skipped", "fake", "fake")
    t1 = time.time()
    with open(os.path.join(ctx.experiment_dir, "timeline.tsv"), "a", encoding="utf-8") as fh:
        fh.write(f"{job.id}\t{t0}\t{t1}\t{os.getpid()}\t{ctx.device}\n")
    return out


def crashing_compute(job, ctx, meta) -> JobOutcome:
    """timed_compute, except that the worker kills itself (SIGKILL) on jobs of a method named ``crash``."""
    if job.method.name == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    return timed_compute(job, ctx, meta)


def read_timeline(path) -> dict[str, tuple[float, float, int, str]]:
    """Return job id -> (start, end, pid, device) from a timeline file; a job listed twice is an error."""
    out: dict[str, tuple[float, float, int, str]] = {}
    for line in open(path, encoding="utf-8").read().splitlines():
        job, t0, t1, pid, device = line.split("\t")
        assert job not in out, f"{job} ran twice"
        out[job] = (float(t0), float(t1), int(pid), device)
    return out
