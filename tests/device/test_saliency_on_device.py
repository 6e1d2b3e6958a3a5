"""Saliency models on a (fake) GPU: every registered network's forward and backward with its paper loss, every
loss, prediction (library, deploy engine and CLI) and the speed meter on ``cuda:1``. No CPU tensor may meet a GPU
one (the fake device raises as CUDA does, see fakecuda.py), and the numbers must equal the CPU's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import defectbench.methods.saliency  # noqa: F401 - registers the models
from defectbench.methods.saliency import list_models
from defectbench.methods.saliency.losses import create_loss, list_losses
from tests.bench.test_speed import tiny_sam  # noqa: F401 - the fixture: a tiny SAM at 1024 px, registered
from tests.conftest import write_png
from tests.device.fakecuda import is_fake

pytestmark = pytest.mark.isolated  # fake CUDA: the module runs in a fresh interpreter (tests/isolated.py)

GPU = torch.device("cuda", 1)


def _grads(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.cpu() for n, p in net.named_parameters() if p.grad is not None}


# in the default run: one network per backbone family (EfficientNet-Lite, VGG-16, VGG-16-BN, ResNet-50, Res2Net-50,
# T2T-ViT); the others take seconds each on a slow CPU and run with -m slow (all passed when this was written)
DEFAULT_RUN = {"litenet", "cpd_vgg", "icon", "f3net", "scrn", "c2fnet", "vst"}


@pytest.mark.parametrize("model", [m if m in DEFAULT_RUN else pytest.param(m, marks=pytest.mark.slow)
                                   for m in list_models()])
def test_network_trains_on_gpu_with_cpu_numbers(fake_gpus, model):
    from defectbench.bench.speed import build_random_saliency

    torch.manual_seed(0)
    net = build_random_saliency(model).train()
    gpu_net = copy.deepcopy(net).to(GPU)
    loss_fn = create_loss(getattr(net, "default_loss", "bce"))
    x, y = torch.randn(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.7).float()
    torch.manual_seed(1)  # dropout draws the same numbers on both devices
    loss = loss_fn(net(x), y)
    loss.backward()
    torch.manual_seed(1)
    gpu_loss = loss_fn(gpu_net(x.to(GPU)), y.to(GPU))
    gpu_loss.backward()
    assert is_fake(gpu_loss) and torch.allclose(gpu_loss.cpu(), loss, rtol=1e-5)
    cpu_grads, gpu_grads = _grads(net), _grads(gpu_net)
    assert cpu_grads.keys() == gpu_grads.keys() and cpu_grads
    for name, g in cpu_grads.items():
        assert torch.allclose(gpu_grads[name], g, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_on_gpu(fake_gpus, name):
    torch.manual_seed(0)
    outs = [torch.randn(2, 1, 32, 32, requires_grad=True) for _ in range(2)]
    target = (torch.rand(2, 1, 32, 32) > 0.6).float()
    loss = create_loss(name, weights=[1.0, 0.5])
    ref = loss(outs, target)
    on_gpu = [o.detach().to(GPU).requires_grad_() for o in outs]
    got = loss(on_gpu, target.to(GPU))
    got.backward()
    assert torch.allclose(got.cpu(), ref) and all(is_fake(o.grad) for o in on_gpu)


def _images(tmp_path, n: int = 3) -> list:
    rng = np.random.default_rng(0)
    return [write_png(tmp_path / "in" / f"im{i}.png", rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8))
            for i in range(n)]


def test_prediction_on_gpu_equals_cpu(fake_gpus, tmp_path):
    import cv2

    from defectbench.deploy import load_predictor
    from defectbench.methods.saliency.predictor import SaliencyPredictor, predict_paths

    paths = _images(tmp_path)
    images = [cv2.imread(str(p)) for p in paths]
    cpu = SaliencyPredictor.from_shipped("litenet", "sd900")
    gpu = load_predictor(model="litenet", weights="sd900", engine="torch", device="cuda:1")
    assert {p.device for p in gpu.model.parameters()} == {GPU}
    for a, b in zip(cpu.predict_batch(images), gpu.predict_batch(images), strict=True):
        assert b.dtype == np.float32 and isinstance(b, np.ndarray) and np.array_equal(a, b)
    predict_paths(cpu, paths, tmp_path / "cpu", batch=2, progress=False)
    predict_paths(gpu, paths, tmp_path / "gpu", batch=2, progress=False)
    for p in paths:
        assert np.array_equal(cv2.imread(str(tmp_path / "cpu" / f"{p.stem}.png")),
                              cv2.imread(str(tmp_path / "gpu" / f"{p.stem}.png")))


def test_predict_cli_on_cuda_1(fake_gpus, tmp_path):
    import cv2

    from defectbench.cli import main

    paths = _images(tmp_path, 2)
    for device in ("cpu", "cuda:1"):
        assert main(["predict", "--model", "litenet", "--weights", "sd900", "--input", str(tmp_path / "in"),
                     "--out", str(tmp_path / device), "--device", device, "--threads", "1"]) == 0
    for p in paths:
        assert np.array_equal(cv2.imread(str(tmp_path / "cpu" / f"{p.stem}.png")),
                              cv2.imread(str(tmp_path / "cuda:1" / f"{p.stem}.png")))


def test_speed_is_measured_on_the_asked_gpu(fake_gpus, tiny_sam):
    from defectbench.bench.speed import measure_sam, measure_saliency

    rec = measure_saliency("litenet", "cuda:1", image_size=64, max_seconds=0.05)
    assert rec.device == "cuda:1" and rec.device_desc == "Fake CUDA GPU 1" and rec.fps > 0
    assert fake_gpus.synchronized and set(fake_gpus.synchronized) == {1}  # waits for cuda:1, not the current GPU
    rec = measure_sam(tiny_sam, "cuda:1", "encoder", max_seconds=0.05)  # "amg": test_sam_on_device.py
    assert rec.what == "encoder" and rec.device_desc == "Fake CUDA GPU 1" and set(fake_gpus.synchronized) == {1}
