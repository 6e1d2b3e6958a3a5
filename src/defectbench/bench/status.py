"""The state of an experiment's job matrix: done / running / interrupted / failed / skipped / pending, and time spent."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from defectbench.locks import runner_active
from defectbench.bench.store import STORE_NAME
from defectbench.bench.store import JobRecord, ResultsStore


@dataclass
class ExperimentStatus:
    """Jobs of an experiment with their effective state (``running`` only while a runner holds the lock)."""

    experiment_dir: Path
    jobs: list[JobRecord]
    states: dict[str, str]
    active: bool
    seconds_spent: float
    n_images: int

    def counts(self) -> Counter:
        """Return how many jobs are in each state."""
        return Counter(self.states.values())

    def matrix(self) -> tuple[list[str], list[str], dict[tuple[str, str], Counter]]:
        """Return (methods, columns, cell counts): one column per dataset/split plus ``speed``; cells count states over seeds."""
        methods: dict[str, None] = {}
        columns: dict[str, None] = {}
        cells: dict[tuple[str, str], Counter] = {}
        for j in self.jobs:
            col = j.task if j.kind == "eval" and j.task else "speed"
            row = j.method if j.kind == "eval" else (j.job_id.split("/", 1)[1] if "/" in j.job_id else j.method)
            methods.setdefault(row, None)
            if col != "speed":
                columns.setdefault(col, None)
            cells.setdefault((row, col), Counter())[self.states[j.job_id]] += 1
        cols = list(columns) + (["speed"] if any(c == "speed" for _, c in cells) else [])
        return list(methods), cols, cells


def effective_state(stored: str, runner_is_active: bool) -> str:
    """Return a job's state as shown: a job stored as ``running`` with no runner active was interrupted."""
    return "interrupted" if stored == "running" and not runner_is_active else stored


def experiment_status(experiment_dir: str | Path) -> ExperimentStatus:
    """Read an experiment's store and say where each job stands."""
    exp = Path(experiment_dir)
    with ResultsStore(exp / STORE_NAME, readonly=True) as store:
        jobs = store.jobs()
        n_images = store.count_images()
    active = runner_active(exp)
    states: dict[str, str] = {}
    spent = 0.0
    now = time.time()
    for j in jobs:
        state = effective_state(j.status, active)
        if state == "running":
            spent += max(0.0, now - (j.started or now))
        states[j.job_id] = state
        if j.status != "running" and j.seconds:
            spent += j.seconds
    return ExperimentStatus(exp, jobs, states, active, spent, n_images)


