"""Experiments: config -> job matrix -> runner (resumable, one job's failure never stops the rest) -> SQLite store.

Library entry points (the CLI verbs ``run``, ``status`` and ``speed`` are thin layers over them)::

    from defectbench.bench import load_config, run_experiment, experiment_status
    summary = run_experiment(load_config("configs/quick.yaml"), runs_dir="runs")
"""

from defectbench.bench.config import ExperimentConfig, MethodSpec, SpeedSpec, TaskSpec, load_config, parse_config
from defectbench.bench.jobs import Job, expand_jobs
from defectbench.bench.runner import RunSummary, experiment_dir, run_experiment
from defectbench.bench.status import ExperimentStatus, experiment_status
from defectbench.bench.store import STORE_NAME, ImageRow, JobRecord, ResultsStore, SpeedRecord

__all__ = [
    "STORE_NAME", "ExperimentConfig", "ExperimentStatus", "ImageRow", "Job", "JobRecord", "MethodSpec",
    "ResultsStore", "RunSummary", "SpeedRecord", "SpeedSpec", "TaskSpec", "expand_jobs", "experiment_dir",
    "experiment_status", "load_config", "parse_config", "run_experiment",
]
