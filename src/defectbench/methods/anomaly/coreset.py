"""PatchCore's memory-bank subsampling: greedy k-centre coreset selection on randomly projected patch features.

Each step adds the patch farthest from every patch chosen so far (Sener & Savarese's greedy k-centre, as in
Roth et al. 2022 and anomalib); distances are taken in a seeded Gaussian random projection to ``proj_dim``
dimensions (Johnson-Lindenstrauss), which keeps each step to one matrix-vector product over the bank.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

PROJ_DIM = 128


def coreset_size(n_patches: int, ratio: float) -> int:
    """The number of patches a coreset of ``ratio`` keeps (at least one)."""
    return max(1, min(n_patches, int(math.ceil(n_patches * ratio))))


@torch.inference_mode()
def greedy_coreset(features: torch.Tensor, n_select: int, seed: int = 0, proj_dim: int = PROJ_DIM,
                   advance: Callable[[int], None] | None = None) -> torch.Tensor:
    """Indices (in selection order) of ``n_select`` rows of ``features`` (N x D) chosen by greedy k-centre."""
    n = features.shape[0]
    if n_select >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(int(seed))
    z = features.float()
    if z.shape[1] > proj_dim:
        proj = torch.randn(z.shape[1], proj_dim, generator=gen) / math.sqrt(proj_dim)
        z = z @ proj
    z = z.contiguous()
    sq = (z * z).sum(1)
    chosen = torch.empty(n_select, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    min_d = torch.full((n,), float("inf"))
    dist = torch.empty(n)
    step = max(1, n_select // 100)
    for i in range(n_select):
        if i:
            chosen[i] = int(torch.argmax(min_d))
        c = z[chosen[i]]
        torch.mv(z, c, out=dist)  # squared distance to the new centre: |z|^2 - 2 z.c + |c|^2
        dist.mul_(-2).add_(sq).add_(sq[chosen[i]])
        torch.minimum(min_d, dist, out=min_d)
        if advance is not None and (i + 1) % step == 0:
            advance(step)
    return chosen
