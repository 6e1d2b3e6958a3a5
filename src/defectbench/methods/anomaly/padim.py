"""PaDiM (Defard et al., ICPR 2021): at every position of the feature grid, a Gaussian of the defect-free
images' embeddings; a test patch scores its Mahalanobis distance to the Gaussian of its position.

Features: the backbone's stages at 1/4, 1/8 and 1/16 (``layers`` 1-3), upsampled (nearest) to the finest grid and
concatenated; a seeded random subset of ``dims`` channels (PaDiM's random dimensionality reduction: 100 for
ResNet-18, 550 for WideResNet-50). Covariances get 0.01 x identity added before inversion, as in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from defectbench.methods.anomaly.features import Backbone
from defectbench.methods.anomaly.model import SIGMA, AnomalyModel, Bar

LAYERS = (1, 2, 3)
DIMS = 100
REGULARISATION = 0.01


class Padim(AnomalyModel):
    """PaDiM's per-position Gaussians over a frozen backbone."""

    kind = "padim"

    def __init__(self, backbone: Backbone, size: int, dims: int = DIMS, sigma: float = SIGMA, seed: int = 0) -> None:
        super().__init__(backbone, size, sigma, seed)
        total = sum(backbone.channels)
        self.dims = min(int(dims), total)
        gen = torch.Generator().manual_seed(self.seed)
        self.channel_index = torch.randperm(total, generator=gen)[: self.dims].sort().values
        self.mean: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None

    def embed(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Embeddings ``B x P x d`` (P positions of the finest grid, d selected channels)."""
        grid = feats[0].shape[-2:]
        emb = torch.cat([feats[0], *(F.interpolate(f, size=grid, mode="nearest") for f in feats[1:])], 1)
        emb = emb[:, self.channel_index]
        return emb.flatten(2).transpose(1, 2)

    def fit_features(self, feature_batches: Iterable[list[torch.Tensor]], bar: Bar) -> dict[str, Any]:
        """Accumulate per-position sums (float64), then the mean and the regularised inverse covariance."""
        n, s1, s2 = 0, None, None
        for feats in feature_batches:
            e = self.embed(feats).double()  # B x P x d
            if s1 is None:
                s1 = torch.zeros(e.shape[1:], dtype=torch.float64)
                s2 = torch.zeros(e.shape[1], e.shape[2], e.shape[2], dtype=torch.float64)
            s1 += e.sum(0)
            s2 += torch.einsum("bpi,bpj->pij", e, e)
            n += e.shape[0]
        if n < 2:
            raise ValueError(f"PaDiM needs at least 2 defect-free images to fit a covariance, got {n}")
        mean = s1 / n
        cov = (s2 - n * mean[:, :, None] * mean[:, None, :]) / (n - 1)
        cov += REGULARISATION * torch.eye(self.dims, dtype=torch.float64)
        self.mean = mean.float()
        self.precision = torch.linalg.inv(cov).float().contiguous()  # the layout a loaded copy has: same rounding
        self.fitted = True
        return {"positions": int(mean.shape[0]), "dims": self.dims}

    def patch_scores(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Mahalanobis distance of each position's embedding to its Gaussian."""
        assert self.mean is not None and self.precision is not None
        b = feats[0].shape[0]
        h, w = feats[0].shape[-2:]
        delta = (self.embed(feats) - self.mean).transpose(0, 1)  # P x B x d
        m = (torch.bmm(delta, self.precision) * delta).sum(-1)  # P x B
        return m.clamp_min(0).sqrt().transpose(0, 1).reshape(b, h, w)

    def options(self) -> dict[str, Any]:
        """Backbone, input size, smoothing, seed and the number of channels kept."""
        return {**super().options(), "dims": self.dims}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Means, inverse covariances and the kept channels."""
        assert self.mean is not None and self.precision is not None, "PaDiM is not fitted"
        return {"mean": self.mean, "precision": self.precision, "channel_index": self.channel_index}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the fitted Gaussians."""
        self.mean, self.precision = tensors["mean"].float().contiguous(), tensors["precision"].float().contiguous()
        self.channel_index = tensors["channel_index"].long()
        self.fitted = True
