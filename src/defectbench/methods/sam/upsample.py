"""Low-resolution mask logits to image resolution, as one small matrix product per axis.

SAM upsamples every ``256 x 256`` low-resolution logit map bilinearly to the ``1024 x 1024`` model input,
crops the padding, and resizes bilinearly again to the image size (``Sam.postprocess_masks``); SAM 2
resizes once to the image size. Both are linear and separable, so the whole chain along one axis is a
fixed ``out_len x low_len`` matrix. We obtain it by pushing the identity through the very same
``torch.nn.functional.interpolate`` calls, so it reproduces the official arithmetic (up to float rounding)
while never materialising a 1024 x 1024 map per mask.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """Return SAM's resized input size: the longer side scaled to ``long_side`` (``ResizeLongestSide``)."""
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def _interp_axis(x: torch.Tensor, length: int) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of dim 2 of an ``N x 1 x L x 1`` tensor."""
    return F.interpolate(x, (length, 1), mode="bilinear", align_corners=False)


@lru_cache(maxsize=64)
def sam1_axis_matrix(low_len: int, img_size: int, input_len: int, orig_len: int) -> torch.Tensor:
    """``orig_len x low_len`` matrix of SAM's upsample -> crop -> resize chain along one axis."""
    eye = torch.eye(low_len, dtype=torch.float32).reshape(low_len, 1, low_len, 1)
    up = _interp_axis(eye, img_size)[:, :, :input_len]
    return _interp_axis(up, orig_len)[:, 0, :, 0].T.contiguous()


@lru_cache(maxsize=64)
def sam2_axis_matrix(low_len: int, orig_len: int) -> torch.Tensor:
    """``orig_len x low_len`` matrix of SAM 2's single bilinear resize along one axis."""
    eye = torch.eye(low_len, dtype=torch.float32).reshape(low_len, 1, low_len, 1)
    return _interp_axis(eye, orig_len)[:, 0, :, 0].T.contiguous()


def axis_matrices(meta: dict[str, Any], crop_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the row and column operators (``H x L``, ``W x L``) for a crop of size ``crop_hw``."""
    low = int(meta["low_size"])
    h, w = crop_hw
    if meta["family"] == "sam2":
        return sam2_axis_matrix(low, h), sam2_axis_matrix(low, w)
    img = int(meta["img_size"])
    ih, iw = preprocess_shape(h, w, img)
    return sam1_axis_matrix(low, img, ih, h), sam1_axis_matrix(low, img, iw, w)


def used_extent(op: torch.Tensor) -> int:
    """Return how many leading low-resolution rows an operator reads (the rest have zero weight)."""
    nz = torch.nonzero(op.abs().sum(0) > 0)
    return int(nz.max()) + 1 if len(nz) else 0


def upsample_logits(low: torch.Tensor, ay: torch.Tensor, ax: torch.Tensor) -> torch.Tensor:
    """Apply the axis operators to ``M x h x w`` low-resolution logits (only the first h rows / w columns used).

    The operators are used on ``low``'s device (moved there unless they are already: callers that upscale many
    batches move them once).
    """
    ay, ax = ay.to(low.device), ax.to(low.device)
    return ay[:, : low.shape[-2]] @ low @ ax[:, : low.shape[-1]].T


def lowres_to_image_logits(lowres: np.ndarray, crop_box: np.ndarray, image_hw: tuple[int, int],
                           meta: dict[str, Any], outside: float = -20.0) -> np.ndarray:
    """Return one proposal's logits at image resolution (``outside`` beyond its crop) from stored low-res logits."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    ay, ax = axis_matrices(meta, (y1 - y0, x1 - x0))
    low = torch.from_numpy(np.asarray(lowres, dtype=np.float32))[None]
    crop = upsample_logits(low, ay, ax)[0].numpy()
    out = np.full(image_hw, outside, dtype=np.float32)
    out[y0:y1, x0:x1] = crop
    return out
