"""GPU tests: marked ``gpu`` and skipped, with the reason, where CUDA is absent (the CPU suite pays only the collection)."""

from __future__ import annotations

import pytest

from tests.gpu.common import DEVICE, device_available


@pytest.hookimpl(tryfirst=True)  # before ``-m gpu`` selects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/gpu with ``gpu``; skip them all when their device is unavailable."""
    reason = None if device_available() else f"CUDA not available (device {DEVICE!r}); run scripts/gpu_check.sh on a GPU"
    for item in items:
        if "tests/gpu/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
