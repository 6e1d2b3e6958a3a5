"""``run --gpus``: one worker process per device (two CPU "devices" here), the parent the store's only writer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from defectbench.bench import load_config, parse_config, run_experiment
from defectbench.bench.device_pool import DevicePoolBackend, parse_gpus
from defectbench.errors import ConfigError
from tests.bench.killing import ROWS, kill_after_done, query
from tests.bench.pool_fakes import crashing_compute, read_timeline, timed_compute
from tests.bench.synthetic import make_dataset, make_maps, write_config

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "defectbench.cli"]



def _pool(compute=timed_compute) -> DevicePoolBackend:
    return DevicePoolBackend(["cpu", "cpu"], compute=compute, worker_logs=False)


@pytest.fixture(scope="module")
def four(tmp_path_factory) -> Path:
    """A config of four maps methods on a small folder dataset."""
    root = tmp_path_factory.mktemp("pool")
    ds = make_dataset(root / "ds", 4, 6, 0)
    maps = {f"m{i}": make_maps(ds, root / f"m{i}", ("good", "poor")[i % 2], seed=i) for i in range(4)}
    return write_config(root / "c.yaml", ds, maps, experiment="pool")


def test_two_devices_run_at_once_and_store_what_the_sequential_runner_stores(tmp_path, four):
    cfg = load_config(four)
    ref = run_experiment(cfg, tmp_path / "ref", progress=False)
    got = run_experiment(cfg, tmp_path / "pool", progress=False, backend=_pool())
    assert sorted(got.done) == sorted(ref.done) and len(got.done) == 4 and not got.failed
    exp = tmp_path / "pool" / "pool"
    timeline = read_timeline(exp / "timeline.tsv")  # raises when a job ran twice
    assert sorted(timeline) == sorted(ref.done)
    pids = {pid for _, _, pid, _ in timeline.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, neither of them the parent
    spans = sorted(timeline.values())
    overlaps = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[2] != b[2] and b[0] < a[1]]
    assert overlaps, f"no two jobs ran at the same time: {spans}"
    db, want = exp / "results.sqlite", tmp_path / "ref" / "pool" / "results.sqlite"
    assert query(db, ROWS) == query(want, ROWS) and len(query(db, ROWS)) == 4 * 10
    assert query(db, "SELECT DISTINCT status, attempts FROM jobs") == [("done", 1)]
    assert {r[0] for r in query(db, "SELECT pid FROM jobs")} == pids  # each job records its worker's pid
    for job in ref.done:  # the workers wrote the job files
        assert (exp / job / "metrics.csv").read_bytes() == (tmp_path / "ref" / "pool" / job / "metrics.csv").read_bytes()
    assert '"backend": "gpus"' in query(db, "SELECT value FROM meta WHERE key = 'last_run'")[0][0]
    again = run_experiment(cfg, tmp_path / "pool", progress=False, backend=_pool())
    assert sorted(again.already_done) == sorted(ref.done) and not again.done


def test_a_crashing_worker_fails_its_job_only(tmp_path, four):
    raw = load_config(four).raw
    raw["methods"].insert(1, {"name": "crash", "type": "maps", "path": raw["methods"][0]["path"]})
    cfg = parse_config(raw)
    summary = run_experiment(cfg, tmp_path / "runs", progress=False, backend=_pool(crashing_compute))
    assert len(summary.done) == 4 and list(summary.failed) == ["syn-test/crash/seed0"]
    message = summary.failed["syn-test/crash/seed0"]
    assert "the worker process on cpu" in message and "died while running it (killed by SIGKILL)" in message
    assert "\n" not in message
    db = tmp_path / "runs" / "pool" / "results.sqlite"
    assert dict(query(db, "SELECT job_id, status FROM jobs"))["syn-test/crash/seed0"] == "failed"
    assert len({r[0] for r in query(db, "SELECT pid FROM jobs")}) == 3  # a fresh worker replaced the dead one


def test_sam_selections_wait_for_their_leader_and_speed_runs_last_alone(tmp_path, four):
    raw = load_config(four).raw
    sam = {"type": "sam", "model": "vit_b", "checkpoint": str(tmp_path / "none.pth")}
    raw["methods"] = [*raw["methods"][:2], {"name": "s-oracle", "select": "oracle-best", **sam},
                      {"name": "s-prior", "select": "prior", **sam}, {"name": "s-area", "select": "oracle-combine", **sam}]
    raw["speed"] = {"methods": ["s-oracle"], "device": "cpu"}
    cfg = parse_config(raw)
    run_experiment(cfg, tmp_path / "runs", progress=False, backend=_pool())
    t = read_timeline(tmp_path / "runs" / "pool" / "timeline.tsv")
    assert len(t) == 2 + 3 + 1
    lead = t["syn-test/s-oracle/seed0"]
    for follower in ("syn-test/s-prior/seed0", "syn-test/s-area/seed0"):
        assert t[follower][0] >= lead[1], f"{follower} started before the SAM job computing its proposals ended"
    speed = t["speed/sam-vit_b"]
    assert all(speed[0] >= end for job, (_, end, _, _) in t.items() if job != "speed/sam-vit_b")


def test_kill_minus_nine_of_the_parent_then_resume(tmp_path):
    ds = make_dataset(tmp_path / "ds", 4, 12, 0)
    maps = {f"m{i}": make_maps(ds, tmp_path / "maps" / f"m{i}", ("good", "poor")[i % 2], seed=i) for i in range(8)}
    cfg = write_config(tmp_path / "c.yaml", ds, maps, experiment="killme")
    ref = run_experiment(load_config(cfg), tmp_path / "ref", progress=False)
    runs = tmp_path / "runs"
    db = runs / "killme" / "results.sqlite"
    command = [sys.executable, "-m", "tests.bench.pool_driver", str(cfg), str(runs)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    running = "SELECT pid FROM jobs WHERE status = 'running'"
    workers = kill_after_done(proc, db, jobs=2, timeout_s=300,
                              before_kill=lambda: {r[0] for r in query(db, running)})
    # the workers die with their parent: no orphan keeps writing job files
    assert workers and proc.pid not in workers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    finished = {j for j, s in query(db, "SELECT job_id, status FROM jobs") if s == "done"}
    assert 2 <= len(finished) < 8
    per_job = dict(query(db, "SELECT job_id, COUNT(*) FROM images GROUP BY job_id"))
    assert set(per_job) == finished and all(n == 16 for n in per_job.values())  # 12 test + 4 train images
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{8 - len(finished)} done now, {len(finished)} already done, 0 failed" in resumed.stdout
    got, want = query(db, ROWS), query(tmp_path / "ref" / "killme" / "results.sqlite", ROWS)
    assert len(got) == 8 * 16 and len({(r[0], r[1]) for r in got}) == len(got) and got == want
    assert {s for _, s in query(db, "SELECT job_id, status FROM jobs")} == {"done"}
    assert len(ref.done) == 8


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_parse_gpus():
    assert parse_gpus("all", 3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert parse_gpus("0,2", 3) == ["cuda:0", "cuda:2"] and parse_gpus(" 1 ", 2) == ["cuda:1"]
    with pytest.raises(ConfigError, match=r"--gpus 0,4: GPU 4 does not exist; this machine has 3 visible CUDA GPUs \(0 to 2\)"):
        parse_gpus("0,4", 3)
    with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
        parse_gpus("all", 0)
    with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
        parse_gpus("0", 0)
    with pytest.raises(ConfigError, match="listed twice"):
        parse_gpus("1,1", 2)
    with pytest.raises(ConfigError, match="give GPU indices separated by commas"):
        parse_gpus("0;1", 2)


@pytest.mark.parametrize("extra, message", [
    (["--ray"], "--gpus 0 runs on this machine's GPUs and --ray on a Ray cluster"),
    (["--device", "cpu"], "--gpus 0 sets each job's device (cuda:N); drop --device cpu"),
    ([], "--gpus 0: "),  # no GPU here (torch sees none): one line, exit 2
])
def test_cli_gpus_errors(tmp_path, four, extra, message):
    res = subprocess.run([*CLI, "run", str(four), "--runs-dir", str(tmp_path), "--gpus", "0", *extra],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "pool").exists()
