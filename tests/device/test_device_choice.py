"""Which device runs: ``cuda:N`` accepted everywhere a device is taken (CLI, training and experiment configs,
``resolve_device``), an absent GPU index is one line, and ``device: auto`` on a machine whose NVIDIA driver the
installed torch cannot use says so once, first, with the command that installs a fitting wheel."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
import torch

from defectbench import runtime
from defectbench.errors import ConfigError, DefectbenchError
from defectbench.runtime import device_description, is_device_name, resolve_device
from tests.conftest import REPO

pytestmark = pytest.mark.isolated  # fake CUDA: the module runs in a fresh interpreter (tests/isolated.py)


def test_device_names():
    assert all(is_device_name(n) for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:12"))
    assert not any(is_device_name(n) for n in ("gpu", "cuda:", "cuda:-1", "cuda:x", "cuda1", "CPU", "", None, 1))


def _device_actions(parser: argparse.ArgumentParser, path: str = "defectbench"):
    """Every ``--device`` option of every (sub)command, with the command's name."""
    for action in parser._actions:
        if "--device" in action.option_strings:
            yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _device_actions(sub, f"{path} {name}")


def test_every_cli_device_option_takes_cuda_n():
    from defectbench.cli import build_parser

    found = dict(_device_actions(build_parser()))
    assert {"defectbench run", "defectbench speed", "defectbench train", "defectbench predict",
            "defectbench sam predict", "defectbench sam viz"} <= found.keys()
    for command, action in found.items():
        assert action.type("cuda:1") == "cuda:1", command
        with pytest.raises(argparse.ArgumentTypeError, match="use auto, cpu, cuda or cuda:N"):
            action.type("gpu")
    args = build_parser().parse_args(["train", "--model", "litenet", "--out", "x", "--device", "cuda:1"])
    assert args.device == "cuda:1"
    assert build_parser().parse_args(["run", "configs/quick.yaml", "--device", "cuda:3"]).device == "cuda:3"


def test_configs_take_cuda_n():
    from defectbench.bench.config import parse_config
    from defectbench.train import TrainConfig

    TrainConfig.for_model("litenet", {"device": "cuda:1"}).validate()
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N, not 'gpu'"):
        TrainConfig.for_model("litenet", {"device": "gpu"}).validate()
    raw = {"experiment": "x", "device": "cuda:1", "datasets": [{"name": "sd900"}],
           "methods": [{"name": "litenet", "type": "sod", "model": "litenet"}],
           "speed": {"device": "cuda:2", "methods": ["litenet"]}}
    cfg = parse_config(raw)
    assert cfg.device == "cuda:1" and cfg.speed.device == "cuda:2"
    with pytest.raises(ConfigError, match="'device' must be auto, cpu, cuda or cuda:N, got 'cuda:x'"):
        parse_config({**raw, "device": "cuda:x"})
    with pytest.raises(ConfigError, match="speed.*'device' must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        parse_config({**raw, "speed": {"device": "gpu"}})


def test_resolve_device_with_two_gpus(fake_gpus):
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"
    with pytest.raises(DefectbenchError, match=r"^--device cuda:2: this machine has 2 visible CUDA GPUs "
                                               r"\(cuda:0 to cuda:1\)$"):
        resolve_device("cuda:2")
    with pytest.raises(DefectbenchError, match="unknown device 'tpu'; use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    assert device_description("cuda:1") == "Fake CUDA GPU 1" and device_description("cuda") == "Fake CUDA GPU 0"


@pytest.fixture
def driver_without_gpu(tmp_path, monkeypatch):
    """A machine with an NVIDIA driver (a fake ``nvidia-smi`` on PATH) whose GPU the installed torch cannot see."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_warned_no_gpu", False)
    return bin_dir


def test_auto_warns_once_when_torch_cannot_use_the_driver(driver_without_gpu, capsys):
    import torchvision

    assert resolve_device("auto") == "cpu" and resolve_device("auto") == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1  # once per process
    version = torch.__version__.split("+")[0]
    assert lines[0].startswith("defectbench: warning: device auto runs on the CPU: the NVIDIA driver supports "
                               f"CUDA 12.4 but torch {torch.__version__}")
    assert lines[0].endswith(f"pip install torch=={version}+cu126 torchvision=={torchvision.__version__.split('+')[0]}+cu126 "
                             "--index-url https://download.pytorch.org/whl/cu126 (or scripts/setup.sh --cuda cu126)")
    with pytest.raises(DefectbenchError, match=r"^--device cuda:1 was asked for but no CUDA GPU is visible: the "
                                               r"NVIDIA driver supports CUDA 12.4 .*--cuda cu126\); or use --device cpu$"):
        resolve_device("cuda:1")


def test_no_warning_without_a_driver_or_with_gpus_hidden(driver_without_gpu, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden on purpose
    assert resolve_device("auto") == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    (driver_without_gpu / "nvidia-smi").unlink()
    monkeypatch.setattr(runtime, "NVIDIA_DRIVER_FILE", tmp_path / "no-driver")
    assert resolve_device("auto") == "cpu"
    assert capsys.readouterr().err == ""
    with pytest.raises(DefectbenchError, match=r"^--device cuda was asked for but no CUDA GPU is visible; use"):
        resolve_device("cuda")


def test_a_fitting_wheel_is_not_blamed(driver_without_gpu, monkeypatch):
    (driver_without_gpu / "nvidia-smi").write_text("#!/bin/sh\necho '| Driver Version: 580.1  CUDA Version: 13.1 |'\n")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    hint = runtime.gpu_unseen_hint()
    assert "supports CUDA 13.1, which runs torch" in hint and "yet torch sees no GPU" in hint and "pip" not in hint
    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU-only wheel
    assert "(CPU-only build) cannot use it" in runtime.gpu_unseen_hint()


@pytest.mark.parametrize("flavour,driver", [("cu118", (11, 8)), ("cu126", (12, 0)), ("cu126", (12, 7)),
                                            ("cu128", (12, 8)), ("cu130", (13, 1)), ("cu126", None)])
def test_wheel_flavour_fits_the_driver(flavour, driver):
    assert runtime.cuda_wheel_flavour(driver) == flavour


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here: device auto uses it")
def test_cli_warning_is_the_first_line(driver_without_gpu):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "defectbench", "speed", "litenet", "--device", "auto",
                          "--image-size", "32", "--max-seconds", "0.01"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[0].startswith("defectbench: warning: device auto runs on the CPU: the NVIDIA "
                                                 "driver supports CUDA 12.4")
    assert res.stderr.count("defectbench: warning:") == 1
