"""The fake CUDA device of the device-logic tests (see tests/device/fakecuda.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.device.fakecuda import FakeCudaMode, fake_cuda


@pytest.fixture
def fake_gpus() -> Iterator[FakeCudaMode]:
    """Two fake CUDA GPUs (compute capability 8.0) for the test's body."""
    with fake_cuda(device_count=2) as mode:
        yield mode
