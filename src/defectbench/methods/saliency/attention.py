"""CBAM-style attention maps shared by CorrNet and CSEPNet (their official code's ``ChannelAttention`` /
``SpatialAttention``, which differ only in the reduction ratio and the kernel size; parameter names kept)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelAttention(nn.Module):
    """Max-pooled squeeze-excitation, sigmoid weights per channel (CorrNet: ratio 4, CSEPNet: 16)."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x 1 x 1`` weights in (0, 1)."""
        return torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_max_pool2d(x, 1)))))


class SpatialAttention(nn.Module):
    """A conv on the channel-wise max, sigmoid weights per position (CorrNet: 3 x 3, CSEPNet: 7 x 7)."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x 1 x H x W`` weights in (0, 1)."""
        return torch.sigmoid(self.conv1(x.amax(dim=1, keepdim=True)))
