"""Shared fixtures: where the real datasets are, and small synthetic data."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.trail"]  # each worker's trail, and how a worker that went down ended

# weight files are looked for in the user's cache folders (defectbench's checkpoints folder, torch hub's cache): the
# suite never sees a developer's real files there, in this process or the ones it starts
_CACHES = Path(tempfile.mkdtemp(prefix="defectbench-test-caches-"))
os.environ["XDG_CACHE_HOME"] = str(_CACHES)
os.environ["TORCH_HOME"] = str(_CACHES / "torch")

if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("DEFECTBENCH_TEST_ONE_THREAD"):
    # parallel workers share the cores: one torch (OpenMP) thread each. Two threads per worker oversubscribe a
    # 2-core machine, where OpenMP's spin-waiting made single tests 10-50x slower (measured). The child pytest of an
    # isolated module (tests/isolated.py) inherits the setting
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["DEFECTBENCH_TEST_ONE_THREAD"] = "1"
    import torch

    _set_num_threads = torch.set_num_threads
    _set_num_threads(1)
    torch.set_num_threads = lambda n: _set_num_threads(1)  # the code under test asks for 2 (its default)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test of a module marked ``isolated`` reports what the module's child interpreter recorded for it."""
    from tests.isolated import MARK, in_child, report_from_child

    if pyfuncitem.get_closest_marker(MARK) is None or in_child():
        return None
    report_from_child(pyfuncitem)
    return True


def shared_run_dir(factory: pytest.TempPathFactory) -> Path:
    """A folder that every pytest-xdist worker of this test run sees as the same (the run's base temp folder)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # .../pytest-N/popen-gwK -> .../pytest-N


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock``; the kernel drops it if the holder dies) for the block: one
    pytest-xdist worker makes a run-wide resource while the others wait. Not the ``filelock`` package: its 4.x
    at-fork machinery is in the path of the worker deaths under investigation (see tests/isolated.py)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def shared_datasets() -> Path | None:
    """Return the folder holding the real datasets (``$DEFECTBENCH_DATA`` or ``../shared/datasets``)."""
    env = os.environ.get("DEFECTBENCH_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if cand.is_dir():
            return cand
    return None


DATA = shared_datasets()
SD900 = DATA / "SD-saliency-900" if DATA else None
MT = DATA / "Magnetic-tile-defect-datasets" if DATA else None

needs_sd900 = pytest.mark.skipif(SD900 is None or not SD900.is_dir(), reason="SD-saliency-900 not found (../shared/datasets)")
needs_mt = pytest.mark.skipif(MT is None or not MT.is_dir(), reason="MT dataset not found (../shared/datasets)")


@pytest.fixture
def data_root() -> Path:
    """The real data root; skips the test when absent."""
    if DATA is None:
        pytest.skip("real datasets not found")
    return DATA


def write_png(path: Path, arr: np.ndarray) -> Path:
    """Write an array as a PNG (any dtype/channels OpenCV supports)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def stand_in_official(monkeypatch):
    """``accept(name, path)``: record a test's stand-in file as the official one of backbone ``name`` (its size and
    SHA-256 replace the published ones for the test), so that a lookup by official name accepts it."""
    from dataclasses import replace

    from defectbench.downloads import catalog
    from defectbench.downloads.files import file_sha256

    def accept(name: str, path: Path) -> None:
        entry = replace(catalog.BACKBONES[name], sha256=file_sha256(path), sha256_prefix=None, size=path.stat().st_size)
        monkeypatch.setitem(catalog.BACKBONES, name, entry)

    return accept
