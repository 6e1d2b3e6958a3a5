"""Run-time environment: torch device choice, seeding and version records."""

from __future__ import annotations

import os
import platform
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from defectbench.errors import DefectbenchError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
# CUDA flavours of the official torch wheels (download.pytorch.org/whl/<flavour>) and the CUDA version each needs
# from the driver; the same names as ``scripts/setup.sh --cuda <flavour>`` (which also takes ``cpu``), whose pip command
# the GPU-unseen hint spells out (``torch==<version>+<flavour>``: the local label replaces another build)
CUDA_WHEEL_FLAVOURS = (("cu118", (11, 8)), ("cu126", (12, 6)), ("cu128", (12, 8)), ("cu130", (13, 0)))
DEFAULT_CUDA_FLAVOUR = "cu126"
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
_warned_no_gpu = False


def is_device_name(name: object) -> bool:
    """Whether ``name`` is a device the toolkit takes: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    return isinstance(name, str) and (name in ("auto", "cpu") or re.fullmatch(r"cuda(:[0-9]+)?", name) is not None)


def resolve_device(name: str = "auto") -> str:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch device string; a GPU that is not there is a one-line error.

    ``auto`` without a visible GPU on a machine with an NVIDIA driver warns once (stderr) that the installed
    torch cannot use the GPU, with the command that installs a wheel that can.
    """
    import torch

    if not is_device_name(name):
        raise DefectbenchError(f"unknown device {name!r}; use {DEVICE_CHOICES}")
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        warn_gpu_unseen()
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            what = f"--device {name} was asked for but no CUDA GPU is visible"
            if nvidia_driver_present():
                raise DefectbenchError(f"{what}: {gpu_unseen_hint()}; or use --device cpu")
            raise DefectbenchError(f"{what}; use --device cpu or auto")
        count = torch.cuda.device_count()
        if ":" in name and int(name.split(":")[1]) >= count:
            raise DefectbenchError(f"--device {name}: this machine has {count} visible CUDA GPU"
                                   f"{'' if count == 1 else 's'} (cuda:0 to cuda:{count - 1})")
    return name


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is installed (``nvidia-smi`` on PATH or ``/proc/driver/nvidia/version``)."""
    return shutil.which("nvidia-smi") is not None or NVIDIA_DRIVER_FILE.is_file()


def driver_cuda_version() -> tuple[int, int] | None:
    """The newest CUDA version the NVIDIA driver supports (from ``nvidia-smi``), or None when unknown."""
    try:
        res = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", res.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


def cuda_wheel_flavour(driver_cuda: tuple[int, int] | None) -> str:
    """The torch wheel flavour (``cu126``...) for a driver supporting CUDA ``driver_cuda``.

    The newest flavour of the driver's CUDA major version not newer than the driver; else the oldest of that major
    version (CUDA's minor-version compatibility runs it); else the newest of an older major version.
    """
    if driver_cuda is None:
        return DEFAULT_CUDA_FLAVOUR
    same_major = [(name, needs) for name, needs in CUDA_WHEEL_FLAVOURS if needs[0] == driver_cuda[0]]
    within = [name for name, needs in same_major if needs <= driver_cuda]
    if within or same_major:
        return within[-1] if within else same_major[0][0]
    older = [name for name, needs in CUDA_WHEEL_FLAVOURS if needs < driver_cuda]
    return older[-1] if older else CUDA_WHEEL_FLAVOURS[0][0]


def gpu_unseen_hint() -> str:
    """Why torch may not see the GPU of a machine with an NVIDIA driver, and the command that fixes it."""
    import torch

    driver = driver_cuda_version()
    flavour = cuda_wheel_flavour(driver)
    try:
        import torchvision

        vision = f" torchvision=={torchvision.__version__.split('+')[0]}+{flavour}"
    except ImportError:
        vision = ""
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    supports = f"supports CUDA {driver[0]}.{driver[1]}" if driver else "is installed"
    built = tuple(int(v) for v in torch.version.cuda.split(".")[:2]) if torch.version.cuda else None
    if driver and built and (built <= driver or built[0] == driver[0]):  # the wheel fits: not a wheel problem
        return (f"the NVIDIA driver {supports}, which runs torch {torch.__version__} ({build}), yet torch sees no "
                "GPU: check that this process may use one (nvidia-smi lists it, CUDA_VISIBLE_DEVICES, a container "
                "started with GPUs)")
    return (f"the NVIDIA driver {supports} but torch {torch.__version__} ({build}) cannot use it; install a wheel "
            f"that fits: pip install torch=={torch.__version__.split('+')[0]}+{flavour}{vision} --index-url "
            f"https://download.pytorch.org/whl/{flavour} (or scripts/setup.sh --cuda {flavour})")


def warn_gpu_unseen() -> None:
    """Warn once per process (stderr) when an NVIDIA driver is present but torch sees no GPU."""
    global _warned_no_gpu
    if _warned_no_gpu or os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1") or not nvidia_driver_present():
        return  # GPUs hidden on purpose, or none here
    _warned_no_gpu = True
    print(f"defectbench: warning: device auto runs on the CPU: {gpu_unseen_hint()}", file=sys.stderr, flush=True)


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

        return torch.cuda.get_device_name(torch.device(device))  # "cuda": the current GPU
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
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
