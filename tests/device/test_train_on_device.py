"""Training on a (fake) GPU: ``train_model`` on ``cuda:1`` with an fp16 gradient scaler and a moving average of
the weights (a deep copy of the model) runs its steps, validation and checkpoints without a CPU tensor meeting a
GPU one (the fake device raises as CUDA does, see fakecuda.py), and ends with exactly the CPU run's weights.
Precision follows the compute capability: 7.x (emulated bf16 only) trains in fp16 with a scaler, 8.0 in bf16;
emulated bf16 (what ``torch.cuda.is_bf16_supported()`` counts by default) is not taken for native.

The loader runs in the test process (``workers=0``; it still pins the batches for the GPU): forking loader workers
from a pytest-xdist worker under the fake device hangs, see the fakecuda pin-memory test."""

from __future__ import annotations

import json

import pytest
import torch

from defectbench.train import TrainConfig, train_model, trainer
from defectbench.train.precision import BF16, FP16, FP32, precision_for
from tests.device.fakecuda import fake_cuda

pytestmark = pytest.mark.isolated  # fake CUDA: the module runs in a fresh interpreter (tests/isolated.py)


def _config(data_root, device: str, **options) -> TrainConfig:
    return TrainConfig.for_model("litenet", dict(model_kwargs={"width": 16}, epochs=1, batch=4, size=64, limit=8,
                                                 val_fraction=0.25, warmup_epochs=0, data_root=str(data_root),
                                                 threads=1, pretrained=False, ema_decay=0.9, device=device, workers=0,
                                                 **options))


def test_training_on_cuda_1_equals_the_cpu_run(tmp_path, data_root, monkeypatch):
    seen = []
    step = trainer.TrainStep.__call__

    def spy(self, x, y, epoch=0):  # noqa: ANN001, ANN202
        seen.append({x.device, y.device, *(p.device for p in self.model.parameters())})
        return step(self, x, y, epoch)

    monkeypatch.setattr(trainer.TrainStep, "__call__", spy)
    cpu = train_model(_config(data_root, "cpu"), out_dir=tmp_path / "cpu", progress=False)
    with fake_cuda(device_count=2, capability=(7, 0)) as gpus:  # emulated bf16 only: fp16 with a gradient scaler
        gpu = train_model(_config(data_root, "cuda:1"), out_dir=tmp_path / "gpu", progress=False)
    assert seen == [{torch.device("cpu")}, {torch.device("cuda", 1)}]  # the step really ran on cuda:1
    assert gpus.synchronized and set(gpus.synchronized) == {1}
    records = [json.loads((tmp_path / name / "run.json").read_text()) for name in ("cpu", "gpu")]
    assert [r["precision"] for r in records] == ["fp32", "fp16 autocast + GradScaler"]
    a = torch.load(cpu.last_checkpoint, weights_only=True)
    b = torch.load(gpu.last_checkpoint, weights_only=True)
    assert b["train_state"]["grad_scaler"]["scale"] == 65536.0 and a["train_state"]["grad_scaler"] is None
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name  # a power-of-two loss scale changes no bit
    assert gpu.best_scores == cpu.best_scores


def test_native_bf16_gpus_train_in_bf16_without_a_scaler(tmp_path, data_root):
    with fake_cuda(device_count=1, capability=(8, 0)):
        gpu = train_model(_config(data_root, "cuda"), out_dir=tmp_path / "gpu", progress=False)
    record = json.loads((tmp_path / "gpu" / "run.json").read_text())
    assert record["precision"] == "bf16 autocast" and record["loader_workers"] == 0
    assert torch.load(gpu.last_checkpoint, weights_only=True)["train_state"]["grad_scaler"] is None


def test_emulated_bf16_is_not_taken_for_native() -> None:
    with fake_cuda(device_count=2, capability=(7, 5)):
        assert torch.cuda.is_bf16_supported()  # what torch says of a T4: emulated counts
        assert precision_for("cuda:1") == FP16 and precision_for("cpu") == FP32
    with fake_cuda(device_count=1, capability=(8, 0)):
        assert precision_for("cuda") == BF16
