"""Shared by the kill -9 tests: read a results store read-only, and SIGKILL a run once it has finished N jobs."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROWS = ("SELECT job_id, image_id, split, role, defect_class, S_alpha, MAE, adp_E, adp_F, weighted_F, pred_area, "
        "pred_any, gt_area, height, width, map_path, image_path, mask_path, scores FROM images ORDER BY job_id, image_id")


def query(db: Path, sql: str) -> list[tuple]:
    """The rows of ``sql`` on the store ``db``, opened read-only (a running writer is not disturbed)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def kill_after_done(proc: subprocess.Popen, db: Path, jobs: int = 2, timeout_s: float = 600,
                    before_kill: Callable[[], object] | None = None) -> object:
    """SIGKILL ``proc`` as soon as ``db`` records ``jobs`` finished jobs; return what ``before_kill`` read just before.

    Fails the test if the run ends on its own first (it printed why) or does not get there within ``timeout_s``.
    """
    done, seen = 0, None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run finished before it could be killed: " + proc.stdout.read().decode()
            if db.exists():
                try:
                    done = query(db, "SELECT COUNT(*) FROM jobs WHERE status = 'done'")[0][0]
                except sqlite3.OperationalError:  # the store is being created
                    done = 0
                if done >= jobs:
                    seen = before_kill() if before_kill else None
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and done < jobs:
            proc.kill()
        proc.wait(30)
    assert done >= jobs, f"the run did not finish {jobs} jobs within {timeout_s:.0f} s"
    assert proc.returncode == -signal.SIGKILL
    return seen
