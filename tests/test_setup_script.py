"""scripts/setup.sh and scripts/gpu_check.sh option handling (bash, nothing installed or run)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from defectbench.runtime import CUDA_WHEEL_FLAVOURS

ROOT = Path(__file__).resolve().parents[1]
SETUP, GPU_CHECK = ROOT / "scripts" / "setup.sh", ROOT / "scripts" / "gpu_check.sh"


def _bash(script: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def _torch_line(out: str) -> str:
    return next(line for line in out.splitlines() if "torch==" in line)


@pytest.mark.parametrize("flavour", [f for f, _ in CUDA_WHEEL_FLAVOURS] + ["cpu"])
def test_setup_cuda_flavour_plan(flavour):
    res = _bash(SETUP, "--print-plan", "--cuda", flavour)
    assert res.returncode == 0, res.stderr
    line = _torch_line(res.stdout)
    assert re.search(rf"torch==[0-9.]+\+{flavour} torchvision==[0-9.]+\+{flavour} "
                     rf"--index-url https://download.pytorch.org/whl/{flavour}$", line), line
    assert "pip install -q -e .[sam2,deploy]" in res.stdout and "test]" not in res.stdout


def test_setup_default_is_the_registry_build_and_test_extras():
    res = _bash(SETUP, "--test", "--print-plan")
    assert res.returncode == 0, res.stderr
    assert re.search(r"pip install -q torch==[0-9.]+ torchvision==[0-9.]+$", _torch_line(res.stdout))
    assert "index-url" not in res.stdout and "[sam2,deploy,int8,cluster,anomaly,test]" in res.stdout


def test_setup_flavours_are_the_wrong_wheel_hints():
    """The flavours the GPU-unseen hint names (``scripts/setup.sh --cuda <flavour>``) are the ones setup.sh takes."""
    flavours = re.search(r'^FLAVOURS="([^"]+)"', SETUP.read_text(), re.M)[1].split()
    assert flavours == [f for f, _ in CUDA_WHEEL_FLAVOURS] + ["cpu"]
    assert "scripts/setup.sh --cuda {flavour}" in (ROOT / "src/defectbench/runtime.py").read_text()


@pytest.mark.parametrize("args, message", [
    (["--cuda", "cu999"], "--cuda cu999: unknown CUDA flavour; use one of cu118, cu126, cu128, cu130, cpu"),
    (["--cuda"], "--cuda needs a flavour"),
    (["--bogus"], "unknown option --bogus; usage: scripts/setup.sh [--test] [--cuda cu118|cu126|cu128|cu130|cpu]"),
])
def test_setup_bad_options(args, message):
    res = _bash(SETUP, *args)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stdout == ""


def test_setup_help():
    res = _bash(SETUP, "--help")
    assert res.returncode == 0 and "--cuda FLAVOUR" in res.stdout and "--print-plan" in res.stdout


def test_gpu_check_help_runs_nothing(tmp_path):
    for flag in ("--help", "-h"):
        res = _bash(GPU_CHECK, flag)
        assert res.returncode == 0 and res.stderr == ""
        assert "scripts/gpu_check.sh prepare [--work DIR]" in res.stdout and "9 minutes" in res.stdout
        assert "${TMPDIR:-/tmp}/defectbench-gpu-check" in res.stdout
    assert not (ROOT / "--help").exists() and not (ROOT / "-h").exists()


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option --bogus (see scripts/gpu_check.sh --help)"),
    (["prepare", "--fast"], "unknown option --fast"),
    (["out1", "out2"], "unexpected argument out2"),
    (["--work"], "--work needs a folder"),
    (["prepare", "--out", "x"], "--out: prepare writes no output folder"),
])
def test_gpu_check_bad_options(args, message, tmp_path):
    res = _bash(GPU_CHECK, *args)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stdout == "" and not (ROOT / "out1").exists() and not (ROOT / "x").exists()
