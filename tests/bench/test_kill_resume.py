"""kill -9 of a real `defectbench run` mid-run, then resume: the results equal an uninterrupted run's, no duplicates."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from defectbench.bench import load_config, run_experiment
from tests.bench.synthetic import make_dataset, make_maps, write_config

ROWS = ("SELECT job_id, image_id, split, role, defect_class, S_alpha, MAE, adp_E, adp_F, weighted_F, pred_area, "
        "pred_any, gt_area, scores FROM images ORDER BY job_id, image_id")
CLI = [sys.executable, "-m", "defectbench.cli"]


def _query(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


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
    done = 0
    deadline = time.monotonic() + 600  # generous: the machine may be shared
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run finished before it could be killed: " + proc.stdout.read().decode()
            if db.exists():
                try:
                    done = _query(db, "SELECT COUNT(*) FROM jobs WHERE status = 'done'")[0][0]
                except sqlite3.OperationalError:
                    done = 0
                if done >= 2:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and done < 2:
            proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    # after the kill: the store is intact, holds rows of finished jobs only, and every finished job is complete
    assert _query(db, "PRAGMA integrity_check") == [("ok",)]
    statuses = dict(_query(db, "SELECT job_id, status FROM jobs"))
    finished = {j for j, s in statuses.items() if s == "done"}
    assert 2 <= len(finished) < 8
    per_job = dict(_query(db, "SELECT job_id, COUNT(*) FROM images GROUP BY job_id"))
    assert set(per_job) == finished and all(n == 60 for n in per_job.values())
    status = subprocess.run([*CLI, "status", str(runs / "killme")], capture_output=True, text=True)
    assert status.returncode == 0 and f"{len(finished)} done" in status.stdout
    assert "interrupted" in status.stdout or "pending" in status.stdout

    resumed = subprocess.run([*CLI, "run", str(cfg), "--runs-dir", str(runs)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{8 - len(finished)} done now, {len(finished)} already done" in resumed.stdout
    got, want = _query(db, ROWS), _query(tmp_path / "ref" / "killme" / "results.sqlite", ROWS)
    assert len(got) == len(want) == 8 * 60
    assert len({(r[0], r[1]) for r in got}) == len(got)
    assert got == want
    assert set(dict(_query(db, "SELECT job_id, status FROM jobs")).values()) == {"done"}
