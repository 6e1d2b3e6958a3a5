"""Run-time environment: torch device choice, seeding and version records."""

from __future__ import annotations

import platform
import random
import subprocess
from pathlib import Path

import numpy as np

from defectbench.errors import DefectbenchError


def resolve_device(name: str = "auto") -> str:
    """Map ``auto|cpu|cuda`` to a torch device string; ``cuda`` without a GPU is a clear error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DefectbenchError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise DefectbenchError(f"unknown device {name!r}; use auto, cpu or cuda")
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def device_description(device: str) -> str:
    """Return a human description of a device, e.g. the GPU name or the CPU model and core count."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu} ({os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    """Return the versions of Python and the main libraries, for run records."""
    out = {"python": platform.python_version()}
    for mod in ("numpy", "torch", "torchvision", "timm", "cv2", "segment_anything", "sam2"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "unknown")
        except Exception:  # noqa: BLE001 - optional packages
            continue
    from defectbench import __version__

    out["defectbench"] = __version__
    return out


def git_commit() -> str | None:
    """Return the git commit of the defectbench checkout, or None outside a git checkout."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return res.stdout.strip() or None if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
