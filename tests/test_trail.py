"""The controller's report of a pytest-xdist worker that went down (tests/trail.py): exit status and last steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DYING = '''
import os, signal

def test_before():
    pass

def test_killed():
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_killed_worker_is_reported_with_its_signal_and_last_steps(tmp_path) -> None:
    (tmp_path / "test_dying.py").write_text(DYING, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("PYTEST_XDIST_WORKER", "DEFECTBENCH_TEST_TRAIL", "PYTEST_ADDOPTS"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "tests.trail", "-p",
                           "no:cacheprovider", "--rootdir", str(tmp_path), "-o", "addopts=", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    lines = [line for line in out.splitlines() if line.startswith("[trail]")]
    assert lines and "worker gw0 went down" in lines[0] and "killed by SIGKILL" in lines[0], out
    assert "MB available now" in lines[0]
    steps = [line.split(" fds=", 1)[1].split(" ", 1)[1] for line in lines[1:]]
    assert steps == ["start test_dying.py::test_before", "finish test_dying.py::test_before",
                     "start test_dying.py::test_killed"], out
    assert "1 failed, 1 passed" in out  # xdist's own crash report still names the test
