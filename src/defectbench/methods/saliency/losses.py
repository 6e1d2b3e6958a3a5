"""Training losses of the saliency models, on logits, with a small registry by name.

A registered loss is a callable ``loss(outputs, target) -> scalar tensor`` where ``outputs`` is the list of
logit maps a model returns in train mode (``[main, *side_outputs]``, each ``B x 1 x H x W``; a single tensor
is accepted too) and ``target`` the ground truth in ``[0, 1]`` (``B x 1 x H x W`` or ``B x H x W``).

* ``"bce"`` -- CPD (Wu et al., CVPR 2019): binary cross-entropy on every output (attention and detection
  maps), summed.
* ``"hybrid"`` -- EDRNet (Song et al., IEEE TIM 2020), the BASNet hybrid loss: BCE + (1 - SSIM) + IoU on
  every output (refined map and all side outputs), summed with equal weights.
* ``"structure"`` -- F3Net (Wei et al., AAAI 2020): boundary-weighted BCE + weighted IoU with the 31 x 31
  average-pool weights ``1 + 5 |avgpool(mask) - mask|``; outputs weighted as in F3Net's training script,
  ``[pred2, pred1, out2r, out3r, out4r, out5r]`` -> ``(1/2, 1/2, 1/2, 1/4, 1/8, 1/16)``.

The per-map building blocks (:func:`bce_loss`, :func:`ssim_map`, :func:`ssim`, :func:`ssim_loss`, :func:`iou_loss`,
:func:`hybrid_loss`, :func:`weighted_bce_loss`, :func:`weighted_iou_loss`, :func:`structure_loss`) take one
logit map and are exported for other models to reuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from defectbench.errors import DefectbenchError

Outputs = torch.Tensor | Sequence[torch.Tensor]
LossFn = Callable[[Outputs, torch.Tensor], torch.Tensor]

#: F3Net's weights for ``[pred2 (main), pred1, out2r, out3r, out4r, out5r]`` (its ``train.py``).
F3NET_OUTPUT_WEIGHTS = (0.5, 0.5, 0.5, 0.25, 0.125, 0.0625)

_EPS = 1e-7


# ----------------------------------------------------------------------------------------- building blocks


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy between a logit map and a ``[0, 1]`` target."""
    return F.binary_cross_entropy_with_logits(logits, target)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Return the normalised ``1 x 1 x size x size`` Gaussian window of BASNet's pytorch_ssim."""
    g = torch.tensor([math.exp(-((x - size // 2) ** 2) / (2 * sigma**2)) for x in range(size)], dtype=torch.float64)
    g = g / g.sum()
    return torch.outer(g, g).float()[None, None]


def ssim_map(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-pixel SSIM of two ``B x C x H x W`` maps in ``[0, 1]`` (Gaussian window, sigma 1.5, zero padding)."""
    channels = img1.shape[1]
    window = gaussian_window(window_size).to(img1).expand(channels, 1, window_size, window_size)
    pad = window_size // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    mu1, mu2 = blur(img1), blur(img2)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = blur(img1 * img1) - mu1_sq
    sigma2_sq = blur(img2 * img2) - mu2_sq
    sigma12 = blur(img1 * img2) - mu12
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu12 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def ssim(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean SSIM of two ``B x C x H x W`` maps in ``[0, 1]``, as BASNet's pytorch_ssim (borders included)."""
    return ssim_map(img1, img2, window_size).mean()


def ssim_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM(sigmoid(logits), target)`` with BASNet's 11 x 11 Gaussian window."""
    return 1.0 - ssim(torch.sigmoid(logits), target)


def iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BASNet's soft IoU loss: batch mean of ``1 - sum(p t) / (sum(p) + sum(t) - sum(p t))`` per image."""
    pred = torch.sigmoid(logits)
    inter = (pred * target).flatten(1).sum(1)
    union = pred.flatten(1).sum(1) + target.flatten(1).sum(1) - inter
    return (1.0 - inter / union.clamp_min(_EPS)).mean()


def hybrid_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BASNet / EDRNet hybrid loss of one map: BCE + (1 - SSIM) + IoU."""
    return bce_loss(logits, target) + ssim_loss(logits, target) + iou_loss(logits, target)


def boundary_weights(target: torch.Tensor, kernel_size: int = 31) -> torch.Tensor:
    """F3Net's pixel weights ``1 + 5 |avgpool_31(target) - target|`` (large near boundaries)."""
    local_mean = F.avg_pool2d(target, kernel_size=kernel_size, stride=1, padding=kernel_size // 2)
    return 1.0 + 5.0 * torch.abs(local_mean - target)


def weighted_bce_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-weighted BCE (per image ``sum(w bce) / sum(w)``, then batch mean); weights default to F3Net's."""
    w = boundary_weights(target) if weights is None else weights
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((w * bce).sum(dim=(2, 3)) / w.sum(dim=(2, 3))).mean()


def weighted_iou_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """F3Net's pixel-weighted IoU loss ``1 - (inter + 1) / (union - inter + 1)``, batch mean."""
    w = boundary_weights(target) if weights is None else weights
    pred = torch.sigmoid(logits)
    inter = (pred * target * w).sum(dim=(2, 3))
    union = ((pred + target) * w).sum(dim=(2, 3))
    return (1.0 - (inter + 1.0) / (union - inter + 1.0)).mean()


def structure_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """F3Net's structure loss of one map: weighted BCE + weighted IoU with the 31 x 31 boundary weights.

    F3Net's published ``structure_loss`` passes ``reduce='none'`` to ``binary_cross_entropy_with_logits``,
    which PyTorch reads as the legacy ``reduce=True`` (a plain mean), so its BCE term is in fact unweighted.
    We follow the paper (Eq. 5-6: the BCE term is weighted like the IoU term).
    """
    w = boundary_weights(target)
    return weighted_bce_loss(logits, target, w) + weighted_iou_loss(logits, target, w)


# ----------------------------------------------------------------------------------------- multi-output losses


def _as_list(outputs: Outputs) -> list[torch.Tensor]:
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


def _as_target(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if target.shape != like.shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match output shape {tuple(like.shape)}")
    return target.to(like.dtype)


class DeepSupervisionLoss:
    """Weighted sum of a per-map loss over a model's outputs ``[main, *side_outputs]``."""

    def __init__(self, per_map: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], weights: Sequence[float] | None = None):
        self.per_map = per_map
        self.weights = None if weights is None else tuple(float(w) for w in weights)

    def __call__(self, outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
        """Return ``sum_i w_i * per_map(outputs[i], target)`` (all weights 1 unless given)."""
        outs = _as_list(outputs)
        if not outs:
            raise ValueError("no outputs to compute a loss on")
        weights = self.weights if self.weights is not None else (1.0,) * len(outs)
        if len(weights) != len(outs):
            raise ValueError(f"loss has {len(weights)} output weights but the model returned {len(outs)} outputs")
        target = _as_target(target, outs[0])
        return sum(w * self.per_map(o, target) for w, o in zip(weights, outs, strict=True))


_LOSSES: dict[str, Callable[..., LossFn]] = {
    "bce": lambda weights=None: DeepSupervisionLoss(bce_loss, weights),
    "hybrid": lambda weights=None: DeepSupervisionLoss(hybrid_loss, weights),
    "structure": lambda weights=F3NET_OUTPUT_WEIGHTS: DeepSupervisionLoss(structure_loss, weights),
}


def list_losses() -> list[str]:
    """Return the names of the registered losses, sorted."""
    return sorted(_LOSSES)


def create_loss(name: str, weights: Sequence[float] | None = None) -> LossFn:
    """Build a registered loss by name; ``weights`` overrides its per-output weights (one per output)."""
    if name not in _LOSSES:
        raise DefectbenchError(f"unknown loss {name!r}; available: {', '.join(list_losses())}")
    return _LOSSES[name]() if weights is None else _LOSSES[name](weights=weights)
