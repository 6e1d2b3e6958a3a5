"""Run an experiment's job matrix on a Ray cluster: one Ray task per pending job, the driver the store's only writer.

* Every pending job becomes a Ray task asking for its method's resources (``resources: {gpu: 1, cpu: 4}`` in
  the config, else defaults by method type: one CPU, plus one GPU for ``sod``/``sam`` jobs when the cluster has
  GPUs and the device is not ``cpu``). A job no alive node could ever hold fails at once with that reason.
* A task runs :func:`~defectbench.bench.runner.compute_job` on its worker and returns the outcome (per-image
  scores). The job's files (maps, ``metrics.csv``, ``run.json``) are written under ``artifacts`` (a folder on
  storage every node sees at the same path) or, without it, made in a scratch folder on the worker and
  returned to the driver, which writes them into the experiment folder before it records the job.
* Datasets reach workers by path, never through the object store: each task checks the data root (or the
  dataset folder) on its node before running and fails with a message naming the node when it is absent.
  Relative paths of the config are taken from the driver's working directory (it must exist on the node too).
* A worker killed mid-job (``kill -9``, a lost node) has its task retried by Ray (``max_retries``); the retry
  is recorded as a new attempt of the same job and its result is stored once. A driver killed mid-run leaves
  its jobs ``running`` (shown as interrupted); the same command run again computes them anew.
* ``defectbench status`` shows a job as running from the moment a worker starts it, with that worker's pid and
  host: each task reports its start to a small actor that the driver polls.
* Tasks are submitted in the shared order of :mod:`defectbench.bench.schedule`: SAM selections of a task are
  submitted when the SAM job computing their proposals ended; speed jobs when every other job ended, each asking
  for a whole GPU (one at a time on a cluster without GPUs).
* Every task gets ``DEFECTBENCH_CHECKPOINTS`` and ``DEFECTBENCH_CACHE`` (as the driver resolves them) and
  ``DEFECTBENCH_DATA`` (when set) in its runtime environment (:func:`worker_env`).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectbench.atomic import atomic_write_bytes
from defectbench.bench.config import ExperimentConfig
from defectbench.bench.executors import JobContext
from defectbench.bench.jobs import Job
from defectbench.bench.schedule import Schedule
from defectbench.bench.runner import (
    DatasetCache,
    JobOutcome,
    JobRecorder,
    RunPlan,
    compute_guarded,
    compute_job,
    resolve_job_device,
    run_metadata,
)
from defectbench.data.dataset import Dataset
from defectbench.errors import DataError, DefectbenchError
from defectbench.paths import DATA_ENV, data_root_candidates

GPU_TYPES = ("sod", "sam", "sam_prompt")
Compute = Callable[[Job, JobContext, dict[str, Any]], JobOutcome]


def import_ray() -> Any:
    """Import Ray, or say how to install it."""
    try:
        import ray
    except ImportError:
        raise DefectbenchError("--ray needs the Ray package: pip install 'defectbench[cluster]' (or pip install ray)") from None
    return ray


# -- resources ------------------------------------------------------------------------------------------------
def method_resources(config: ExperimentConfig, method_name: str) -> dict[str, float] | None:
    """Return the ``resources`` a config gives a method (``{cpu: 4, gpu: 1, <custom>: n}``, validated), or None."""
    return config.method(method_name).resources


def job_resources(job: Job, config: ExperimentConfig, device: str, cluster_gpus: float) -> dict[str, float]:
    """Return what a job's task asks for: the method's ``resources`` else one CPU (+ one GPU for models when useful)."""
    given = method_resources(config, job.method.name)
    if given is not None:
        return given
    wants_gpu = job.method.type in GPU_TYPES and device != "cpu" and cluster_gpus > 0
    return {"cpu": 1.0, **({"gpu": 1.0} if wants_gpu else {})}


def speed_resources(job: Job, config: ExperimentConfig, device: str, cluster_gpus: float) -> dict[str, float]:
    """Return what a speed job's task asks for: a whole GPU (nothing else shares it while it times) when it runs on
    one, else its method's resources or one CPU."""
    given = dict(method_resources(config, job.method.name) or {"cpu": 1.0})
    if device != "cpu" and cluster_gpus > 0:
        given["gpu"] = max(1.0, float(given.get("gpu", 0.0)))
    return given


def worker_env() -> dict[str, str]:
    """Return the environment every task gets: ``DEFECTBENCH_CHECKPOINTS`` and ``DEFECTBENCH_CACHE`` as the driver
    resolves them, and ``DEFECTBENCH_DATA`` when it is set (paths: they must exist on every node)."""
    from defectbench.paths import CACHE_ENV, CHECKPOINTS_ENV, cache_root, weights_dir

    env = {CHECKPOINTS_ENV: str(weights_dir().expanduser().resolve()), CACHE_ENV: str(cache_root().expanduser().resolve())}
    if os.environ.get(DATA_ENV):
        env[DATA_ENV] = str(Path(os.environ[DATA_ENV]).expanduser().resolve())
    return env


def ray_options(resources: dict[str, float]) -> dict[str, Any]:
    """Translate ``{cpu, gpu, <custom>}`` into Ray task options (``num_cpus``, ``num_gpus``, ``resources``)."""
    custom = {k: v for k, v in resources.items() if k not in ("cpu", "gpu")}
    out: dict[str, Any] = {"num_cpus": resources.get("cpu", 1.0), "num_gpus": resources.get("gpu", 0.0)}
    if custom:
        out["resources"] = custom
    return out


def infeasible(resources: dict[str, float], nodes: list[dict[str, Any]]) -> str | None:
    """Return why no alive node could ever run a task asking for ``resources`` (None when one could)."""
    wanted = {{"cpu": "CPU", "gpu": "GPU"}.get(k, k): v for k, v in resources.items() if v > 0}
    if not wanted:
        return None
    for node in nodes:
        have = node.get("Resources") or {}
        if all(have.get(k, 0.0) >= v for k, v in wanted.items()):
            return None
    asked = ", ".join(f"{k} {v:g}" for k, v in wanted.items())
    best = ", ".join(f"{k} {max((n.get('Resources') or {}).get(k, 0.0) for n in nodes):g}" for k in wanted) if nodes else "no node"
    return (f"no node of the Ray cluster has the resources this job asks for ({asked}; the largest node has {best}); "
            "change the method's 'resources' in the config or add such a node")


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``host:port`` address (Ray itself would retry for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # ``auto`` and other forms: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise DefectbenchError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); start a head with "
                               "`ray start --head` and pass the address it prints, or use --ray auto on a cluster node") from None


# -- the worker's side ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerPlan:
    """What travels with every task (never a dataset): settings, paths, and where job files go."""

    config: ExperimentConfig
    device: str
    data_root: str | None
    cwd: str
    experiment_dir: str
    artifacts_dir: str | None
    dataset_loader: Callable[[str, str | None], Dataset] | None = None
    compute: Compute = compute_job
    worker_logs: bool = True

    @property
    def ships_files(self) -> bool:
        """True when job files are made in a scratch folder on the worker and returned to the driver."""
        return self.artifacts_dir is None


class StartBoard:
    """A tiny actor where tasks report that they started (job id + the worker's run facts); the driver drains it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def started(self, job_id: str, run: dict[str, Any]) -> None:
        """Note that a worker started a job."""
        self.events.append((job_id, run))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """Return and forget the starts noted since the last call."""
        out, self.events = self.events, []
        return out


def where_am_i() -> str:
    """Return ``host (pid N)`` of this process, for messages about a worker."""
    return f"{socket.gethostname()} (pid {os.getpid()})"


def check_data_on_worker(job: Job, data_root: str | None) -> str | None:
    """Return why the job's dataset cannot be reached from this node (None when its folder or data root exists)."""
    if job.task is None:
        return None
    name = job.task.dataset
    how = ("datasets reach Ray workers by path: make it exist at the same path on every node (shared storage) "
           "or pass --data-root with such a path")
    if name.startswith("folder:"):
        folder = Path(name.split(":", 1)[1]).expanduser()
        if not folder.is_dir():
            return f"dataset folder {folder} not found on Ray worker {where_am_i()}; {how}"
        return None
    roots = data_root_candidates(data_root)
    if not any(r.is_dir() for r in roots):
        shown = " or ".join(str(r.resolve()) for r in roots)
        return f"data root {shown} not found on Ray worker {where_am_i()}; {how}"
    return None


def _loader_on_worker(loader: Callable[[str, str | None], Dataset] | None) -> Callable[[str, str | None], Dataset]:
    """Wrap a dataset loader so that its errors name the worker they happened on."""
    from defectbench.data import load_dataset

    base = loader or load_dataset

    def load(name: str, data_root: str | None) -> Dataset:
        try:
            return base(name, data_root)
        except DataError as exc:
            raise DataError(f"on Ray worker {where_am_i()}: {exc}") from None

    return load


def read_tree(folder: Path) -> dict[str, bytes]:
    """Return every file under ``folder`` as relative POSIX path -> bytes (empty when the folder is absent)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    """Replace ``folder`` by the given files (each written atomically)."""
    shutil.rmtree(folder, ignore_errors=True)
    for rel, data in files.items():
        target = folder / rel
        if folder.resolve() not in target.resolve().parents:
            raise DefectbenchError(f"{rel}: a job file outside its job folder; refusing to write it")
        atomic_write_bytes(target, data)


def _absolute(path: str | None, base: Path) -> str | None:
    if not path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def compute_on_worker(job: Job, plan: WorkerPlan, board: Any) -> JobOutcome:
    """The Ray task: report the start, check the data, compute the job, and return its outcome (and files)."""
    import ray

    t0 = time.perf_counter()
    if Path(plan.cwd).is_dir():
        os.chdir(plan.cwd)  # relative paths of the config are the driver's
    try:
        device = resolve_job_device(plan.device, [job])
        run = {**run_metadata(plan.config, device), "backend": "ray"}
    except DefectbenchError as exc:
        ray.get(board.started.remote(job.id, {**run_metadata(plan.config, plan.device), "backend": "ray"}))
        message = f"on Ray worker {where_am_i()}: {exc}"
        return JobOutcome(job.id, "failed", message, message, time.perf_counter() - t0)
    ray.get(board.started.remote(job.id, run))  # waits, so the start is known before any result
    problem = check_data_on_worker(job, plan.data_root)
    if problem:
        return JobOutcome(job.id, "failed", problem, problem, time.perf_counter() - t0)
    exp_dir = Path(tempfile.mkdtemp(prefix="defectbench-job-")) if plan.ships_files else Path(plan.artifacts_dir)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if plan.worker_logs else (lambda line: None)
    ctx = JobContext(exp_dir, device, DatasetCache(plan.data_root, _loader_on_worker(plan.dataset_loader)), log=log)
    try:
        outcome = compute_guarded(plan.compute, job, ctx, run, f"on Ray worker {where_am_i()}")
        if plan.ships_files:
            outcome.files = read_tree(job.run_dir(exp_dir))
        elif exp_dir.resolve() != Path(plan.experiment_dir).resolve():
            outcome.run_dir = _absolute(outcome.run_dir, exp_dir)
            outcome.maps_dir = _absolute(outcome.maps_dir, exp_dir)
        return outcome
    finally:
        if plan.ships_files:
            shutil.rmtree(exp_dir, ignore_errors=True)


# -- the driver's side ----------------------------------------------------------------------------------------
class RayBackend:
    """Compute jobs as Ray tasks on a cluster (``address``: ``auto``, ``host:port``; None starts a local one).

    ``artifacts``: a folder every node sees at the same path; job folders go to ``<artifacts>/<experiment>/``
    (the runs folder itself when it is shared). Without it, a local cluster started here writes into the
    experiment folder, and workers of a cluster given by address return the job files to the driver.
    """

    def __init__(self, address: str | None = None, artifacts: str | Path | None = None, *, num_cpus: int | None = None,
                 max_retries: int = 3, poll_s: float = 0.2, worker_logs: bool = True, compute: Compute = compute_job) -> None:
        self.address = address or None
        self.artifacts = Path(artifacts).expanduser().resolve() if artifacts else None
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.poll_s = poll_s
        self.worker_logs = worker_logs
        self.compute = compute
        self._initialized_here = False
        self._ray: Any = None
        self._nodes: list[dict[str, Any]] = []

    def start(self, plan: RunPlan, jobs: list[Job]) -> dict[str, Any]:
        """Connect to the cluster (or start a local one); return the run facts (the cluster, the device asked for)."""
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            if self.address is None:
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False,
                         log_to_driver=self.worker_logs, configure_logging=False)
            else:
                check_reachable(self.address)
                try:
                    ray.init(address=self.address, log_to_driver=self.worker_logs, configure_logging=False)
                except (ConnectionError, ValueError, RuntimeError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise DefectbenchError(
                        f"--ray {self.address}: cannot connect to a Ray cluster there ({first}); start one with `ray start "
                        "--head`, or give no address to start a local one; a cluster with token authentication also needs "
                        "RAY_AUTH_MODE=token here (and its token in ~/.ray/auth_token or $RAY_AUTH_TOKEN)") from None
            self._initialized_here = True
        self._nodes = [n for n in ray.nodes() if n.get("Alive")]
        total = ray.cluster_resources()
        desc = (f"Ray cluster ({self.address or 'local'}): {len(self._nodes)} node(s), {total.get('CPU', 0):g} CPUs, "
                f"{total.get('GPU', 0):g} GPUs")
        return {"device": plan.device, "device_desc": desc, "backend": "ray",
                "ray": {"address": self.address or "local", "version": ray.__version__, "nodes": len(self._nodes),
                        "resources": {k: v for k, v in total.items() if k in ("CPU", "GPU")}}}

    def close(self) -> None:
        """Disconnect if this backend connected (a local cluster it started stops; one given by address keeps running)."""
        if self._initialized_here and self._ray is not None:
            self._ray.shutdown()
            self._initialized_here = False

    def worker_plan(self, plan: RunPlan) -> WorkerPlan:
        """Return what every task of this run gets."""
        exp_dir = plan.experiment_dir.resolve()
        if self.artifacts is not None:
            artifacts: str | None = str(self.artifacts / plan.config.experiment)
        elif self.address is None:
            artifacts = str(exp_dir)  # a local cluster: the workers see this folder
        else:
            artifacts = None
        data_root = plan.data_root or os.environ.get(DATA_ENV)
        return WorkerPlan(plan.config, plan.device, str(Path(data_root).expanduser().resolve()) if data_root else None,
                          os.getcwd(), str(exp_dir), artifacts, plan.dataset_loader, self.compute, self.worker_logs)

    def run(self, plan: RunPlan, jobs: list[Job], recorder: JobRecorder, meta: dict[str, Any]) -> None:
        """Submit every job as a task, record starts as workers report them and outcomes as they come back."""
        ray = self._ray
        wplan = self.worker_plan(plan)
        gpus = sum((n.get("Resources") or {}).get("GPU", 0.0) for n in self._nodes)
        board = ray.remote(num_cpus=0)(StartBoard).remote()
        task = ray.remote(compute_on_worker)
        env = {"env_vars": worker_env()}
        refs: dict[Any, Job] = {}
        schedule = Schedule(jobs)
        # speed jobs ask for a whole GPU each; without GPUs they time one at a time
        speed_slots = None if plan.device != "cpu" and gpus > 0 else 1

        def submit_ready() -> None:
            while True:
                ready = schedule.ready(speed_slots=speed_slots)
                if not ready:
                    return
                for job in ready:
                    schedule.started(job.id)
                    if job.kind == "speed":
                        resources = speed_resources(job, plan.config, plan.device, gpus)
                    else:
                        resources = job_resources(job, plan.config, plan.device, gpus)
                    why = infeasible(resources, self._nodes)
                    if why:
                        recorder.started(job.id, meta)
                        schedule.ended(job.id)
                        recorder.finished(JobOutcome(job.id, "failed", why, why))
                        continue
                    opts = ray_options(resources)
                    ref = task.options(**opts, max_retries=self.max_retries, retry_exceptions=False,
                                       runtime_env=env).remote(job, wplan, board)
                    refs[ref] = job

        started: dict[str, float] = {}
        try:
            submit_ready()
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=self.poll_s)
                in_flight = {j.id for j in refs.values()}
                for job_id, run in ray.get(board.drain.remote()):
                    if job_id in in_flight:  # a retry after a lost worker starts the same job again
                        recorder.started(job_id, run)
                        started[job_id] = time.time()
                for ref in ready:
                    job = refs.pop(ref)
                    outcome = self._fetch(ref, job, started.get(job.id))
                    if job.id not in started:
                        recorder.started(job.id, meta)
                    if outcome.files is not None:
                        write_tree(job.run_dir(plan.experiment_dir), outcome.files)
                    schedule.ended(job.id)
                    recorder.finished(outcome)
                if ready:
                    submit_ready()  # the selections waiting for a SAM job, speed jobs once the rest ended
        except KeyboardInterrupt:
            for ref, job in refs.items():
                ray.cancel(ref, force=True)
                if job.id in started:
                    recorder.interrupted(job.id, time.time() - started[job.id])
            raise
        finally:
            ray.kill(board)

    def _fetch(self, ref: Any, job: Job, started: float | None) -> JobOutcome:
        """Return a task's outcome; a task Ray gave up on (worker died past retries, out of memory) is a failure."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            text = str(exc).strip().splitlines()
            first = next((line for line in text if line.strip()), "")
            message = f"on the Ray cluster: {type(exc).__name__}: {first}"
            if isinstance(exc, ray.exceptions.WorkerCrashedError):
                message = f"the Ray worker running it died {self.max_retries + 1} times; {message}"
            seconds = time.time() - started if started else 0.0
            return JobOutcome(job.id, "failed", message, message, seconds)
