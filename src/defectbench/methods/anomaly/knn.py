"""Nearest-neighbour distances from query patches to a memory bank: faiss (exact ``IndexFlatL2``) when installed,
else ``torch.cdist`` over chunks of queries. Both are exact searches; they agree to float rounding.
"""

from __future__ import annotations

import torch

ENGINES = ("faiss", "torch")
CHUNK = 4096  # query rows per torch.cdist call (bounds the distance matrix at CHUNK x bank rows)


def default_engine() -> str:
    """``faiss`` when faiss-cpu is importable, else ``torch``."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "torch"
    return "faiss"


class NearestNeighbours:
    """Distance of each query row to its nearest row of ``bank`` (L2), by the chosen engine."""

    def __init__(self, bank: torch.Tensor, engine: str | None = None) -> None:
        self.engine = engine or default_engine()
        if self.engine not in ENGINES:
            raise ValueError(f"nearest-neighbour engine must be one of {ENGINES}, got {self.engine!r}")
        self.bank = bank.float().contiguous()
        self.index = None
        if self.engine == "faiss":
            import faiss

            self.index = faiss.IndexFlatL2(self.bank.shape[1])
            self.index.add(self.bank.numpy())

    @torch.inference_mode()
    def distances(self, queries: torch.Tensor) -> torch.Tensor:
        """L2 distance of each query (M x D) to the bank: a length-M float tensor."""
        q = queries.float().contiguous()
        if self.index is not None:
            import faiss

            faiss.omp_set_num_threads(torch.get_num_threads())
            sq, _ = self.index.search(q.numpy(), 1)
            return torch.from_numpy(sq[:, 0]).clamp_min_(0).sqrt_()
        out = torch.empty(q.shape[0])
        for start in range(0, q.shape[0], CHUNK):
            part = q[start:start + CHUNK]
            out[start:start + CHUNK] = torch.cdist(part, self.bank, compute_mode="use_mm_for_euclid_dist").amin(1)
        return out
