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
    """The shipped litenet sd900 weights as ONNX batch 1, ONNX dynamic batch and OpenVINO IR (from the dynamic ONNX).

    Made once per test run, not once per pytest-xdist worker (about 40 s on a 2-core CPU): the first worker to ask
    exports under a lock into the folder all workers share, the others wait for it and reuse the files.
    """
    import json

    import torch

    from defectbench.deploy.export import export_checkpoint, onnx_to_openvino
    from defectbench.methods.saliency.checkpoint import shipped_weights_path
    from tests.conftest import run_lock, shared_run_dir

    out = shared_run_dir(tmp_path_factory) / "litenet-exports"
    out.mkdir(exist_ok=True)
    done = out / "exports.json"
    with run_lock(out / ".lock"):
        if not done.exists():
            torch.set_num_threads(2)
            checkpoint = shipped_weights_path("litenet", "sd900")
            static = export_checkpoint(checkpoint, out, "onnx", tag="sd900")
            dynamic = export_checkpoint(checkpoint, out, "onnx", dynamic_batch=True, tag="sd900")
            paths = {"onnx": static, "onnx-dynamic": dynamic, "openvino-dynamic": onnx_to_openvino(dynamic, out)}
            done.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
