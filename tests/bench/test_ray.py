"""The experiment matrix on a real local Ray cluster: same store as a local run, failures, kill -9 of a worker and of the driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from defectbench.bench import expand_jobs, load_config, parse_config, run_experiment
from defectbench.bench.runner import JobOutcome, compute_job
from defectbench.bench.status import experiment_status
from tests.bench.killing import ROWS, kill_after_done, query
from tests.bench.synthetic import make_dataset, make_maps, write_config
from tests.isolated import in_child

# a Ray cluster (raylet, GCS, workers that kill process groups) is started by the test process: not by a long-lived
# pytest-xdist worker, whose other tests it could outlive (tests/isolated.py)
pytestmark = pytest.mark.isolated

ray = pytest.importorskip("ray")

from defectbench.bench.ray_backend import (  # noqa: E402
    RayBackend,
    check_reachable,
    infeasible,
    job_resources,
    ray_options,
)

JOBS = ("SELECT job_id, kind, method, status, error, n_images, run_dir, maps_dir, spec_hash, info, position "
        "FROM jobs ORDER BY job_id")
CLI = [sys.executable, "-m", "defectbench.cli"]


@pytest.fixture(scope="module")
def cluster() -> str:
    """One 2-CPU Ray cluster for the module (started by this process, stopped with it); yields its address (None
    in the parent of the isolated module, which only reports the child's outcomes)."""
    if not in_child():
        yield None
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2,
             log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """A folder dataset and maps of two fake methods."""
    root = tmp_path_factory.mktemp("raysynth")
    ds = make_dataset(root / "ds", 6, 8, 0)
    return {"dataset": ds, "good": make_maps(ds, root / "good", "good", seed=1),
            "poor": make_maps(ds, root / "poor", "poor", seed=2), "root": root}


def _backend(address: str, **kw) -> RayBackend:
    return RayBackend(address, worker_logs=False, **kw)


def test_same_store_with_and_without_ray(tmp_path, small, cluster):
    cfg = load_config(write_config(tmp_path / "c.yaml", small["dataset"],
                                   {"good": small["good"], "poor": small["poor"], "absent": tmp_path / "nope"}))
    raw = dict(cfg.raw)  # plus a SAM job whose checkpoint is nowhere: skipped, with the file to get
    raw["methods"] = [*raw["methods"], {"name": "sam-b", "type": "sam", "model": "vit_b", "select": "oracle-best",
                                        "checkpoint": str(tmp_path / "no_sam.pth")}]
    raw["device"] = "cpu"
    cfg = parse_config(raw)
    t0 = time.perf_counter()
    local = run_experiment(cfg, tmp_path / "local", progress=False)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_ray = run_experiment(cfg, tmp_path / "ray", progress=False, backend=_backend(cluster))
    t_ray = time.perf_counter() - t0
    print(f"\nsame config, 4 jobs: local {t_local:.2f} s, Ray (2-CPU local cluster, already up) {t_ray:.2f} s")
    assert sorted(on_ray.done) == sorted(local.done) == ["syn-test/good/seed0", "syn-test/poor/seed0"]
    assert on_ray.failed == local.failed and "maps folder of method absent not found" in on_ray.failed["syn-test/absent/seed0"]
    assert on_ray.skipped == local.skipped and "no_sam.pth" in {**on_ray.failed, **on_ray.skipped}["syn-test/sam-b/seed0"]
    db_local, db_ray = tmp_path / "local/synth/results.sqlite", tmp_path / "ray/synth/results.sqlite"
    got, want = query(db_ray, ROWS), query(db_local, ROWS)
    assert len(got) == 2 * 14 and got == want
    assert query(db_ray, JOBS) == query(db_local, JOBS)
    assert query(db_ray, "SELECT attempts FROM jobs") == [(1,)] * 4
    # the job files came back from the workers: same per-image metrics file
    for job in ("syn-test/good/seed0", "syn-test/poor/seed0"):
        assert (tmp_path / "ray/synth" / job / "metrics.csv").read_bytes() == \
               (tmp_path / "local/synth" / job / "metrics.csv").read_bytes()
    # a worker, not the driver, ran them (its pid) and the run says it was on Ray
    pids = {r[0] for r in query(db_ray, "SELECT pid FROM jobs")}
    assert os.getpid() not in pids and len(pids) >= 1
    assert '"backend": "ray"' in query(db_ray, "SELECT value FROM meta WHERE key = 'last_run'")[0][0]
    # resumed: nothing finished is recomputed
    again = run_experiment(cfg, tmp_path / "ray", progress=False, backend=_backend(cluster))
    assert sorted(again.already_done) == sorted(local.done) and not again.done


def test_missing_data_on_worker_and_infeasible_resources(tmp_path, small, cluster):
    cfg = load_config(write_config(tmp_path / "c.yaml", small["dataset"], {"good": small["good"], "big": small["poor"]}))
    cfg.raw["datasets"].append({"name": f"folder:{tmp_path / 'gone'}", "id": "gone"})
    cfg.raw["methods"][1]["resources"] = {"gpu": 1, "cpu": 1}  # a GPU job on a CPU-only cluster
    cfg = parse_config(cfg.raw)
    summary = run_experiment(cfg, tmp_path / "runs", progress=False, backend=_backend(cluster))
    assert summary.done == ["syn-test/good/seed0"]
    gone = summary.failed["gone-test/good/seed0"]
    assert f"dataset folder {tmp_path / 'gone'} not found on Ray worker" in gone and "same path on every node" in gone
    for job_id in ("syn-test/big/seed0", "gone-test/big/seed0"):
        assert "no node of the Ray cluster has the resources this job asks for (GPU 1" in summary.failed[job_id]
    st = experiment_status(tmp_path / "runs" / "synth")
    assert st.counts() == {"done": 1, "failed": 3} and all("\n" not in (j.error or "") for j in st.jobs)


def test_resources_by_method_type():
    raw = {"experiment": "r", "datasets": ["sd900"], "methods": [
        {"name": "net", "type": "sod", "model": "litenet", "resources": {"gpu": 0.5, "cpu": 4, "A100": 1}},
        {"name": "m", "type": "maps", "path": "x"}]}
    cfg = parse_config(raw)
    from defectbench.bench.jobs import expand_jobs

    maps, net = expand_jobs(cfg)[:2]  # cheap methods first
    assert (maps.method.type, net.method.type) == ("maps", "sod")
    assert job_resources(net, cfg, "auto", 8) == {"gpu": 0.5, "cpu": 4, "A100": 1}
    assert ray_options({"gpu": 0.5, "cpu": 4, "A100": 1}) == {"num_cpus": 4, "num_gpus": 0.5, "resources": {"A100": 1}}
    assert job_resources(maps, cfg, "auto", 8) == {"cpu": 1}
    raw["methods"][0].pop("resources")
    cfg = parse_config(raw)
    net = expand_jobs(cfg)[1]
    assert job_resources(net, cfg, "auto", 8) == {"cpu": 1, "gpu": 1}
    assert job_resources(net, cfg, "cpu", 8) == {"cpu": 1} and job_resources(net, cfg, "auto", 0) == {"cpu": 1}
    nodes = [{"Resources": {"CPU": 8, "GPU": 1}}, {"Resources": {"CPU": 2}}]
    assert infeasible({"cpu": 4, "gpu": 1}, nodes) is None
    assert "GPU 2" in infeasible({"gpu": 2}, nodes) and "largest node has GPU 1" in infeasible({"gpu": 2}, nodes)
    raw["methods"][0]["resources"] = {"gpu": -1}
    from defectbench.errors import ConfigError

    with pytest.raises(ConfigError, match="'resources' must map resource names to amounts >= 0"):
        parse_config(raw)


def test_unreachable_address_fails_fast():
    from defectbench.errors import DefectbenchError

    t0 = time.perf_counter()
    with pytest.raises(DefectbenchError, match="--ray 127.0.0.1:1: nothing answers there"):
        check_reachable("127.0.0.1:1")
    assert time.perf_counter() - t0 < 10
    check_reachable("auto")  # resolved by Ray itself


def test_artifacts_folder_holds_job_files(tmp_path, small, cluster):
    cfg = load_config(write_config(tmp_path / "c.yaml", small["dataset"], {"good": small["good"]}))
    summary = run_experiment(cfg, tmp_path / "runs", progress=False,
                             backend=_backend(cluster, artifacts=tmp_path / "shared"))
    assert summary.done == ["syn-test/good/seed0"]
    job_dir = tmp_path / "shared" / "synth" / "syn-test/good/seed0"
    assert (job_dir / "metrics.csv").is_file() and not (tmp_path / "runs/synth/syn-test/good/seed0").exists()
    run_dir = query(tmp_path / "runs/synth/results.sqlite", "SELECT run_dir FROM jobs")[0][0]
    assert Path(run_dir) == job_dir.resolve()


def slow_compute(job, ctx, meta) -> JobOutcome:
    """compute_job after a pause long enough to kill the worker mid-job (the pause uses no CPU)."""
    time.sleep(3)
    return compute_job(job, ctx, meta)


def test_worker_killed_mid_job_is_retried_and_recorded_once(tmp_path, small, cluster):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    cfg = load_config(write_config(tmp_path / "c.yaml", small["dataset"], {"good": small["good"]}))
    assert run_experiment(cfg, tmp_path / "ref", progress=False).done == ["syn-test/good/seed0"]
    exp = tmp_path / "runs" / "synth"
    result: dict = {}
    driver = threading.Thread(target=lambda: result.update(s=run_experiment(
        cfg, tmp_path / "runs", progress=False, backend=_backend(cluster, compute=slow_compute))))
    driver.start()
    victim, deadline = None, time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if (exp / "results.sqlite").exists():
            st = experiment_status(exp)
            running = [j for j in st.jobs if st.states[j.job_id] == "running"]
            if running and running[0].pid and running[0].pid != os.getpid():
                victim = running[0]
    assert victim is not None, "the job never showed as running"
    shown = subprocess.run([*CLI, "status", str(exp)], capture_output=True, text=True, timeout=60)
    assert "running" in shown.stdout and f"pid {victim.pid}" in shown.stdout and "a runner is active" in shown.stdout
    os.kill(victim.pid, signal.SIGKILL)
    driver.join(120)
    assert not driver.is_alive() and result["s"].done == ["syn-test/good/seed0"]
    db = exp / "results.sqlite"
    assert query(db, "SELECT status, attempts, error FROM jobs") == [("done", 2, None)]
    assert query(db, "SELECT pid FROM jobs")[0][0] != victim.pid  # recorded from the retry
    got, want = query(db, ROWS), query(tmp_path / "ref/synth/results.sqlite", ROWS)
    assert len(got) == 14 and got == want


def test_driver_killed_mid_run_then_resumed(tmp_path, cluster):
    ds = make_dataset(tmp_path / "ds", 10, 50, 0, size=128)
    maps = {f"m{i}": make_maps(ds, tmp_path / "maps" / f"m{i}", ("good", "poor")[i % 2], seed=i) for i in range(8)}
    cfg = write_config(tmp_path / "c.yaml", ds, maps, experiment="killme")
    ref = run_experiment(load_config(cfg), tmp_path / "ref", progress=False)
    assert len(ref.done) == 8
    runs = tmp_path / "runs"
    db = runs / "killme" / "results.sqlite"
    command = [*CLI, "run", str(cfg), "--runs-dir", str(runs), "--ray", cluster]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    kill_after_done(proc, db, jobs=2, timeout_s=300)
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    finished = {j for j, s in query(db, "SELECT job_id, status FROM jobs") if s == "done"}
    assert 2 <= len(finished) < 8
    per_job = dict(query(db, "SELECT job_id, COUNT(*) FROM images GROUP BY job_id"))
    assert set(per_job) == finished and all(n == 60 for n in per_job.values())
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{8 - len(finished)} done now, {len(finished)} already done" in resumed.stdout
    got, want = query(db, ROWS), query(tmp_path / "ref" / "killme" / "results.sqlite", ROWS)
    assert len(got) == len(want) == 8 * 60 and len({(r[0], r[1]) for r in got}) == len(got)
    assert got == want
    assert {s for _, s in query(db, "SELECT job_id, status FROM jobs")} == {"done"}


def test_schedule_and_worker_env_on_ray(tmp_path, small, cluster, monkeypatch):
    import ray.cloudpickle

    from defectbench.bench.ray_backend import speed_resources, worker_env
    from tests.bench import pool_fakes

    ray.cloudpickle.register_pickle_by_value(pool_fakes)  # workers need not import tests/
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DEFECTBENCH_DATA", str(tmp_path / "data"))
    raw = load_config(write_config(tmp_path / "c.yaml", small["dataset"], {"good": small["good"]})).raw
    sam = {"type": "sam", "model": "vit_b", "checkpoint": str(tmp_path / "none.pth")}
    raw["methods"] += [{"name": "s-oracle", "select": "oracle-best", **sam}, {"name": "s-prior", "select": "prior", **sam}]
    raw["speed"] = {"methods": ["s-oracle"], "device": "cpu"}
    cfg = parse_config(raw)
    summary = run_experiment(cfg, tmp_path / "runs", progress=False, data_root=str(small["root"]),
                             backend=_backend(cluster, artifacts=tmp_path / "shared", compute=env_compute))
    assert summary.done == ["syn-test/good/seed0"]
    t = pool_fakes.read_timeline(tmp_path / "shared" / "synth" / "timeline.tsv")
    assert t["syn-test/s-prior/seed0"][0] >= t["syn-test/s-oracle/seed0"][1]  # waited for the proposals' job
    assert all(t["speed/sam-vit_b"][0] >= end for job, (_, end, _, _) in t.items() if not job.startswith("speed/"))
    import json

    info = json.loads(query(tmp_path / "runs/synth/results.sqlite", "SELECT info FROM jobs WHERE status = 'done'")[0][0])
    assert info["env"] == {"DEFECTBENCH_CHECKPOINTS": str(tmp_path / "ckpt"), "DEFECTBENCH_CACHE": str(tmp_path / "cache"),
                           "DEFECTBENCH_DATA": str(tmp_path / "data")} == worker_env()
    speed_job = [j for j in expand_jobs(cfg) if j.kind == "speed"][0]
    assert speed_resources(speed_job, cfg, "auto", 4) == {"cpu": 1.0, "gpu": 1.0}
    assert speed_resources(speed_job, cfg, "cpu", 4) == {"cpu": 1.0}


def env_compute(job, ctx, meta) -> JobOutcome:
    """The timed fake compute, plus the worker's DEFECTBENCH_* variables in the outcome's info."""
    from tests.bench.pool_fakes import timed_compute

    out = timed_compute(job, ctx, meta)
    out.info["env"] = {k: v for k, v in os.environ.items() if k in ("DEFECTBENCH_CHECKPOINTS", "DEFECTBENCH_CACHE",
                                                                    "DEFECTBENCH_DATA")}
    return out
