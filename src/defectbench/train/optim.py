"""Optimiser and learning-rate schedule of a training run; the schedule is a pure function of the step."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from defectbench.train.config import TrainConfig

BACKBONE_PREFIXES = ("encoder.", "backbone.", "bkbone.", "rgb_backbone.")


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Return the optimiser of ``cfg`` with two parameter groups: backbone (lr x backbone_lr_mult) and the rest."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith(BACKBONE_PREFIXES) else rest).append(p)
    groups = [g for g in (
        {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult, "base_lr": cfg.lr * cfg.backbone_lr_mult},
        {"params": rest, "lr": cfg.lr, "base_lr": cfg.lr},
    ) if g["params"]]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=False)


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Return the learning-rate multiplier at global ``step`` (0-based) for the schedule of ``cfg``."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "triangle":  # F3Net: linear warm-up to the middle of training, linear decay to 0
        return 1.0 - abs((step + 1) / (total + 1) * 2 - 1)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return 0.1 ** (step // (cfg.step_epochs * steps_per_epoch))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if cfg.schedule == "cosine":
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return max(cfg.min_lr_ratio, (1 - progress) ** 0.9)  # poly


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every parameter group's lr to its base lr times ``factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
