"""Shared fixtures of the deploy tests: the shipped litenet exported once per session (static and dynamic batch)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """Return $DEFECTBENCH_DATA or ../shared/datasets next to the repository."""
    env = os.environ.get("DEFECTBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def sd900_root() -> Path:
    """The data root holding SD-saliency-900 (skips when absent)."""
    root = data_root()
    if not (root / "SD-saliency-900").is_dir():
        pytest.skip("SD-saliency-900 not found (set DEFECTBENCH_DATA)")
    return root


@pytest.fixture(scope="session")
def engines_installed() -> None:
    """Skip unless the optional deploy extra (onnx, onnxruntime, openvino) is installed."""
    for name in ("onnx", "onnxruntime", "openvino"):
        pytest.importorskip(name, reason=f"{name} not installed: the deploy extra (pip install '.[deploy]') is absent")


@pytest.fixture(scope="session")
def litenet_exports(tmp_path_factory, engines_installed) -> dict[str, Path]:
    """The shipped litenet sd900 weights as ONNX batch 1, ONNX dynamic batch and OpenVINO IR (from the dynamic ONNX)."""
    import torch

    from defectbench.deploy.export import export_checkpoint, onnx_to_openvino
    from defectbench.methods.saliency.checkpoint import shipped_weights_path

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("exports")
    checkpoint = shipped_weights_path("litenet", "sd900")
    static = export_checkpoint(checkpoint, out, "onnx", tag="sd900")
    dynamic = export_checkpoint(checkpoint, out, "onnx", dynamic_batch=True, tag="sd900")
    return {"onnx": static, "onnx-dynamic": dynamic, "openvino-dynamic": onnx_to_openvino(dynamic, out)}


def pytest_collection_modifyitems(config, items) -> None:
    """Run every deploy test in one pytest-xdist worker (``--dist loadgroup``): the session's exports (about 40 s on a
    2-core CPU) are then made once, not once per worker."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("deploy"))
