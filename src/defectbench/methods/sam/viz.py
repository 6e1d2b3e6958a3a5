"""Pictures of an image's SAM proposals and of the masks a strategy selected."""

from __future__ import annotations

import os

import cv2
import numpy as np

from defectbench.methods.sam.proposals import Proposals
from defectbench.methods.sam.selection import Selection


def _palette(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct bright RGB colours (fixed for a given seed)."""
    rng = np.random.default_rng(seed)
    hsv = np.stack([rng.permutation(np.linspace(0, 179, max(n, 1), endpoint=False)).astype(np.uint8),
                    np.full(max(n, 1), 200, np.uint8), np.full(max(n, 1), 255, np.uint8)], axis=1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def _outline(canvas: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], thickness: int = 1) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in color), thickness)


def draw(image: np.ndarray, proposals: Proposals, selection: Selection | None = None,
         gt: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """Return an RGB picture: left, every proposal in its own colour (largest first) with its prompt point;
    right, the selected union in red (negated candidates hatched) and the ground truth outlined in green."""
    from defectbench.data import to_rgb

    base = to_rgb(image).astype(np.float32)
    left = base.copy()
    masks = proposals.masks()
    order = np.argsort([-m.sum() for m in masks]) if len(masks) else []
    colors = _palette(len(masks))
    for i in order:
        left[masks[i]] = (1 - alpha) * left[masks[i]] + alpha * colors[i]
    left = left.astype(np.uint8)
    for i in order:
        _outline(left, masks[i], colors[i])
    for x, y in proposals.points:
        cv2.circle(left, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
    right = base.copy()
    if selection is not None:
        u = selection.union
        right[u] = (1 - alpha) * right[u] + alpha * np.array([255, 40, 40], np.float32)
    right = right.astype(np.uint8)
    if selection is not None:
        _outline(right, selection.union, (255, 40, 40))
        for i, neg in selection.chosen:
            if neg:
                hatch = np.zeros(masks.shape[1:], bool)
                hatch[::6, :] = True
                right[(~masks[i]) & hatch] = (255, 255, 0)
    if gt is not None:
        _outline(right, gt, (40, 255, 40))
    gap = np.full((base.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB picture as PNG, atomically."""
    from defectbench.atomic import atomic_write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def draw_prompts(image: np.ndarray, prompts: list, result: np.ndarray, gt: np.ndarray | None = None,
                 light: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """Return an RGB picture: left, the image with the prompts (boxes yellow, positive points green, negative
    points red; the light model's map as a blue tint when it gave the prompts); right, SAM's map in red with the
    ground truth outlined in green."""
    from defectbench.data import to_rgb

    base = to_rgb(image).astype(np.float32)
    left = base.copy()
    if light is not None:
        left = (1 - alpha * light[..., None]) * left + alpha * light[..., None] * np.array([60, 120, 255], np.float32)
    left = left.astype(np.uint8)
    r = max(2, round(min(image.shape[:2]) / 60))
    for p in prompts:
        if p.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in p.box)
            cv2.rectangle(left, (x0, y0), (x1, y1), (255, 220, 0), 1)
        for (x, y), lab in zip(np.asarray(p.points), np.asarray(p.labels)):
            color = (40, 255, 40) if lab == 1 else (255, 40, 40)
            cv2.circle(left, (int(round(x)), int(round(y))), r, color, -1)
            cv2.circle(left, (int(round(x)), int(round(y))), r, (0, 0, 0), 1)
    right = base.copy()
    m = np.asarray(result, np.float32)[..., None]
    right = ((1 - alpha * m) * right + alpha * m * np.array([255, 40, 40], np.float32)).astype(np.uint8)
    if gt is not None:
        _outline(right, gt, (40, 255, 40))
    gap = np.full((base.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)
