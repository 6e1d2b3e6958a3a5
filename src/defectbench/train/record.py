"""The ``run.json`` of a training run: config, versions, device and precision, data hashes, timings and per-epoch
history."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from defectbench.atomic import atomic_write_json
from defectbench.data import Sample
from defectbench.runtime import device_description, git_commit, versions
from defectbench.train.config import TrainConfig
from defectbench.train.data import data_hash


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())


class RunRecord:
    """Collects the static facts of a run once and rewrites ``run.json`` atomically after every epoch."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, model: nn.Module, train: Sequence[Sample],
                 val: Sequence[Sample], device: str, precision: str = "fp32", workers: int = 0) -> None:
        self.path = Path(out_dir) / "run.json"
        notes = []
        if not cfg.pretrained:
            notes.append("trained from scratch (--no-pretrained): the backbone did NOT start from ImageNet weights")
        self.static: dict[str, Any] = {
            "kind": "train",
            "config": cfg.to_dict(),
            "model": {"name": cfg.model, "kwargs": cfg.model_kwargs, "parameters": count_parameters(model),
                      "pretrained_backbone": cfg.pretrained, "backbone_weights": cfg.backbone_weights},
            "data": {"dataset": cfg.dataset, "split": cfg.split, "n_train": len(train), "n_val": len(val),
                     "val_ids": [s.id for s in val], "train_sha256": data_hash(train), "val_sha256": data_hash(val),
                     **({"labels": cfg.labels, "train_ids": [s.id for s in train]} if cfg.labels else {})},
            "versions": versions(), "git_commit": git_commit(), "device": device_description(device),
            "precision": precision, "loader_workers": workers,
            "notes": notes,
        }
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S")

    def write(self, history: list[dict[str, Any]], best: dict[str, float] | None, best_epoch: int,
              train_seconds: float, finished: bool) -> None:
        """Rewrite ``run.json`` with the history so far."""
        atomic_write_json(self.path, {
            **self.static,
            "status": "finished" if finished else "running",
            "session_started": self.started,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "timings": {"train_seconds": round(train_seconds, 1), "epochs_done": len(history)},
            "best": {"epoch": best_epoch, "val": best},
            "history": history,
        })
