"""Prompts for SAM placed from a mask: the protocols SAM's paper and the medical-image studies report.

A *region source* is a boolean mask whose connected components (8-connected) are the regions to prompt: the
ground truth (oracle protocols) or a light model's thresholded map (:func:`map_regions`, the deployable hybrid).

Placement rules (every function here is NumPy / OpenCV only, deterministic):

* a **point** is the interior pixel farthest from the region's border: the maximum of
  ``cv2.distanceTransform`` (L2, exact mask) of the region padded by one background pixel (so the image edge
  counts as border); ties go to the first pixel in raster order;
* a **box** is tight around a component, XYXY with inclusive pixel indices ``(x_min, y_min, x_max, y_max)``
  (the convention of ``segment_anything.utils.amg.batched_mask_to_box``);
* modes (:data:`MODES`): ``point-largest`` / ``box-largest`` (one prompt, the largest component),
  ``point-per-region`` / ``box-per-region`` (one prompt per component), ``box-all`` (one box around every
  component), ``interactive`` (points added one by one where the error is largest, see :func:`next_click`);
* **jitter** ``f`` in [0, 1): each box edge moves by ``U(-f, f)`` times the box's width (x edges) or height
  (y edges); a point moves by ``U(-f, f)`` times the region's box width / height in pixels (rounded); results
  are clipped to the image; the generator is seeded per image (:func:`image_rng`), so a protocol's jitter does
  not depend on the order images are processed in;
* **interactive** (SAM paper, section 7.1): the first point is ``point-largest``'s; each next point lies at
  the centre (farthest-interior pixel) of the largest connected error region of the previous prediction,
  positive when that region is missed ground truth, negative when it is a false detection.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from defectbench.errors import ConfigError

REGION_MODES = ("point-largest", "point-per-region", "box-largest", "box-per-region", "box-all")
MODES = (*REGION_MODES, "interactive")
THRESHOLD_RULES = ("otsu", "adaptive")


@dataclass
class Prompt:
    """One call of SAM's decoder: points ``N x 2`` (x, y) with labels (1 positive, 0 negative) and/or a box.

    ``region`` is the component the prompt was placed on (``None`` for ``box-all``, whose target is the whole
    source mask); the oracle mask choice compares SAM's three masks with it.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    box: np.ndarray | None = None
    region: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (points, labels, box)."""
        return {"points": np.asarray(self.points).round(2).tolist(), "labels": np.asarray(self.labels).tolist(),
                "box": None if self.box is None else np.asarray(self.box).round(2).tolist()}


def check_mode(mode: str) -> str:
    """Return ``mode`` when it is a known prompt mode, else raise a one-line ConfigError listing them."""
    if mode not in MODES:
        raise ConfigError(f"unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def check_jitter(jitter: Any) -> float:
    """Return ``jitter`` as a float in [0, 1), else raise a one-line ConfigError."""
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0.0 <= float(jitter) < 1.0:
        raise ConfigError(f"jitter must be a fraction in [0, 1), got {jitter!r}")
    return float(jitter)


def check_k(k: Any) -> int:
    """Return ``k`` (interactive points) as an int >= 1, else raise a one-line ConfigError."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k (interactive points) must be a whole number >= 1, got {k!r}")
    return k


def image_rng(seed: int, image_key: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the image (its id or hash): the same jitter in any processing order."""
    return np.random.default_rng([int(seed), zlib.crc32(image_key.encode())])


def components(mask: np.ndarray, min_area: int = 1) -> list[np.ndarray]:
    """The 8-connected components of ``mask`` with at least ``min_area`` pixels, largest first (ties: raster order)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    keep.sort(key=lambda i: -int(stats[i, cv2.CC_STAT_AREA]))  # stable: equal areas stay in label (raster) order
    return [labels == i for i in keep]


def border_distance(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of each region pixel to the nearest pixel outside it (the image edge counts as outside)."""
    padded = np.pad(np.asarray(region, np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def interior_point(region: np.ndarray) -> np.ndarray:
    """The region pixel farthest from its border, as ``(x, y)`` float32 (first in raster order on ties)."""
    dist = border_distance(region)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return np.array([x, y], np.float32)


def tight_box(region: np.ndarray) -> np.ndarray:
    """The tight XYXY box of a non-empty mask, inclusive pixel indices, float32."""
    rows, cols = np.flatnonzero(np.asarray(region).any(1)), np.flatnonzero(np.asarray(region).any(0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.float32)


def jitter_box(box: np.ndarray, frac: float, rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """Move each edge by ``U(-frac, frac)`` times the box side it belongs to; clip to the image, keep it ordered."""
    if frac <= 0:
        return np.asarray(box, np.float32)
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    d = rng.uniform(-frac, frac, 4) * np.array([w, h, w, h])
    out = np.array([x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]])
    out[[0, 2]] = np.clip(out[[0, 2]], 0, hw[1] - 1)
    out[[1, 3]] = np.clip(out[[1, 3]], 0, hw[0] - 1)
    out[[0, 2]] = np.sort(out[[0, 2]])
    out[[1, 3]] = np.sort(out[[1, 3]])
    return out.astype(np.float32)


def jitter_point(point: np.ndarray, frac: float, region_box: np.ndarray, rng: np.random.Generator,
                 hw: tuple[int, int]) -> np.ndarray:
    """Move a point by ``U(-frac, frac)`` times its region's box width / height (whole pixels), clipped to the image."""
    if frac <= 0:
        return np.asarray(point, np.float32)
    w, h = region_box[2] - region_box[0] + 1, region_box[3] - region_box[1] + 1
    d = np.rint(rng.uniform(-frac, frac, 2) * np.array([w, h]))
    return np.array([np.clip(point[0] + d[0], 0, hw[1] - 1), np.clip(point[1] + d[1], 0, hw[0] - 1)], np.float32)


def region_prompts(source: np.ndarray, mode: str, jitter: float = 0.0, rng: np.random.Generator | None = None,
                   min_area: int = 1) -> list[Prompt]:
    """The prompts of a region mode (:data:`REGION_MODES`) placed on ``source``'s components; none when it is empty."""
    if mode not in REGION_MODES:
        raise ConfigError(f"prompt mode {mode!r} is not placed from regions; use one of {', '.join(REGION_MODES)}")
    source = np.asarray(source, bool)
    hw = source.shape
    comps = components(source, min_area)
    if not comps:
        return []
    rng = rng if rng is not None else np.random.default_rng(0)
    if mode == "box-all":
        union = np.any(np.stack(comps), axis=0)
        return [Prompt(box=jitter_box(tight_box(union), jitter, rng, hw), region=None)]
    chosen = comps[:1] if mode.endswith("-largest") else comps
    out = []
    for region in chosen:
        box = tight_box(region)
        if mode.startswith("point"):
            pt = jitter_point(interior_point(region), jitter, box, rng, hw)
            out.append(Prompt(pt[None], np.ones(1, np.int32), None, region))
        else:
            out.append(Prompt(box=jitter_box(box, jitter, rng, hw), region=region))
    return out


def next_click(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The next interactive point: centre of the largest error region, label 1 (missed) or 0 (false); None if perfect."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    best: tuple[int, np.ndarray, int] | None = None
    for err, label in ((gt & ~pred, 1), (pred & ~gt, 0)):
        comps = components(err)
        if comps:
            area = int(comps[0].sum())
            if best is None or area > best[0]:
                best = (area, comps[0], label)
    if best is None:
        return None
    return interior_point(best[1]), best[2]


def threshold_map(saliency: np.ndarray, rule: float | str = 0.5) -> np.ndarray:
    """Binarise a [0, 1] map: a fixed threshold (``map >= t``), ``otsu`` (Otsu on the 8-bit map) or ``adaptive``
    (twice the map's mean, at most 1: the adaptive threshold of the F-measure literature)."""
    m = np.asarray(saliency, np.float32)
    if isinstance(rule, str):
        if rule == "otsu":
            u8 = np.clip(np.rint(m * 255), 0, 255).astype(np.uint8)
            if u8.min() == u8.max():
                return np.zeros(m.shape, bool) if u8.max() < 128 else np.ones(m.shape, bool)
            t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            return u8 > t
        if rule == "adaptive":
            return m >= min(2.0 * float(m.mean()), 1.0)
        raise ConfigError(f"unknown threshold rule {rule!r}; use a number in (0, 1), otsu or adaptive")
    return m >= float(rule)


def check_threshold(rule: Any) -> float | str:
    """Validate a threshold rule: a number in (0, 1) or one of :data:`THRESHOLD_RULES`."""
    if isinstance(rule, str) and rule in THRESHOLD_RULES:
        return rule
    if isinstance(rule, (int, float)) and not isinstance(rule, bool) and 0.0 < float(rule) < 1.0:
        return float(rule)
    raise ConfigError(f"threshold must be a number in (0, 1), otsu or adaptive, got {rule!r}")


def min_area_pixels(min_area: float, hw: tuple[int, int]) -> int:
    """The area rule in pixels: ``min_area`` is a fraction of the image area (at least one pixel)."""
    return max(1, int(np.ceil(float(min_area) * hw[0] * hw[1])))


def map_regions(saliency: np.ndarray, threshold: float | str = 0.5, min_area: float = 0.0005) -> np.ndarray:
    """The region source from a model's map: thresholded, components below ``min_area`` x image area dropped."""
    binary = threshold_map(saliency, threshold)
    comps = components(binary, min_area_pixels(min_area, binary.shape))
    return np.any(np.stack(comps), axis=0) if comps else np.zeros(binary.shape, bool)
