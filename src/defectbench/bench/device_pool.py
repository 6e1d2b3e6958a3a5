"""Every GPU of one machine: one worker process per device runs one job at a time; this process records them.

``defectbench run CONFIG --gpus 0,1`` (or ``--gpus all``) gives :class:`DevicePoolBackend` the devices
``cuda:0, cuda:1``. The guarantees are the local runner's:

* this process stays the **only writer** of ``results.sqlite``: a worker (a ``spawn``-ed process pinned to its
  device, ``torch.cuda.set_device``) runs :func:`~defectbench.bench.runner.compute_job` with the job's device
  ``cuda:N``, writes the job's folder (maps, ``metrics.csv``, ``run.json``) and returns the outcome, which this
  process records with the same :class:`~defectbench.bench.runner.JobRecorder` as a local run;
* ``kill -9`` of this process: its workers die with it (``PR_SET_PDEATHSIG``, and a watchdog on the parent pid),
  finished jobs stay finished, and the same command resumes the rest without duplicates;
* a worker that crashes (segfault, out of host memory, ``kill -9``) fails only the job it was running (one line
  naming the device and the exit status); a fresh worker takes that device's next job;
* jobs start in the shared order of :mod:`defectbench.bench.schedule`: SAM selections of a task wait for the job
  computing their proposals; speed jobs start when every other job ended, one per device.

The device list is injectable (``DevicePoolBackend(["cpu", "cpu"])``): the tests run two CPU "devices".
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectbench.bench.config import ExperimentConfig
from defectbench.bench.executors import JobContext
from defectbench.bench.jobs import Job
from defectbench.bench.runner import (
    DatasetCache,
    JobOutcome,
    JobRecorder,
    RunPlan,
    compute_guarded,
    compute_job,
    run_metadata,
)
from defectbench.bench.schedule import Schedule
from defectbench.data.dataset import Dataset
from defectbench.errors import ConfigError, DefectbenchError

Compute = Callable[[Job, JobContext, dict[str, Any]], JobOutcome]


# -- which devices --------------------------------------------------------------------------------------------
def parse_gpus(spec: str, count: int) -> list[str]:
    """Turn ``--gpus all`` or ``--gpus 0,1,3`` into devices ``cuda:N`` of a machine with ``count`` visible GPUs."""
    text = spec.strip().lower()
    if text == "all":
        if count < 1:
            raise ConfigError("--gpus all: torch sees no CUDA GPU on this machine")
        return [f"cuda:{i}" for i in range(count)]
    parts = [p.strip().removeprefix("cuda:") for p in text.split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise ConfigError(f"--gpus {spec}: give GPU indices separated by commas (e.g. --gpus 0,1) or --gpus all")
    indices = [int(p) for p in parts]
    if len(set(indices)) != len(indices):
        raise ConfigError(f"--gpus {spec}: a GPU is listed twice; each GPU runs one job at a time")
    bad = [i for i in indices if i >= count]
    if bad:
        seen = "torch sees no CUDA GPU" if count == 0 else \
            f"this machine has {count} visible CUDA GPU{'' if count == 1 else 's'} (0 to {count - 1})"
        raise ConfigError(f"--gpus {spec}: GPU {bad[0]} does not exist; {seen}")
    return [f"cuda:{i}" for i in indices]


def resolve_gpus(spec: str) -> list[str]:
    """Return the devices ``--gpus SPEC`` names on this machine (one-line error naming what torch sees)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        from defectbench.runtime import gpu_unseen_hint, nvidia_driver_present

        why = f": {gpu_unseen_hint()}" if nvidia_driver_present() else " (no NVIDIA driver here)"
        raise ConfigError(f"--gpus {spec}: torch sees no CUDA GPU{why}; run without --gpus (one job at a time, "
                          "--device cpu)")
    return parse_gpus(spec, count)


# -- the worker's side ----------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when its parent dies (``kill -9`` too): the kernel's parent-death signal on Linux,
    and a watchdog thread that polls the parent pid everywhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="defectbench-parent-watch", daemon=True).start()


def init_worker(device: str, parent_pid: int, data_root: str | None,
                loader: Callable[[str, str | None], Dataset] | None, logs: bool) -> None:
    """Worker start: die with the parent, pin the CUDA device, keep one dataset cache for the worker's jobs."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
    _WORKER.update(device=device, datasets=DatasetCache(data_root, loader), logs=logs, run=None)


def worker_facts(config: ExperimentConfig) -> dict[str, Any]:
    """Return (and keep) the run facts of this worker: its pid, host, device and that device's description."""
    run = {**run_metadata(config, _WORKER["device"]), "backend": "gpus"}
    _WORKER["run"] = run
    return run


def compute_in_worker(job: Job, experiment_dir: str, compute: Compute) -> JobOutcome:
    """Compute one job on this worker's device; its files go straight into the experiment folder."""
    device = _WORKER["device"]
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if _WORKER["logs"] else (lambda line: None)
    ctx = JobContext(Path(experiment_dir), device, _WORKER["datasets"], log=log)
    return compute_guarded(compute, job, ctx, _WORKER["run"], f"on the {device} worker (pid {os.getpid()})")


# -- the parent's side ----------------------------------------------------------------------------------------
@dataclass
class _Slot:
    """One device: its worker process (an executor of one process), the job it runs, since when."""

    device: str
    executor: cf.ProcessPoolExecutor | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    processes: list[Any] = field(default_factory=list)  # the executor's worker processes, kept here: a broken
    # executor drops its own list (``_processes``), and the exit status with it
    job: Job | None = None
    future: cf.Future | None = None
    t0: float = 0.0
    dead: str | None = None  # why this device takes no more jobs (its worker cannot start)

    @property
    def free(self) -> bool:
        return self.job is None and self.dead is None

    def pid(self) -> int | None:
        return self.facts.get("pid")

    def exit_status(self) -> str:
        """How the worker process ended, in words (``exit code 3``, ``killed by SIGKILL``), '' when unknown."""
        for proc in self.processes:
            # the executor's own thread reaps a dead worker too: when it wins the race, our waitpid finds no child
            # and the code appears on the shared process object a moment later
            deadline = time.monotonic() + 3
            while proc.exitcode is None and time.monotonic() < deadline:
                proc.join(0.05)
            code = proc.exitcode
            if code is None:
                continue
            if code < 0:
                try:
                    return f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    return f"killed by signal {-code}"
            return f"exit code {code}"
        return ""


class DevicePoolBackend:
    """Run one job per device at once, each device's jobs in its own worker process (``run --gpus``)."""

    def __init__(self, devices: list[str], *, compute: Compute = compute_job, worker_logs: bool = True,
                 poll_s: float = 0.1, start_timeout_s: float = 300.0) -> None:
        if not devices:
            raise ConfigError("--gpus: no device to run on")
        self.devices = list(devices)
        self.compute = compute
        self.worker_logs = worker_logs
        self.poll_s = poll_s
        self.start_timeout_s = start_timeout_s
        self._slots: list[_Slot] = []
        self._plan: RunPlan | None = None

    def start(self, plan: RunPlan, jobs: list[Job]) -> dict[str, Any]:
        """Return the run facts: the devices (the workers start with the first job)."""
        listed = ", ".join(self.devices)
        return {"device": ",".join(self.devices), "backend": "gpus", "devices": self.devices,
                "device_desc": f"{len(self.devices)} worker processes, one job at a time on each of {listed}"}

    def _spawn(self, slot: _Slot) -> cf.Future:
        """Start the slot's worker process and ask for its run facts (the future resolves once it is up)."""
        plan = self._plan
        assert plan is not None
        slot.executor = cf.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
            initargs=(slot.device, os.getpid(), plan.data_root, plan.dataset_loader, self.worker_logs))
        future = slot.executor.submit(worker_facts, plan.config)  # the submit starts the worker process
        slot.processes = list((getattr(slot.executor, "_processes", None) or {}).values())
        return future

    def _ready(self, slot: _Slot, future: cf.Future) -> None:
        """Wait for a spawned worker's facts; a worker that cannot start retires its device (logged)."""
        try:
            slot.facts = future.result(timeout=self.start_timeout_s)
        except Exception as exc:  # noqa: BLE001 - a device whose worker cannot start takes no jobs
            status = slot.exit_status()
            slot.dead = (f"the worker process for {slot.device} could not start ({type(exc).__name__}: {exc}"
                         f"{'; ' + status if status else ''})")
            self._stop(slot)
            assert self._plan is not None
            self._plan.log(f"device {slot.device} takes no jobs: {slot.dead}")

    def _stop(self, slot: _Slot, kill: bool = False) -> None:
        """End the slot's worker process (at once with ``kill``)."""
        ex, slot.executor = slot.executor, None
        if ex is None:
            return
        if kill:
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                proc.kill()
        ex.shutdown(wait=not kill, cancel_futures=True)

    def run(self, plan: RunPlan, jobs: list[Job], recorder: JobRecorder, meta: dict[str, Any]) -> None:
        """Hand each device the next job the schedule allows; record starts and outcomes here, as they come."""
        self._plan = plan
        schedule = Schedule(jobs)
        self._slots = [_Slot(d) for d in self.devices]
        if not jobs:
            return
        starting = {id(s): (s, self._spawn(s)) for s in self._slots[:len(jobs)]}  # workers start in parallel
        for slot, future in starting.values():
            self._ready(slot, future)
        exp_dir = str(plan.experiment_dir.resolve())
        try:
            while not schedule.finished:
                for slot in self._slots:
                    if not slot.free:
                        continue
                    ready = schedule.ready(1)
                    if not ready:
                        break
                    self._submit(slot, ready[0], exp_dir, schedule, recorder)
                if all(s.dead for s in self._slots):
                    self._fail_rest(schedule, recorder, meta)
                    break
                busy = [s.future for s in self._slots if s.future is not None]
                if not busy:
                    continue
                cf.wait(busy, timeout=self.poll_s, return_when=cf.FIRST_COMPLETED)
                for slot in self._slots:
                    if slot.future is not None and slot.future.done():
                        self._collect(slot, schedule, recorder)
        except KeyboardInterrupt:
            for slot in self._slots:
                if slot.job is not None:
                    recorder.interrupted(slot.job.id, time.perf_counter() - slot.t0)
                self._stop(slot, kill=True)
            raise

    def _submit(self, slot: _Slot, job: Job, exp_dir: str, schedule: Schedule, recorder: JobRecorder) -> None:
        """Start ``job`` on ``slot`` (a fresh worker when its last one died)."""
        for attempt in range(2):
            if slot.executor is None:
                self._ready(slot, self._spawn(slot))
                if slot.dead:
                    return
            try:
                assert slot.executor is not None
                slot.future = slot.executor.submit(compute_in_worker, job, exp_dir, self.compute)
                break
            except BrokenProcessPool:  # the idle worker died since its last job: start another one
                self._stop(slot)
                if attempt:
                    raise
        schedule.started(job.id)
        recorder.started(job.id, slot.facts)
        slot.job, slot.t0 = job, time.perf_counter()

    def _collect(self, slot: _Slot, schedule: Schedule, recorder: JobRecorder) -> None:
        """Record the outcome of the slot's finished job; a worker that died fails that job, and the slot respawns."""
        job, future = slot.job, slot.future
        assert job is not None and future is not None
        slot.job = slot.future = None
        seconds = time.perf_counter() - slot.t0
        try:
            outcome = future.result()
        except BrokenProcessPool:
            status = slot.exit_status()
            message = (f"the worker process on {slot.device} (pid {slot.pid()}) died while running it"
                       f"{' (' + status + ')' if status else ''}; the other jobs went on")
            outcome = JobOutcome(job.id, "failed", message, message, seconds)
            self._stop(slot)
        except Exception as exc:  # noqa: BLE001 - e.g. an outcome that could not be pickled back
            message = f"on the {slot.device} worker: {type(exc).__name__}: {exc}"
            outcome = JobOutcome(job.id, "failed", message, message, seconds)
        schedule.ended(job.id)
        recorder.finished(outcome)

    def _fail_rest(self, schedule: Schedule, recorder: JobRecorder, meta: dict[str, Any]) -> None:
        """No device can take jobs: fail every job not started, with the reason."""
        why = "; ".join(dict.fromkeys(s.dead or "" for s in self._slots))
        for job in list(schedule.pending):
            schedule.started(job.id)
            recorder.started(job.id, meta)
            schedule.ended(job.id)
            recorder.finished(JobOutcome(job.id, "failed", f"no device could run it: {why}", f"no device could run it: {why}"))

    def close(self) -> None:
        """Stop the worker processes."""
        for slot in self._slots:
            self._stop(slot)
        self._slots = []
