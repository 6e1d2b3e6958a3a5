"""The training steps do not wait for the GPU: on a (fake) GPU no step and no moving-average update reads a device
tensor on the host; the losses are read every ``log_every`` steps and at the epoch's end, and a non-finite loss is
still refused with one line naming its epoch and step (and no checkpoint holds the broken weights)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.swa_utils import AveragedModel
from torch.overrides import TorchFunctionMode

from defectbench.train import TrainConfig, train_model, trainer
from defectbench.train.losslog import DeviceLossLog, NonFiniteLoss

pytestmark = pytest.mark.isolated  # fake CUDA: the module runs in a fresh interpreter (tests/isolated.py)

READS = {torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy,
         torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.__array__}


class HostReads(TorchFunctionMode):
    """Records every call that copies a CUDA tensor's value to the host (a synchronisation on a real GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.is_cuda:
            moved_off = func is torch.Tensor.to and isinstance(out, torch.Tensor) and not out.is_cuda
            if func in READS or moved_off:
                self.calls.append(getattr(func, "__name__", str(func)))
        return out


def _cfg(data_root, **options) -> TrainConfig:
    base = dict(model_kwargs={"width": 8}, epochs=1, batch=2, size=32, limit=20, val_fraction=0.25, warmup_epochs=0,
                data_root=str(data_root), threads=1, pretrained=False, workers=0)
    return TrainConfig.for_model("litenet", {**base, **options})


def test_steps_and_average_updates_never_read_the_gpu(tmp_path, sd900_root, monkeypatch) -> None:
    from tests.device.fakecuda import fake_cuda

    spy = HostReads()
    step, update, flush = trainer.TrainStep.__call__, AveragedModel.update_parameters, DeviceLossLog.flush
    calls = {"steps": 0, "updates": 0, "flushes": []}

    def spied_step(self, *args, **kwargs):  # noqa: ANN001, ANN202
        calls["steps"] += 1
        with spy:
            return step(self, *args, **kwargs)

    def spied_update(self, model):  # noqa: ANN001, ANN202
        calls["updates"] += 1
        with spy:
            return update(self, model)

    def counted_flush(self):  # noqa: ANN001, ANN202
        calls["flushes"].append(self.pending)
        return flush(self)

    monkeypatch.setattr(trainer.TrainStep, "__call__", spied_step)
    monkeypatch.setattr(AveragedModel, "update_parameters", spied_update)
    monkeypatch.setattr(DeviceLossLog, "flush", counted_flush)
    threads = torch.get_num_threads()
    try:
        with fake_cuda(device_count=1, capability=(8, 0)):  # bf16: no gradient scaler (whose step reads found_inf)
            result = train_model(_cfg(sd900_root, ema_decay=0.9, log_every=3), out_dir=tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert calls["steps"] == calls["updates"] == 7 and spy.calls == []
    assert calls["flushes"] == [3, 3, 1]  # every 3 steps and the epoch's rest: the only reads of the losses
    assert math.isfinite(result.history[0]["loss"])
    # the spy sees reads where there are some: the old step's isfinite check would have shown here
    with fake_cuda(device_count=1), spy:
        bool(torch.isfinite(torch.ones((), device="cuda")))
    assert spy.calls == ["__bool__"]


def test_a_non_finite_loss_names_its_epoch_and_step(tmp_path, sd900_root, monkeypatch) -> None:
    real = trainer.create_loss_for
    seen = []

    def poisoned(model, cfg):  # noqa: ANN001, ANN202
        loss = real(model, cfg)

        def fn(outputs, y):  # noqa: ANN001, ANN202
            seen.append(1)
            value = loss(outputs, y)
            return value * float("nan") if len(seen) == 12 else value  # step 5 of epoch 2
        return fn

    monkeypatch.setattr(trainer, "create_loss_for", poisoned)
    with pytest.raises(NonFiniteLoss) as info:
        train_model(_cfg(sd900_root, epochs=2, log_every=3), out_dir=tmp_path / "run", progress=False)
    assert str(info.value) == "training loss became nan at epoch 2/2, step 5/7; lower --lr"
    assert len(seen) == 12 + 1  # found at the read after step 6, not at the end of the run
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["train_state"]["epoch"] == 1  # the broken epoch was never saved


def test_loss_log_reads_in_one_transfer_and_keeps_the_mean() -> None:
    log = DeviceLossLog(0, 3, 4)
    for v in (1.0, 2.0, 4.0):
        log.add(torch.tensor(v))
    assert log.pending == 3 and math.isnan(log.mean())
    log.flush()
    assert log.pending == 0 and log.values == [1.0, 2.0, 4.0] and log.mean() == pytest.approx(7 / 3)
    log.add(torch.tensor(float("inf")))
    with pytest.raises(NonFiniteLoss, match=r"^training loss became inf at epoch 1/3, step 4/4; lower --lr$"):
        log.flush()
