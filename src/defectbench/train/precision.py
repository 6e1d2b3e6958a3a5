"""The numeric precision of a training run: fp32 on the CPU, bf16 autocast where the GPU has native bf16 (compute
capability 8.0 and later), else fp16 autocast with a gradient scaler.

``torch.cuda.is_bf16_supported()`` also counts *emulated* bf16 (V100, T4: capability 7.x), which is slow there; the
decision here looks at the compute capability instead and is a pure function of it, so it is tested without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere and later: bf16 tensor cores


@dataclass(frozen=True)
class Precision:
    """How a run computes: ``name`` (fp32, bf16, fp16), the autocast dtype (None = no autocast), gradient scaling."""

    name: str
    dtype: torch.dtype | None
    scaler: bool

    @property
    def label(self) -> str:
        """A short description for logs and the training record, e.g. ``fp16 autocast + GradScaler``."""
        if self.dtype is None:
            return "fp32"
        return f"{self.name} autocast" + (" + GradScaler" if self.scaler else "")


FP32 = Precision("fp32", None, False)
BF16 = Precision("bf16", torch.bfloat16, False)
FP16 = Precision("fp16", torch.float16, True)


def choose_precision(device_type: str, capability: tuple[int, int] | None = None, amp: str = "auto") -> Precision:
    """Return the precision of a run on ``device_type`` (``cpu``/``cuda``) with GPU compute ``capability``.

    ``amp``: ``auto`` (bf16 where native, i.e. capability >= 8.0, else fp16 with a scaler), ``off`` (fp32),
    ``bf16`` or ``fp16`` (as asked). The CPU always trains in fp32, so CPU results stay bit-for-bit reproducible.
    """
    if device_type != "cuda" or amp == "off":
        return FP32
    if amp == "fp16":
        return FP16
    if amp == "bf16":
        return BF16
    if capability is not None and tuple(capability) >= NATIVE_BF16_CAPABILITY:
        return BF16
    return FP16


def precision_for(device: str, amp: str = "auto") -> Precision:
    """Return :func:`choose_precision` for a torch device string, reading the GPU's compute capability."""
    if not device.startswith("cuda"):
        return FP32
    return choose_precision("cuda", tuple(torch.cuda.get_device_capability(torch.device(device))), amp)
