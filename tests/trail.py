"""A trail of what each pytest-xdist worker did, and how a worker that went down ended: for the worker deaths with
no trace seen in CI (see tests/isolated.py).

Each worker appends one line per test start and finish (and the steps :func:`note` is given) to its own file in a
folder the controller makes, with the time and the worker's resident memory. When a worker goes down, the controller
prints the worker's exit status (its signal when it was killed: SIGKILL with no faulthandler trace is the kernel's
OOM killer or another process, an exit code is the worker ending itself), the memory the machine had left, the
worker's last steps and, for a fatal signal, every thread's Python stack (faulthandler, into the worker's ``.fault``
file), before pytest-xdist's "worker crashed" report.

What it showed (2026-12-07, AMD EPYC KVM guest): the deaths are SIGSEGVs raised by the kernel itself (``si_code``
SI_KERNEL, no fault address; read from a core file with gdb) on instructions that cannot fault — a ``ret`` to a valid
return address in CPython's ``_PyTime_FromNanoseconds`` while the worker only waited for a child pytest to exit. Not a
bug of the code under test; so a test that crashed its worker runs once more in a fresh one (pyproject.toml,
pytest-rerunfailures), and a second crash fails it.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

TRAIL_ENV = "DEFECTBENCH_TEST_TRAIL"  # the folder of the workers' trail files (set by the controller)
PREFIX = "defectbench-test-trail-"
KEEP = 25  # lines of a dead worker's trail printed


def _rss_mb() -> int:
    """This process's resident memory in MB (0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 2**20


def _threads() -> int:
    """This process's thread count, C threads included (0 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _fds() -> int:
    """This process's open file descriptors (0 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def available_mb() -> int | None:
    """The machine's available memory in MB (``MemAvailable``), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def trail_file(worker: str, suffix: str = ".log") -> Path | None:
    """The trail file of xdist worker ``worker`` (``.fault``: its fatal-error traceback), None outside an xdist run."""
    folder = os.environ.get(TRAIL_ENV)
    return Path(folder) / f"{worker}{suffix}" if folder and worker else None


def note(text: str) -> None:
    """Append ``text`` to this worker's trail (nothing outside an xdist worker)."""
    path = trail_file(os.environ.get("PYTEST_XDIST_WORKER", ""))
    if path is None:
        return
    stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    line = f"{stamp} pid={os.getpid()} rss={_rss_mb()}MB threads={_threads()} fds={_fds()} {text}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:  # the folder is gone: a trail must not fail a test
        return
    try:
        os.write(fd, line.encode())  # in the page cache at once: it survives the process, whatever kills it
    finally:
        os.close(fd)


def last_lines(path: Path, n: int = KEEP) -> list[str]:
    """The last ``n`` lines of ``path`` ([] when it does not exist)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    except OSError:
        return []


_FAULT_FILES: list = []  # a worker's open fault file (kept open: faulthandler writes to its descriptor)
_DEAD: list[str] = []  # controller: the workers that went down
_MADE: list[str] = []  # the trail folder this process made (a child pytest of an isolated module inherits, not makes)


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, which points it at the worker's stderr
def pytest_configure(config: pytest.Config) -> None:
    """Controller: make the trail folder the workers it starts will write into (they inherit the environment).
    Worker: a fatal signal (SIGSEGV, SIGABRT, ...) writes every thread's Python stack to the worker's ``.fault`` file
    (a worker's stderr is not shown by pytest-xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker and not os.environ.get(TRAIL_ENV):
        os.environ[TRAIL_ENV] = tempfile.mkdtemp(prefix=PREFIX)
        _MADE.append(os.environ[TRAIL_ENV])
    path = trail_file(worker or "")
    if path is not None:
        try:
            handle = open(path.with_suffix(".fault"), "w")  # noqa: SIM115 - open for the worker's lifetime
        except OSError:
            return
        _FAULT_FILES.append(handle)
        faulthandler.enable(file=handle, all_threads=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Controller: remove the trail folder it made, unless a worker went down (then its path was printed). Only the
    process that made it: the child pytest of an isolated module, which inherits the folder, once removed it in the
    middle of the run and every later death was reported without its steps."""
    folder = os.environ.get(TRAIL_ENV)
    if folder and folder in _MADE and not _DEAD:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    """Worker: a test starts."""
    note(f"start {nodeid}")


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    """Worker: a test finished (all its phases)."""
    note(f"finish {nodeid}")


def exit_words(returncode: int | None) -> str:
    """A worker's exit status in words."""
    from tests.isolated import describe_exit

    return "exit status unknown" if returncode is None else describe_exit(returncode)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown where xdist is off (-p no:xdist, the isolated children)
def pytest_testnodedown(node: object, error: object) -> None:
    """Controller: a worker that went down unexpectedly gets its exit status, the free memory and its last steps
    printed."""
    if not error:
        return
    worker = getattr(node, "gateway", None)
    wid = getattr(worker, "id", "?")
    popen = getattr(getattr(worker, "_io", None), "popen", None)
    code = None
    if popen is not None:
        try:
            code = popen.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a diagnosis must not add a failure of its own
            code = None
    avail = available_mb()
    path = trail_file(str(wid))
    lines = [f"[trail] worker {wid} went down ({error}): {exit_words(code)}; the machine has "
             f"{'?' if avail is None else avail} MB available now; its last steps ({path}):"]
    lines += [f"[trail]   {line}" for line in (last_lines(path) if path else [])]
    fault = trail_file(str(wid), ".fault")
    stack = last_lines(fault, 200) if fault else []
    if stack:
        lines += [f"[trail] its fatal-error traceback ({fault}):", *(f"[trail]   {line}" for line in stack)]
    _DEAD.append(str(wid))
    reporter = getattr(node, "config", None)
    tr = reporter.pluginmanager.get_plugin("terminalreporter") if reporter is not None else None
    for line in lines:
        if tr is not None:
            tr.write_line(line)
        else:
            print(line)
