"""Shared fixtures of the training tests: the real datasets folder (tests skip cleanly without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """Return $DEFECTBENCH_DATA or ../shared/datasets next to the repository."""
    env = os.environ.get("DEFECTBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture
def sd900_root() -> Path:
    root = data_root()
    if not (root / "SD-saliency-900").is_dir():
        pytest.skip("SD-saliency-900 not found (set DEFECTBENCH_DATA)")
    return root
