"""The job order every backend follows (local, ``--gpus``, Ray): who may start now, who waits for whom.

Two rules, on top of the matrix order of :func:`~defectbench.bench.jobs.expand_jobs`:

* **SAM jobs of one task share one proposal computation.** SAM selections of the same task, model, checkpoint
  and mask-generator settings read the same cached proposals; the first of them (the *leader*) runs first and the
  others wait until it ended (done, failed or skipped) instead of computing the same ViT-H proposals in parallel.
* **Speed jobs run last and alone on their device.** A speed job starts only when every other job ended; it then
  holds a whole device (one per device at a time on ``--gpus``; the whole GPU on Ray, one at a time without GPUs).

:class:`Schedule` is the bookkeeping: ``ready()`` lists the jobs that may start now, ``started()`` / ``ended()``
move them along. It never looks at devices; backends decide where a ready job goes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from defectbench.bench.jobs import Job


def proposal_group(job: Job) -> str | None:
    """Return the key of the SAM proposals a job computes (task, model, checkpoint, generator, settings), or None."""
    if job.kind != "eval" or job.method.type != "sam" or job.task is None:
        return None
    opts = job.method.options
    shared = {k: opts.get(k) for k in ("model", "checkpoint", "generator", "amg", "allow_unofficial")}
    return f"{job.task.key}|{json.dumps(shared, sort_keys=True, default=str)}"


def leaders(jobs: Iterable[Job]) -> dict[str, str]:
    """Map each SAM job that reuses another's proposals to the job it waits for (its group's first job)."""
    first: dict[str, str] = {}
    out: dict[str, str] = {}
    for job in jobs:
        group = proposal_group(job)
        if group is None:
            continue
        if group in first:
            out[job.id] = first[group]
        else:
            first[group] = job.id
    return out


def sequential_order(jobs: Iterable[Job]) -> list[Job]:
    """Return the jobs in the order one device runs them: evaluation jobs (each SAM leader before the selections
    waiting for it), then speed jobs."""
    sched = Schedule(jobs)
    out: list[Job] = []
    while not sched.finished:
        job = sched.ready(1)[0]
        sched.started(job.id)
        sched.ended(job.id)
        out.append(job)
    return out


class Schedule:
    """Which pending jobs may start now, given what is running and what ended (see the module docstring)."""

    def __init__(self, jobs: Iterable[Job]) -> None:
        self.pending: list[Job] = list(jobs)
        self.waits_for = leaders(self.pending)
        self.running: dict[str, Job] = {}
        self.ended_ids: set[str] = set()
        self._ids = {j.id for j in self.pending}

    @property
    def finished(self) -> bool:
        """True when no job is pending or running."""
        return not self.pending and not self.running

    def _eval_left(self) -> bool:
        return any(j.kind != "speed" for j in [*self.pending, *self.running.values()])

    def may_start(self, job: Job) -> bool:
        """Whether ``job`` (pending) may start now: its SAM leader ended; for a speed job, every other job ended."""
        if job.kind == "speed":
            return not self._eval_left()
        leader = self.waits_for.get(job.id)
        return leader is None or leader not in self._ids or leader in self.ended_ids

    def ready(self, limit: int | None = None, *, speed_slots: int | None = None) -> list[Job]:
        """Return up to ``limit`` pending jobs that may start now, in order (at most ``speed_slots`` speed jobs
        beyond those running). Raises when nothing could ever start (a dependency cycle: a bug)."""
        out: list[Job] = []
        speed_running = sum(j.kind == "speed" for j in self.running.values())
        for job in self.pending:
            if limit is not None and len(out) >= limit:
                break
            if not self.may_start(job):
                continue
            if job.kind == "speed" and speed_slots is not None and \
                    speed_running + sum(j.kind == "speed" for j in out) >= speed_slots:
                continue
            out.append(job)
        if not out and self.pending and not self.running:
            raise RuntimeError(f"schedule: no job can start ({self.pending[0].id} waits forever)")
        return out

    def started(self, job_id: str) -> None:
        """Move a pending job to running."""
        job = next(j for j in self.pending if j.id == job_id)
        self.pending.remove(job)
        self.running[job_id] = job

    def ended(self, job_id: str) -> None:
        """Mark a running job ended (done, failed, skipped): the jobs waiting for it may start."""
        self.running.pop(job_id, None)
        self.ended_ids.add(job_id)
