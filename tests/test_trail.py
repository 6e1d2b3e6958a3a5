"""The controller's report of a pytest-xdist worker that went down (tests/trail.py: exit status, last steps, Python
stack) and the suite's rerun policy (pyproject.toml: a test that crashed its worker runs once more, a failure never)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DYING = '''
import faulthandler, os, signal
from pathlib import Path

def test_before():
    pass

def test_killed():
    os.kill(os.getpid(), signal.SIGKILL)

def crash_here():
    faulthandler._sigsegv()

def test_segfault():
    crash_here()

def test_fails():
    assert 1 == 2

def test_crashes_once():
    marker = Path(__file__).with_name("crashed-once")
    if not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGSEGV)
'''


@pytest.fixture(scope="module")
def one_worker_run(tmp_path_factory) -> str:
    """The output of DYING run by one xdist worker (in file order) with the trail plugin and the project's pytest
    settings (pyproject.toml: its addopts, the rerun policy among them)."""
    folder = tmp_path_factory.mktemp("trail")
    (folder / "test_dying.py").write_text(DYING, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(folder)}  # the trail folder it keeps: in folder
    for key in ("PYTEST_XDIST_WORKER", "DEFECTBENCH_TEST_TRAIL", "PYTEST_ADDOPTS"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "tests.trail", "-p",
                           "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(folder),
                           str(folder)], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    return out


def deaths(out: str) -> list[list[str]]:
    """The trail's report of each worker death: its lines, the first one naming the worker and its signal."""
    found: list[list[str]] = []
    for line in out.splitlines():
        if line.startswith("[trail] worker "):
            found.append([line])
        elif line.startswith("[trail]") and found:
            found[-1].append(line)
    return found


def test_a_killed_worker_is_reported_with_its_signal_and_last_steps(one_worker_run) -> None:
    first = deaths(one_worker_run)[0]
    assert "worker gw0 went down" in first[0] and "killed by SIGKILL" in first[0], one_worker_run
    assert "MB available now" in first[0]
    steps = [line.split(" fds=", 1)[1].split(" ", 1)[1] for line in first[1:]]
    assert steps == ["start test_dying.py::test_before", "finish test_dying.py::test_before",
                     "start test_dying.py::test_killed"], one_worker_run


def test_a_crashed_worker_leaves_its_python_stack(one_worker_run) -> None:
    segfaults = [d for d in deaths(one_worker_run) if "killed by SIGSEGV" in d[0] and
                 any("in crash_here" in line for line in d)]
    assert segfaults, one_worker_run
    stack = "\n".join(segfaults[0])
    assert "its fatal-error traceback" in stack and "Segmentation fault" in stack and "in test_segfault" in stack


def test_a_crash_is_retried_once_and_a_failure_never(one_worker_run) -> None:
    summary = one_worker_run.splitlines()
    failed = sorted(line.split()[1] for line in summary if line.startswith("FAILED "))
    # killed twice (SIGKILL, SIGSEGV): failed after its one rerun; the assertion failure: failed without a rerun
    assert failed == ["test_dying.py::test_fails", "test_dying.py::test_killed", "test_dying.py::test_segfault"]
    assert "2 passed" in summary[-1] and "3 failed" in summary[-1] and "3 rerun" in summary[-1], summary[-1]
    assert len(deaths(one_worker_run)) == 5  # killed twice, segfault twice, crashed once
