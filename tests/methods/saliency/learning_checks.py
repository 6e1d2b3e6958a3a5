"""A bounded check that a saliency model really learns: a few steps on two real SD-saliency-900 images.

:func:`assert_learns` trains a (usually width-reduced) model from scratch on one batch of two real images (an inclusion and
scratches: a small and a long thin defect) at a
small input with Adam and the model's own default loss, and asserts that the loss falls to a fraction of its
first value and that the mean S-measure of the main output (against the full-resolution ground truth) rises by a
clear margin. It stops early once both hold, so a healthy model costs few steps; a model whose gradients do not
reach its output, or whose output ignores the input, fails.

The S-measure is taken on the training forward pass (BatchNorm with the batch's statistics): with one fixed batch
of two small images the deepest BN layers see very few values per channel, so eval-mode running statistics are
not representative of what was fitted (see ``test_overfit_baselines.py``). The eval path is tested per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from defectbench.data import read_image, read_mask, to_rgb
from defectbench.methods.saliency import IMAGENET_MEAN, IMAGENET_STD
from defectbench.methods.saliency.losses import create_loss
from defectbench.metrics import score_image
from tests.conftest import SD900

# two images, not four: half the cost per step, and each model still needs 6-36 steps (measured) to clear the bars
IDS = ("In_153", "Sc_110")


@dataclass
class LearningResult:
    """What one bounded training run reached."""

    steps: int
    first_loss: float
    last_loss: float
    s_before: float
    s_after: float
    seconds: float


def real_batch(size: int, ids: tuple[str, ...] = IDS) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """The images (ImageNet-normalised, ``size`` x ``size``), their resized targets and full-size masks."""
    if SD900 is None or not SD900.is_dir():
        pytest.skip("SD-saliency-900 not found (../shared/datasets)")
    images, targets, masks = [], [], []
    for sid in ids:
        img = to_rgb(read_image(SD900 / "Source Images" / f"{sid}.bmp"))
        mask = read_mask(SD900 / "Ground truth" / f"{sid}.png")
        images.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR))
        targets.append(cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR))
        masks.append(mask)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    y = torch.from_numpy(np.stack(targets))[:, None]
    return x, y, masks


def mean_s_measure(logits: torch.Tensor, masks: list[np.ndarray]) -> float:
    """Mean S-measure of the predicted maps, each upsampled to its ground truth's size."""
    prob = torch.sigmoid(logits.detach().float())[:, 0].numpy()
    scores = []
    for p, gt in zip(prob, masks, strict=True):
        full = cv2.resize(p, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
        scores.append(float(score_image(np.round(full * 255).astype(np.uint8), gt).S_alpha))
    return float(np.mean(scores))


def train_on_real_images(model: torch.nn.Module, size: int = 64, max_steps: int = 60, lr: float = 3e-3,
                         loss_ratio: float = 0.5, min_gain: float = 0.15, check_every: int = 3,
                         seed: int = 0) -> LearningResult:
    """Train ``model`` on the two images until loss and S-measure clear the bars or ``max_steps`` pass."""
    torch.manual_seed(seed)
    x, y, masks = real_batch(size)
    loss_fn = create_loss(model.default_loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # fused: its step costs 15-25 % less here
    model.train()
    start = time.perf_counter()
    first_loss = s_before = None
    s_after = 0.0
    loss = torch.tensor(float("nan"))
    step = 0
    for step in range(1, max_steps + 1):
        optimizer.zero_grad()
        outputs = model(x)
        loss = loss_fn(outputs, y)
        if first_loss is None:
            first_loss, s_before = loss.item(), mean_s_measure(outputs[0], masks)
        if step % check_every == 0:
            s_after = mean_s_measure(outputs[0], masks)
            if loss.item() < loss_ratio * first_loss and s_after > s_before + min_gain:
                break
        loss.backward()
        optimizer.step()
    assert first_loss is not None and s_before is not None
    return LearningResult(step, first_loss, loss.item(), s_before, s_after, time.perf_counter() - start)


def assert_learns(model: torch.nn.Module, size: int = 64, max_steps: int = 60, lr: float = 3e-3,
                  loss_ratio: float = 0.5, min_gain: float = 0.15) -> LearningResult:
    """Assert the loss falls below ``loss_ratio`` of its start and mean S rises by ``min_gain`` within ``max_steps``."""
    r = train_on_real_images(model, size=size, max_steps=max_steps, lr=lr, loss_ratio=loss_ratio, min_gain=min_gain)
    name = getattr(model, "model_name", type(model).__name__)
    print(f"{name}: loss {r.first_loss:.3f} -> {r.last_loss:.3f}, S {r.s_before:.3f} -> {r.s_after:.3f} "
          f"in {r.steps} steps, {r.seconds:.1f} s")
    assert r.last_loss < loss_ratio * r.first_loss, f"{name}: loss {r.first_loss:.3f} -> {r.last_loss:.3f} in {r.steps} steps"
    assert r.s_after > r.s_before + min_gain, f"{name}: S {r.s_before:.3f} -> {r.s_after:.3f} in {r.steps} steps"
    return r
