"""PatchCore (Roth et al., CVPR 2022): locally aggregated mid-level patch features of defect-free images, a greedy
coreset of them as the memory bank, and each test patch's distance to its nearest bank entry as its score.

Features: the backbone's stages at 1/8 and 1/16 of the input (``layers`` 2 and 3), each averaged over 3 x 3
neighbourhoods (stride 1), the coarser one upsampled bilinearly to the finer grid, concatenated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from defectbench.methods.anomaly.coreset import coreset_size, greedy_coreset
from defectbench.methods.anomaly.features import Backbone
from defectbench.methods.anomaly.knn import NearestNeighbours
from defectbench.methods.anomaly.model import SIGMA, AnomalyModel, Bar

LAYERS = (2, 3)
CORESET_RATIO = 0.01


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` when it is in (0, 1], else raise ValueError naming the range."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < float(ratio) <= 1:
        raise ValueError(f"coreset_ratio must be in (0, 1] (the share of patches kept in the memory bank), got {ratio!r}")
    return float(ratio)


class PatchCore(AnomalyModel):
    """PatchCore's memory bank over a frozen backbone."""

    kind = "patchcore"

    def __init__(self, backbone: Backbone, size: int, coreset_ratio: float = CORESET_RATIO, sigma: float = SIGMA,
                 seed: int = 0, nn_engine: str = "torch") -> None:
        super().__init__(backbone, size, sigma, seed)
        self.coreset_ratio = check_ratio(coreset_ratio)
        self.nn_engine = nn_engine
        self.bank: torch.Tensor | None = None
        self._nn: NearestNeighbours | None = None

    def embed(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Patch embeddings ``B x h x w x D`` on the grid of the finest returned stage."""
        pooled = [F.avg_pool2d(f, 3, stride=1, padding=1) for f in feats]
        grid = pooled[0].shape[-2:]
        parts = [pooled[0], *(F.interpolate(p, size=grid, mode="bilinear", align_corners=False) for p in pooled[1:])]
        return torch.cat(parts, 1).permute(0, 2, 3, 1).contiguous()

    def fit_features(self, feature_batches: Iterable[list[torch.Tensor]], bar: Bar) -> dict[str, Any]:
        """Gather every patch embedding, then keep a greedy coreset of ``coreset_ratio`` of them."""
        patches = torch.cat([self.embed(f).reshape(-1, self._dim(f)) for f in feature_batches])
        n_keep = coreset_size(patches.shape[0], self.coreset_ratio)
        idx = greedy_coreset(patches, n_keep, self.seed, advance=bar("coreset", n_keep))
        self._set_bank(patches[idx].clone())
        return {"patches": int(patches.shape[0]), "bank": list(self.bank.shape)}

    @staticmethod
    def _dim(feats: list[torch.Tensor]) -> int:
        return sum(f.shape[1] for f in feats)

    def _set_bank(self, bank: torch.Tensor) -> None:
        self.bank = bank.float().contiguous()
        self._nn = NearestNeighbours(self.bank, self.nn_engine)
        self.fitted = True

    def patch_scores(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Distance of each patch to its nearest memory-bank entry."""
        assert self._nn is not None
        emb = self.embed(feats)
        b, h, w, d = emb.shape
        return self._nn.distances(emb.reshape(-1, d)).reshape(b, h, w)

    def options(self) -> dict[str, Any]:
        """Backbone, input size, smoothing, seed, coreset ratio and search engine."""
        return {**super().options(), "coreset_ratio": self.coreset_ratio, "nn_engine": self.nn_engine}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The memory bank."""
        assert self.bank is not None, "PatchCore is not fitted"
        return {"bank": self.bank}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the memory bank."""
        self._set_bank(tensors["bank"])
