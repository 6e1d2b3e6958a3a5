"""kill -9 of a real `defectbench run` mid-run, then resume: the results equal an uninterrupted run's, no duplicates."""

from __future__ import annotations

import subprocess
import sys

from defectbench.bench import load_config, run_experiment
from tests.bench.killing import ROWS, kill_after_done, query
from tests.bench.synthetic import make_dataset, make_maps, write_config

CLI = [sys.executable, "-m", "defectbench.cli"]



def test_kill_minus_nine_then_resume(tmp_path):
    ds = make_dataset(tmp_path / "ds", 10, 50, 0, size=128)
    maps = {f"m{i}": make_maps(ds, tmp_path / "maps" / f"m{i}", ("good", "poor")[i % 2], seed=i) for i in range(8)}
    cfg = write_config(tmp_path / "c.yaml", ds, maps, experiment="killme")
    ref = run_experiment(load_config(cfg), tmp_path / "ref", progress=False)
    assert len(ref.done) == 8

    runs = tmp_path / "runs"
    db = runs / "killme" / "results.sqlite"
    proc = subprocess.Popen([*CLI, "run", str(cfg), "--runs-dir", str(runs)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    kill_after_done(proc, db, jobs=2, timeout_s=600)  # generous: the machine may be shared

    # after the kill: the store is intact, holds rows of finished jobs only, and every finished job is complete
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    statuses = dict(query(db, "SELECT job_id, status FROM jobs"))
    finished = {j for j, s in statuses.items() if s == "done"}
    assert 2 <= len(finished) < 8
    per_job = dict(query(db, "SELECT job_id, COUNT(*) FROM images GROUP BY job_id"))
    assert set(per_job) == finished and all(n == 60 for n in per_job.values())
    status = subprocess.run([*CLI, "status", str(runs / "killme")], capture_output=True, text=True)
    assert status.returncode == 0 and f"{len(finished)} done" in status.stdout
    assert "interrupted" in status.stdout or "pending" in status.stdout

    resumed = subprocess.run([*CLI, "run", str(cfg), "--runs-dir", str(runs)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{8 - len(finished)} done now, {len(finished)} already done" in resumed.stdout
    got, want = query(db, ROWS), query(tmp_path / "ref" / "killme" / "results.sqlite", ROWS)
    assert len(got) == len(want) == 8 * 60
    assert len({(r[0], r[1]) for r in got}) == len(got)
    assert got == want
    assert set(dict(query(db, "SELECT job_id, status FROM jobs")).values()) == {"done"}
