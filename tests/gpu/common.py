"""Shared pieces of the GPU tests: the device, a timing record for the GPU timing table, small real inputs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

# DEFECTBENCH_GPU_TEST_DEVICE=cpu runs the same tests on the CPU with small settings (a dry run of the code paths)
DEVICE = os.environ.get("DEFECTBENCH_GPU_TEST_DEVICE", "cuda")
ON_GPU = DEVICE.startswith("cuda")


def device_available() -> bool:
    """Return True when the tests' device can be used."""
    if not ON_GPU:
        return True
    import torch

    return torch.cuda.is_available()


def record_timing(kind: str, **values: Any) -> None:
    """Append one timing row to ``$DEFECTBENCH_GPU_TIMINGS`` (JSON lines; scripts/gpu_check.sh makes the table)."""
    path = os.environ.get("DEFECTBENCH_GPU_TIMINGS")
    print(f"[timing] {kind}: " + ", ".join(f"{k} {v}" for k, v in values.items()), flush=True)
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"kind": kind, "device": device_name(), **values}) + "\n")


def device_name() -> str:
    """Return the GPU's name (or the CPU's description in a dry run)."""
    from defectbench.runtime import device_description

    return device_description(DEVICE)


def synchronize() -> None:
    """Wait for the GPU's queued work."""
    if ON_GPU:
        import torch

        torch.cuda.synchronize()


def timed(fn: Any) -> tuple[Any, float]:
    """Return ``(fn(), seconds)`` with the GPU synchronised before and after."""
    synchronize()
    t0 = time.perf_counter()
    out = fn()
    synchronize()
    return out, time.perf_counter() - t0


def sd900_root() -> Path:
    """The folder holding SD-saliency-900 (skips the test without it)."""
    import pytest

    from tests.conftest import DATA

    if DATA is None or not (DATA / "SD-saliency-900").is_dir():
        pytest.skip("SD-saliency-900 not found (set DEFECTBENCH_DATA)")
    return DATA
