"""The losses of an epoch, kept on the training device and read on the host only every ``log_every`` steps and at
the epoch's end, so that the steps in between queue on the GPU without a host synchronisation each."""

from __future__ import annotations

import math

import numpy as np
import torch

from defectbench.errors import ConfigError


class NonFiniteLoss(ConfigError):
    """The training loss became NaN or infinite (a learning rate too high, or fp16 overflow)."""


class DeviceLossLog:
    """Collects detached per-step losses (device tensors); :meth:`flush` copies them to the host in one transfer and
    raises :class:`NonFiniteLoss` naming the first step whose loss is not finite."""

    def __init__(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.values: list[float] = []
        self._pending: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        """Keep one step's (0-dim, detached) loss without reading it."""
        self._pending.append(loss)

    @property
    def pending(self) -> int:
        """Steps added since the last :meth:`flush`."""
        return len(self._pending)

    def flush(self) -> None:
        """Read the pending losses on the host (one synchronisation); refuse a non-finite one with a one-line error."""
        if not self._pending:
            return
        values = torch.stack(self._pending).float().cpu().tolist()
        first = len(self.values) + 1
        self._pending = []
        for k, value in enumerate(values):
            if not math.isfinite(value):
                raise NonFiniteLoss(f"training loss became {value} at epoch {self.epoch + 1}/{self.epochs}, step "
                                    f"{first + k}/{self.steps}; lower --lr")
        self.values.extend(values)

    def mean(self) -> float:
        """Return the mean of the losses read so far (NaN before the first flush)."""
        return float(np.mean(self.values)) if self.values else math.nan
