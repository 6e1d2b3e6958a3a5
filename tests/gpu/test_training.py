"""Every registered saliency model trains on the GPU with mixed precision (loss finite and falling); the trainer's
images per second per model go to the timing table."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.common import DEVICE, ON_GPU, record_timing, timed

import defectbench.methods.saliency  # noqa: F401 - registers every model
from defectbench.methods.saliency.registry import list_models

pytestmark = pytest.mark.gpu

STEPS = 60


def _step_for(name: str, model: torch.nn.Module):  # noqa: ANN202
    from defectbench.train.config import TrainConfig
    from defectbench.train.optim import build_optimizer
    from defectbench.train.trainer import TrainStep, amp_dtype, create_loss_for

    cfg = TrainConfig.for_model(name, {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "backbone_lr_mult": 1.0,
                                       "device": DEVICE})
    dtype = amp_dtype(cfg, DEVICE)
    assert (dtype is not None) == ON_GPU  # autocast on the GPU, never on the CPU
    return TrainStep(model, create_loss_for(model, cfg), build_optimizer(model, cfg), DEVICE, dtype,
                     cfg.grad_clip_value), dtype


@pytest.mark.parametrize("name", list_models())
def test_mixed_precision_steps_learn(name: str) -> None:
    from defectbench.methods.saliency.checkpoint import build_model
    from tests.methods.saliency.learning_checks import real_batch

    torch.manual_seed(0)
    size = 128 if ON_GPU else 64
    model = build_model(name, {}, pretrained=False).to(DEVICE).train().to(memory_format=torch.channels_last)
    step, dtype = _step_for(name, model)
    x, y, _ = real_batch(size)
    x, y = x.to(DEVICE).contiguous(memory_format=torch.channels_last), y.to(DEVICE)
    losses = [float(step(x, y)) for _ in range(STEPS if ON_GPU else 20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    tail = sum(losses[-5:]) / 5
    assert tail < 0.85 * losses[0], f"{name}: loss {losses[0]:.4f} -> {tail:.4f} in {len(losses)} steps ({dtype})"

    # throughput of the trainer's step at the default input, batch 8
    batch, side = (8, 224) if ON_GPU else (2, 64)
    xb = torch.randn(batch, 3, side, side, device=DEVICE).contiguous(memory_format=torch.channels_last)
    yb = (torch.rand(batch, 1, side, side, device=DEVICE) > 0.9).float()
    step(xb, yb)
    n = 10 if ON_GPU else 2
    _, secs = timed(lambda: [step(xb, yb) for _ in range(n)])
    record_timing("train", model=name, precision=str(dtype).replace("torch.", "") if dtype else "fp32",
                  input=side, batch=batch, images_per_s=round(n * batch / secs, 1), first_loss=round(losses[0], 4),
                  last_loss=round(tail, 4))
