"""Run a whole test module in one fresh Python interpreter: ``pytestmark = pytest.mark.isolated`` in the module.

For the tests that work through :mod:`tests.device.fakecuda` (a wrapper tensor subclass and stacked
``TorchFunctionMode`` s under autograd, optimizers and ``AveragedModel``). In CI such tests took the pytest-xdist
worker down after some hundreds of other tests in the same interpreter: once a segmentation fault inside torch's C++
(2026-12-04, test_loop_sync), once a worker that died with no trace next to the fake-CUDA precision test
(2026-12-05); the same tests pass alone and in a fresh process every time. A dead worker takes the results it still
held with it. In a child interpreter the module starts from a clean torch, fake tensors cannot outlive it into other
tests, and a crash there is a failure of the tests it stopped, naming the test and the signal.

How: the first test of a marked module that runs (in any xdist worker) runs the whole module in one child pytest,
under a file lock in the folder all workers of this run share; the child records every test's outcome in a JSON
file as it goes (this module is its plugin). Every test of the module then reports the child's outcome for it.
Fixtures of a marked test are still set up in the parent, so a fixture that changes process state (``fake_gpus``)
checks :func:`in_child` and does nothing in the parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

MARK = "isolated"
CHILD_ENV = "DEFECTBENCH_ISOLATED_CHILD"  # set in the child pytest: the JSON file it records outcomes into
ROOT = Path(__file__).resolve().parents[1]


def in_child() -> bool:
    """Whether this interpreter is the child pytest running an isolated module."""
    return bool(os.environ.get(CHILD_ENV))


def describe_exit(returncode: int) -> str:
    """A child's exit status in words: its signal's name when it was killed by one."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


@dataclass(frozen=True)
class ChildRun:
    """What the child pytest of one module left: per-test outcomes, the test it started last, how it ended."""

    outcomes: dict[str, dict[str, str]]
    last_started: str | None
    returncode: int
    output: str


def run_module(path: Path, record: Path, markexpr: str = "", timeout_s: float = 600) -> ChildRun:
    """Run the test module ``path`` in a child pytest recording into ``record`` (JSON lines); return what it left."""
    env = {**os.environ, CHILD_ENV: str(record)}
    env.pop("PYTEST_XDIST_WORKER", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "tests.isolated",
           "-o", "addopts=-ra", str(path)]
    if markexpr:
        cmd += ["-m", markexpr]
    record.unlink(missing_ok=True)
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, output = -signal.SIGKILL, f"timed out after {timeout_s:.0f} s\n{exc.stdout or ''}"
    outcomes: dict[str, dict[str, str]] = {}
    last = None
    if record.exists():
        for line in record.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["event"] == "start":
                last = entry["nodeid"]
            elif entry["nodeid"] not in outcomes or entry["outcome"] != "passed":  # a failed teardown wins
                outcomes[entry["nodeid"]] = {"outcome": entry["outcome"], "text": entry["text"]}
    return ChildRun(outcomes, last, returncode, output[-6000:])


def verdict(run: ChildRun, nodeid: str) -> tuple[str, str]:
    """The outcome of test ``nodeid`` in ``run`` (passed, skipped or failed) and the text to report with it."""
    got = run.outcomes.get(nodeid)
    died = run.returncode < 0
    if got is not None and not (died and run.last_started == nodeid):
        return got["outcome"], got["text"]
    if died and run.last_started == nodeid:
        how = describe_exit(run.returncode)
        return "failed", f"the child interpreter running this module died in this test ({how})\n{run.output}"
    if died:
        return "failed", (f"not run: the child interpreter running this module died in {run.last_started} "
                          f"({describe_exit(run.returncode)})\n{run.output}")
    return "failed", f"not run by its module's child pytest ({describe_exit(run.returncode)})\n{run.output}"


def module_run(item: pytest.Item) -> ChildRun:
    """The child run of ``item``'s module: made by the first test of the module to ask, in whichever worker."""
    from tests.conftest import run_lock, shared_run_dir
    from tests.trail import note

    module = Path(str(item.path)).resolve()
    folder = shared_run_dir(item.config._tmp_path_factory) / "isolated-modules"  # type: ignore[attr-defined]
    folder.mkdir(exist_ok=True)
    stem = str(module.relative_to(ROOT)).replace("/", "--")
    done = folder / f"{stem}.done.json"
    note(f"isolated: waiting for the lock of {stem}")
    with run_lock(folder / f"{stem}.lock"):
        if not done.exists():
            note(f"isolated: child pytest of {stem} starts")
            run = run_module(module, folder / f"{stem}.record.jsonl", item.config.option.markexpr or "")
            note(f"isolated: child pytest of {stem} ended ({describe_exit(run.returncode)})")
            done.write_text(json.dumps(run.__dict__), encoding="utf-8")
    note(f"isolated: lock of {stem} released")
    return ChildRun(**json.loads(done.read_text(encoding="utf-8")))


def report_from_child(item: pytest.Function) -> None:
    """Report, for ``item`` in the parent, the outcome its module's child pytest recorded for it."""
    outcome, text = verdict(module_run(item), item.nodeid)
    if outcome == "skipped":
        pytest.skip(text)
    if outcome == "failed":
        pytest.fail(f"in the module's child interpreter (tests/isolated.py):\n{text}", pytrace=False)


# -- the child's side: this module is also the child pytest's plugin (-p tests.isolated) --------------------------

def _record(entry: dict[str, str]) -> None:
    path = os.environ.get(CHILD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # what was written survives the child's crash


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    """Child: note that ``nodeid`` starts (a crash after this names it)."""
    _record({"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Child: record the outcome of each phase that decides a test's outcome."""
    if report.when == "call" or report.outcome != "passed":
        text = report.longreprtext
        if report.skipped and isinstance(report.longrepr, tuple):
            text = str(report.longrepr[2])
        _record({"event": "report", "nodeid": report.nodeid, "outcome": report.outcome, "text": text})
