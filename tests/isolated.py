"""Run one test in a fresh Python interpreter: ``@in_fresh_interpreter`` on a test function.

For the tests that train through :mod:`tests.device.fakecuda` (a wrapper tensor subclass and two stacked
``TorchFunctionMode`` s under autograd, optimizer and ``AveragedModel``): after some hundreds of other tests in the same
interpreter one of them ended in a segmentation fault inside torch's C++ (CI, 2026-12-04: the pytest-xdist worker died;
the same tests pass alone and in a fresh process every time). The fault is in torch's handling of Python tensor
subclasses, not in defectbench, and takes the worker (and every result it still held) with it. In a child interpreter
the test starts from a clean torch, and a crash there is one failed test with its signal named, not a dead worker.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "DEFECTBENCH_ISOLATED_TEST"
ROOT = Path(__file__).resolve().parents[1]


def current_node_id() -> str:
    """The pytest node id of the test now running (from ``PYTEST_CURRENT_TEST``)."""
    return os.environ["PYTEST_CURRENT_TEST"].rsplit(" (", 1)[0]


def run_node(node_id: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """Run the test ``node_id`` alone in a child pytest (a fresh interpreter) and return the finished process."""
    env = {**os.environ, ENV: node_id}
    env.pop("PYTEST_XDIST_WORKER", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", node_id]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)


def describe_exit(returncode: int) -> str:
    """A child's exit status in words: its signal's name when it was killed by one."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def in_fresh_interpreter(test: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``test`` run in a child interpreter; the test's fixtures are still set up (and unused) in this one."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        node_id = current_node_id()
        if os.environ.get(ENV) == node_id:  # the child: run the body
            return test(*args, **kwargs)
        done = run_node(node_id)
        output = (done.stdout + done.stderr)[-6000:]
        assert done.returncode == 0, f"{node_id} in a fresh interpreter: {describe_exit(done.returncode)}\n{output}"
        assert " passed" in done.stdout, f"{node_id} did not run in the child pytest:\n{output}"
        return None

    return wrapper
