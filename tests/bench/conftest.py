"""Fixtures of the bench tests: a small synthetic dataset and maps of three fake methods."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.synthetic import make_dataset, make_maps


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict[str, Path]:
    """A folder dataset (6 train, 6 test, 3 defect-free test images) and maps: good, poor, leaky (perfect on train)."""
    root = tmp_path_factory.mktemp("synth")
    ds = make_dataset(root / "ds", 6, 6, 3)
    return {
        "dataset": ds,
        "good": make_maps(ds, root / "maps" / "good", "good", seed=1),
        "poor": make_maps(ds, root / "maps" / "poor", "poor", seed=2),
        "leaky": make_maps(ds, root / "maps" / "leaky", "perfect", test_quality="poor", seed=3),
    }
