"""One runner per experiment: an advisory file lock that the kernel releases when its process dies (kill -9 too)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from defectbench.errors import DefectbenchError

LOCK_NAME = ".runner.lock"


class ExperimentLock:
    """Exclusive lock on ``<experiment dir>/.runner.lock``, held while a runner works on the experiment."""

    def __init__(self, experiment_dir: str | Path, wait_s: float = 5.0) -> None:
        self.path = Path(experiment_dir) / LOCK_NAME
        self.wait_s = wait_s
        self._fd: int | None = None

    def __enter__(self) -> ExperimentLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise DefectbenchError(
                        f"{self.path.parent}: another `defectbench run` is working on this experiment "
                        "(see `defectbench status`); wait for it or stop it first") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def runner_active(experiment_dir: str | Path) -> bool:
    """Return True while some process holds the experiment's runner lock."""
    path = Path(experiment_dir) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False
