"""What PatchCore and PaDiM share: a frozen backbone's features in, a per-patch score out, turned into a smooth
anomaly map at the image's size (bilinear upsampling to the input size, Gaussian smoothing, resize to the image).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from defectbench.methods.anomaly.features import Backbone

Bar = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)
SIGMA = 4.0  # Gaussian smoothing of the upsampled map, in input pixels (PatchCore's and PaDiM's sigma)


def batches(images: Iterable[np.ndarray], batch: int) -> Iterable[list[np.ndarray]]:
    """Yield lists of up to ``batch`` images from any iterable (images are read lazily)."""
    it = iter(images)
    while chunk := list(itertools.islice(it, batch)):
        yield chunk


class AnomalyModel:
    """A backbone plus a fitted model of defect-free patches; subclasses define ``fit_features`` and ``patch_scores``."""

    kind = ""

    def __init__(self, backbone: Backbone, size: int, sigma: float = SIGMA, seed: int = 0) -> None:
        self.backbone, self.size, self.sigma, self.seed = backbone, int(size), float(sigma), int(seed)
        self.fitted = False

    # -- subclass interface --------------------------------------------------------------------------------
    def fit_features(self, feature_batches: Iterable[list[torch.Tensor]], bar: Bar) -> dict[str, Any]:
        """Fit on the feature maps of defect-free images (batch by batch); return facts for the record."""
        raise NotImplementedError

    def patch_scores(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Score every feature cell: ``B x h x w`` (higher = more anomalous)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The settings that define the model (JSON-able), saved with it."""
        return {"kind": self.kind, "backbone": self.backbone.name, "layers": list(self.backbone.layers),
                "size": self.size, "sigma": self.sigma, "seed": self.seed}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fitted state as named tensors (saved in a weights-only file)."""
        raise NotImplementedError

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the fitted state saved by :meth:`tensors`."""
        raise NotImplementedError

    def state_mb(self) -> float:
        """Size of the fitted state in MB (10^6 bytes)."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values()) / 1e6

    # -- shared --------------------------------------------------------------------------------------------
    def fit(self, images: Iterable[np.ndarray], n_images: int, batch: int = 8, device: str = "cpu",
            bar: Bar | None = None) -> dict[str, Any]:
        """Fit on ``n_images`` defect-free images (any iterable of arrays as read); return facts for the record.

        ``bar(description, total)`` returns an ``advance(n)`` callable (progress of the features, then of the fit).
        """
        bar = bar or (lambda desc, total: (lambda n: None))
        advance = bar(f"{self.kind} features", n_images)

        def feature_batches() -> Iterable[list[torch.Tensor]]:
            for chunk in batches(images, batch):
                yield self.backbone.features(chunk, self.size, device)
                advance(len(chunk))

        facts = self.fit_features(feature_batches(), bar)
        self.fitted = True
        return {"fit_images": n_images, **facts}

    @torch.inference_mode()
    def score_maps(self, images: Sequence[np.ndarray], device: str = "cpu") -> list[np.ndarray]:
        """Raw anomaly maps of images: float32, each of its image's size (not yet mapped to [0, 1])."""
        if not self.fitted:
            raise RuntimeError(f"{self.kind} is not fitted: call fit() or load a fitted model")
        scores = self.patch_scores(self.backbone.features(images, self.size, device))
        up = F.interpolate(scores[:, None].float(), size=(self.size, self.size), mode="bilinear", align_corners=False)
        ksize = 2 * int(4 * self.sigma + 0.5) + 1
        out = []
        for i, img in enumerate(images):
            smooth = cv2.GaussianBlur(up[i, 0].cpu().numpy(), (ksize, ksize), self.sigma)
            h, w = img.shape[:2]
            out.append(cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32))
        return out
