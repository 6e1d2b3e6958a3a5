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
* ``"bce_dice"`` -- EDN (Wu et al., TIP 2022): BCE + (1 - Dice) on each of its five outputs, summed; the Dice
  term sums over the whole batch as in EDN's ``BCEDiceLoss``.
* ``"bce_iou"`` -- CorrNet (Li et al., TGRS 2022): BCE + IoU on each of its four outputs, summed.
* ``"cel_hybrid"`` -- CSEPNet (Ding et al., Measurement 2022): CEL + BCE + IoU + (1 - SSIM) on each of its five
  outputs, summed (CEL, MINet's consistency-enhanced loss, sums over the whole batch). DACNet uses ``"hybrid"``.
* ``"bce_edge"`` -- SCRN (Wu et al., ICCV 2019): BCE of the saliency map against the mask plus BCE of the edge
  map against the mask's edges (Sobel gradient magnitude of the binarised mask > 1.5, :func:`mask_edges`).
* ``"bce_cel"`` -- MINet (Pang et al., CVPR 2020): BCE + CEL on its single output.
* ``"multilevel_bce"`` -- GCPANet (Chen et al., AAAI 2020): BCE on its four outputs ``[out2, out3, out4, out5]``
  weighted ``(1, 0.8, 0.6, 0.4)`` as in its ``train.py``.
* ``"structure_sum"`` -- C2FNet (Sun et al., IJCAI 2021): F3Net's structure loss with equal output weights
  (C2FNet has one output).
* ``"bce_iou_smooth"`` -- ICON (Zhuge et al., TPAMI 2023), its ``CPR`` loss: BCE + IoU with ICON's +1 smoothing
  ``1 - (inter + 1) / (union - inter + 1)`` per image, on each of its five outputs, summed.
* ``"vst"`` -- VST (Liu et al., ICCV 2021): BCE of the saliency maps ``[1/1, 1/4, 1/8, 1/16]`` against the mask
  and of the contour maps at the same scales against the mask's edges (:func:`mask_edges`), both weighted
  ``(1, 0.8, 0.5, 0.5)`` as in VST's ``Training.py`` (which resizes the labels to each map's scale instead).

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
#: GCPANet's weights for ``[out2 (main), out3, out4, out5]`` (its ``train.py``).
GCPANET_OUTPUT_WEIGHTS = (1.0, 0.8, 0.6, 0.4)
#: VST's weights for its saliency (and, again, its contour) maps at 1/1, 1/4, 1/8 and 1/16 (its ``Training.py``).
VST_SCALE_WEIGHTS = (1.0, 0.8, 0.5, 0.5)

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


def gaussian_blur_matrix(n: int, window_size: int = 11, sigma: float = 1.5, like: torch.Tensor | None = None) -> torch.Tensor:
    """Return the ``n x n`` banded matrix ``A`` with ``A @ x`` = 1-D Gaussian blur along ``x``'s rows (zero padding).

    ``A @ X @ A.T`` equals the 2-D convolution with :func:`gaussian_window` (separable), about 30x faster to
    back-propagate than the 11 x 11 convolution on a CPU.
    """
    g = torch.tensor([math.exp(-((x - window_size // 2) ** 2) / (2 * sigma**2)) for x in range(window_size)], dtype=torch.float64)
    g = g / g.sum()
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None] + window_size // 2
    inside = (offset >= 0) & (offset < window_size)
    a = torch.where(inside, g[offset.clamp(0, window_size - 1)], torch.zeros((), dtype=torch.float64))
    return a.to(like) if like is not None else a.float()


def ssim_map(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-pixel SSIM of two ``B x C x H x W`` maps in ``[0, 1]`` (Gaussian window, sigma 1.5, zero padding)."""
    a_h = gaussian_blur_matrix(img1.shape[-2], window_size, like=img1)
    a_w = gaussian_blur_matrix(img1.shape[-1], window_size, like=img1).T
    stacked = torch.stack([img1, img2, img1 * img1, img2 * img2, img1 * img2])
    mu1, mu2, e11, e22, e12 = (a_h @ stacked @ a_w).unbind(0)  # the separable 2-D Gaussian as two matrix products
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq, sigma2_sq, sigma12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
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


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """EDN's Dice loss ``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)``, sums over the whole batch."""
    pred = torch.sigmoid(logits)
    return 1.0 - (2.0 * (pred * target).sum() + eps) / (pred.sum() + target.sum() + eps)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """EDN's loss of one map: BCE + (1 - Dice)."""
    return bce_loss(logits, target) + dice_loss(logits, target)


def bce_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CorrNet's loss of one map: BCE + BASNet's IoU loss."""
    return bce_loss(logits, target) + iou_loss(logits, target)


def bce_smooth_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ICON's loss of one map: BCE + IoU smoothed by +1 (F3Net's weighted IoU with all weights 1)."""
    return bce_loss(logits, target) + weighted_iou_loss(logits, target, torch.ones_like(target))


def cel_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Consistency-enhanced loss (MINet's CEL) ``(sum(p - p t) + sum(t - p t)) / (sum(p) + sum(t) + eps)`` over the batch."""
    pred = torch.sigmoid(logits)
    inter = pred * target
    return ((pred - inter).sum() + (target - inter).sum()) / (pred.sum() + target.sum() + eps)


def cel_hybrid_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CSEPNet's loss of one map: CEL + BCE + IoU + (1 - SSIM)."""
    return cel_loss(logits, target) + bce_loss(logits, target) + iou_loss(logits, target) + ssim_loss(logits, target)



def bce_cel_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MINet's loss of one map: BCE + CEL."""
    return bce_loss(logits, target) + cel_loss(logits, target)


_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def mask_edges(target: torch.Tensor, threshold: float = 1.5) -> torch.Tensor:
    """SCRN's edge label: Sobel gradient magnitude of ``target > 0.5`` (replicate padding) above ``threshold``, as 0/1."""
    fx = torch.tensor(_SOBEL_X, dtype=target.dtype, device=target.device)[None, None]
    kernel = torch.cat([fx, fx.transpose(2, 3)], dim=0)  # x and y derivatives
    binary = F.pad((target > 0.5).to(target.dtype), (1, 1, 1, 1), mode="replicate")
    grad = F.conv2d(binary.flatten(0, 1)[:, None], kernel)
    magnitude = grad.square().sum(dim=1, keepdim=True).sqrt().view_as(target)
    return (magnitude > threshold).to(target.dtype)

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



class EdgeSupervisionLoss:
    """SCRN's loss: BCE of ``outputs[0]`` (saliency) against the mask + BCE of ``outputs[1]`` (edges) against its edges."""

    def __init__(self, weights: Sequence[float] | None = None):
        self.weights = (1.0, 1.0) if weights is None else tuple(float(w) for w in weights)
        if len(self.weights) != 2:
            raise ValueError(f"the edge-supervised loss takes 2 output weights (saliency, edge), not {len(self.weights)}")

    def __call__(self, outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
        """Return ``w0 * bce(saliency, mask) + w1 * bce(edge, mask_edges(mask))``."""
        outs = _as_list(outputs)
        if len(outs) != 2:
            raise ValueError(f"the edge-supervised loss needs [saliency, edge] outputs, the model returned {len(outs)}")
        target = _as_target(target, outs[0])
        return self.weights[0] * bce_loss(outs[0], target) + self.weights[1] * bce_loss(outs[1], mask_edges(target))

class SaliencyContourLoss:
    """VST's loss: weighted BCE of saliency maps against the mask plus weighted BCE of contour maps against its edges.

    ``outputs`` holds the saliency maps first, then as many contour maps (``[s_1, ..., s_n, c_1, ..., c_n]``);
    ``weights`` has one weight per map of the whole list (default :data:`VST_SCALE_WEIGHTS` for both halves).
    """

    def __init__(self, weights: Sequence[float] | None = None):
        self.weights = VST_SCALE_WEIGHTS * 2 if weights is None else tuple(float(w) for w in weights)

    def __call__(self, outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
        """Return ``sum_i w_i bce(s_i, mask) + sum_i w_(n+i) bce(c_i, mask_edges(mask))``."""
        outs = _as_list(outputs)
        if len(outs) != len(self.weights) or len(outs) % 2:
            raise ValueError(f"the saliency+contour loss has {len(self.weights)} output weights but the model returned {len(outs)} outputs")
        target = _as_target(target, outs[0])
        edges = mask_edges(target)
        half = len(outs) // 2
        labels = [target] * half + [edges] * half
        return sum(w * bce_loss(o, t) for w, o, t in zip(self.weights, outs, labels, strict=True))


_LOSSES: dict[str, Callable[..., LossFn]] = {
    "bce": lambda weights=None: DeepSupervisionLoss(bce_loss, weights),
    "hybrid": lambda weights=None: DeepSupervisionLoss(hybrid_loss, weights),
    "structure": lambda weights=F3NET_OUTPUT_WEIGHTS: DeepSupervisionLoss(structure_loss, weights),
    "bce_dice": lambda weights=None: DeepSupervisionLoss(bce_dice_loss, weights),
    "bce_iou": lambda weights=None: DeepSupervisionLoss(bce_iou_loss, weights),
    "cel_hybrid": lambda weights=None: DeepSupervisionLoss(cel_hybrid_loss, weights),
    "bce_edge": lambda weights=None: EdgeSupervisionLoss(weights),
    "bce_cel": lambda weights=None: DeepSupervisionLoss(bce_cel_loss, weights),
    "multilevel_bce": lambda weights=GCPANET_OUTPUT_WEIGHTS: DeepSupervisionLoss(bce_loss, weights),
    "structure_sum": lambda weights=None: DeepSupervisionLoss(structure_loss, weights),
    "bce_iou_smooth": lambda weights=None: DeepSupervisionLoss(bce_smooth_iou_loss, weights),
    "vst": lambda weights=None: SaliencyContourLoss(weights),
}


def list_losses() -> list[str]:
    """Return the names of the registered losses, sorted."""
    return sorted(_LOSSES)


def create_loss(name: str, weights: Sequence[float] | None = None) -> LossFn:
    """Build a registered loss by name; ``weights`` overrides its per-output weights (one per output)."""
    if name not in _LOSSES:
        raise DefectbenchError(f"unknown loss {name!r}; available: {', '.join(list_losses())}")
    return _LOSSES[name]() if weights is None else _LOSSES[name](weights=weights)
