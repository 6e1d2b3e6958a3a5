"""The fake CUDA device of the device-logic tests (see tests/device/fakecuda.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.device.fakecuda import FakeCudaMode, fake_cuda
from tests.isolated import MARK, in_child


@pytest.fixture
def fake_gpus(request: pytest.FixtureRequest) -> Iterator[FakeCudaMode | None]:
    """Two fake CUDA GPUs (compute capability 8.0) for the test's body, on one torch thread (the fake GPU's work is
    CPU work; an earlier test's thread count must not oversubscribe a small machine). None in the parent of an
    isolated module, whose child interpreter runs the test (tests/isolated.py)."""
    if request.node.get_closest_marker(MARK) is not None and not in_child():
        yield None
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with fake_cuda(device_count=2) as mode:
            yield mode
    finally:
        torch.set_num_threads(threads)
