"""Mask proposals of one image, their run-length encoding, and the on-disk cache that makes SAM run once.

A :class:`Proposals` record holds what SAM's automatic mask generator returns for one image: masks
(uncompressed COCO run-length encoding, column-major, first run = background, exactly as
``segment_anything.utils.amg.mask_to_rle_pytorch``), predicted IoU, stability score, XYXY boxes, the
prompt point of each mask, the crop it came from and, from our generator, the low-resolution mask logits
(float16, for soft maps).

The cache (:class:`ProposalCache`) stores one ``.npz`` file per image, written atomically, under
``<root>/<model>/<key digest>/<image sha256>.npz`` where the key digest covers the model, the checkpoint's
SHA-256, the generator and all its parameters (``key.json`` in the same folder spells them out). The root
is ``cache_dir``, else ``$DEFECTBENCH_CACHE``, else ``~/.cache/defectbench/sam``. A killed run loses at
most the image in flight; a new selection strategy or a re-run reads proposals instead of running SAM.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.atomic import atomic_write_bytes, atomic_write_json
from defectbench.paths import cache_root
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """Return ``$DEFECTBENCH_CACHE`` (its ``sam`` subfolder is not added) or ``~/.cache/defectbench/sam``."""
    return cache_root()


def masks_to_rle(masks: np.ndarray) -> list[np.ndarray]:
    """Encode ``N x H x W`` boolean masks as uncompressed column-major RLE counts (int32 arrays)."""
    masks = np.asarray(masks, dtype=bool)
    n, h, w = masks.shape
    flat = masks.transpose(0, 2, 1).reshape(n, h * w)
    rows, cols = np.nonzero(flat[:, 1:] != flat[:, :-1])
    starts = np.searchsorted(rows, np.arange(n + 1))
    out = []
    for i in range(n):
        bounds = np.concatenate(([0], cols[starts[i]:starts[i + 1]] + 1, [h * w]))
        counts = np.diff(bounds)
        if flat[i, 0]:
            counts = np.concatenate(([0], counts))
        out.append(counts.astype(np.int32))
    return out


def rle_to_mask(counts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Decode uncompressed column-major RLE counts into an ``H x W`` boolean mask."""
    h, w = size
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, np.asarray(counts, dtype=np.int64)).reshape(w, h).T


def rle_area(counts: np.ndarray) -> int:
    """Return the number of foreground pixels of an RLE mask."""
    return int(np.asarray(counts)[1::2].sum())


def image_sha256(image: np.ndarray) -> str:
    """Return the SHA-256 of an image's pixels (shape and dtype included), the cache's image key."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


@dataclass
class Proposals:
    """The automatic mask generator's output for one image (see the module docstring)."""

    size: tuple[int, int]
    rles: list[np.ndarray]
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    boxes: np.ndarray
    points: np.ndarray
    crop_boxes: np.ndarray
    lowres_logits: list[np.ndarray] | None = None
    lowres_meta: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rles)

    @classmethod
    def empty(cls, size: tuple[int, int]) -> Proposals:
        """Return a record with no proposals for an image of ``size``."""
        return cls(tuple(size), [], np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                   np.zeros((0, 2), np.float32), np.zeros((0, 4), np.int32))

    def mask(self, i: int) -> np.ndarray:
        """Return proposal ``i`` as an ``H x W`` boolean mask."""
        return rle_to_mask(self.rles[i], self.size)

    def masks(self) -> np.ndarray:
        """Return all proposals as an ``N x H x W`` boolean array."""
        if not self.rles:
            return np.zeros((0, *self.size), dtype=bool)
        return np.stack([self.mask(i) for i in range(len(self))])

    def has_logits(self) -> bool:
        """Whether low-resolution logits are stored (soft maps possible)."""
        return self.lowres_logits is not None and len(self.lowres_logits) == len(self)

    def soft_masks(self, idx: list[int] | np.ndarray | None = None) -> np.ndarray:
        """Return the sigmoid of the mask logits at image resolution (``K x H x W`` float32) for ``idx``."""
        from defectbench.methods.sam.upsample import lowres_to_image_logits

        if not self.has_logits():
            raise ValueError("these proposals hold no mask logits (made by the official generator)")
        idx = range(len(self)) if idx is None else idx
        out = [1.0 / (1.0 + np.exp(-lowres_to_image_logits(self.lowres_logits[i], self.crop_boxes[i],
                                                            self.size, self.lowres_meta)))
               for i in idx]
        return np.stack(out).astype(np.float32) if out else np.zeros((0, *self.size), np.float32)

    def to_bytes(self) -> bytes:
        """Serialise to ``.npz`` bytes (compressed)."""
        lengths = np.array([len(c) for c in self.rles], dtype=np.int64)
        arrays: dict[str, np.ndarray] = {
            "size": np.array(self.size, dtype=np.int64),
            "rle_lengths": lengths,
            "rle_counts": np.concatenate(self.rles).astype(np.int32) if self.rles else np.zeros(0, np.int32),
            "predicted_iou": np.asarray(self.predicted_iou, np.float32),
            "stability_score": np.asarray(self.stability_score, np.float32),
            "boxes": np.asarray(self.boxes, np.float32).reshape(-1, 4),
            "points": np.asarray(self.points, np.float32).reshape(-1, 2),
            "crop_boxes": np.asarray(self.crop_boxes, np.int32).reshape(-1, 4),
            "meta": np.frombuffer(json.dumps({"format": FORMAT_VERSION, "lowres_meta": self.lowres_meta,
                                              "info": self.info}).encode(), dtype=np.uint8),
        }
        if self.has_logits():
            shapes = np.array([a.shape for a in self.lowres_logits], dtype=np.int64).reshape(-1, 2)
            arrays["lowres_shapes"] = shapes
            arrays["lowres_values"] = (np.concatenate([a.astype(np.float16).ravel() for a in self.lowres_logits])
                                       if len(self) else np.zeros(0, np.float16))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Proposals:
        """Read a record written by :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"proposal file format {meta.get('format')} (expected {FORMAT_VERSION})")
            bounds = np.concatenate(([0], np.cumsum(z["rle_lengths"])))
            counts = z["rle_counts"]
            rles = [counts[bounds[i]:bounds[i + 1]].copy() for i in range(len(bounds) - 1)]
            logits = None
            if "lowres_shapes" in z:
                shapes = z["lowres_shapes"]
                vals = z["lowres_values"]
                sizes = np.concatenate(([0], np.cumsum(shapes[:, 0] * shapes[:, 1])))
                logits = [vals[sizes[i]:sizes[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]
            return cls(tuple(int(v) for v in z["size"]), rles, z["predicted_iou"], z["stability_score"], z["boxes"],
                       z["points"], z["crop_boxes"], logits, meta.get("lowres_meta", {}), meta.get("info", {}))


class ProposalCache:
    """One folder of per-image proposal files for one (model, weights, generator, parameters) key."""

    def __init__(self, key: dict[str, Any], root: str | os.PathLike | None = None) -> None:
        self.key = key
        self.root = Path(root).expanduser() if root else default_cache_dir()
        blob = json.dumps(key, sort_keys=True, default=str)
        self.digest = hashlib.sha256(blob.encode()).hexdigest()[:20]
        self.dir = self.root / str(key.get("model", "model")).replace("/", "_") / self.digest
        self._key_written = False

    def path(self, image_hash: str) -> Path:
        """Return the file of an image's proposals."""
        return self.dir / f"{image_hash}.npz"

    def has(self, image_hash: str) -> bool:
        """Whether proposals of the image are stored."""
        return self.path(image_hash).is_file()

    def get(self, image_hash: str) -> Proposals | None:
        """Return the stored proposals of an image, or None when absent or unreadable (then they are recomputed)."""
        p = self.path(image_hash)
        if not p.is_file():
            return None
        try:
            return Proposals.from_bytes(p.read_bytes())
        except (OSError, ValueError, KeyError, EOFError):
            return None
        except Exception:  # noqa: BLE001 - a damaged zip raises zipfile.BadZipFile and friends
            return None

    def put(self, image_hash: str, proposals: Proposals) -> Path:
        """Store an image's proposals atomically (and the key description once per folder)."""
        if not self._key_written:
            atomic_write_json(self.dir / "key.json", {"format": FORMAT_VERSION, **self.key})
            self._key_written = True
        path = self.path(image_hash)
        atomic_write_bytes(path, proposals.to_bytes())
        return path


def best_match_iou(reference: Proposals, other: Proposals, same_point: bool = True) -> np.ndarray:
    """For each mask of ``reference``, its best IoU with a mask of ``other`` (for comparing generators).

    With ``same_point`` the search is restricted to ``other``'s masks prompted by the same grid point
    (both generators use the same grid), which makes it cheap for thousands of masks; a mask whose point
    has no counterpart is compared with every mask of ``other``. The restricted value can only be lower
    than the unrestricted best match.
    """
    if len(reference) == 0:
        return np.zeros(0)
    if len(other) == 0:
        return np.zeros(len(reference))
    b_masks = other.masks().reshape(len(other), -1)
    b_area = b_masks.sum(1)
    groups: dict[tuple[float, float], list[int]] = {}
    for j, pt in enumerate(np.round(other.points.astype(np.float64), 3)):
        groups.setdefault((float(pt[0]), float(pt[1])), []).append(j)
    out = np.zeros(len(reference))
    for i in range(len(reference)):
        a = reference.mask(i).reshape(-1)
        pt = np.round(reference.points[i].astype(np.float64), 3)
        idx = groups.get((float(pt[0]), float(pt[1]))) if same_point else None
        idx = np.arange(len(other)) if not idx else np.array(idx)
        inter = b_masks[idx][:, a].sum(1)
        union = a.sum() + b_area[idx] - inter
        out[i] = float(np.max(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))
    return out
