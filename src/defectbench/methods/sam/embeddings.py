"""SAM image embeddings computed once per image and kept on disk, so that every prompt protocol reuses them.

One ``.npz`` file per image (uncompressed float32, exactly what the encoder returned, so decoding from the cache
gives the same masks and scores as decoding right after the encoder), written atomically under
``<root>/<model>/embed-<key digest>/<image sha256>.npz``; ``key.json`` beside them spells out the key (model,
checkpoint SHA-256, format). The root is the proposal cache's (``cache_dir``, else ``$DEFECTBENCH_CACHE``, else
``~/.cache/defectbench/sam``). SAM / MobileSAM store ``features`` (``1 x 256 x 64 x 64``) with the original and
resized input sizes; SAM 2.1 stores ``image_embed`` and its two high-resolution feature levels.

Both users of SAM's encoder share the cache: the prompt protocols (:class:`~defectbench.methods.sam.prompted.
PromptedSam`) and the automatic mask generator for its uncropped layer (crop 0, the whole image), so one encoder
pass per image serves the automatic rows and every prompt row of a (model, weights). :func:`predictor_arrays` and
:func:`restore_predictor` move an official predictor's image state to and from the stored arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.atomic import atomic_write_bytes, atomic_write_json
from defectbench.methods.sam.proposals import default_cache_dir

FORMAT_VERSION = 1


class EmbeddingCache:
    """One folder of per-image embedding files for one (model, weights) key."""

    def __init__(self, key: dict[str, Any], root: str | os.PathLike | None = None) -> None:
        self.key = {"kind": "image_embedding", "format": FORMAT_VERSION, **key}
        self.root = Path(root).expanduser() if root else default_cache_dir()
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        self.digest = digest
        self.dir = self.root / str(key.get("model", "model")).replace("/", "_") / f"embed-{digest}"
        self._key_written = False

    def path(self, image_hash: str) -> Path:
        """Return the file of an image's embedding."""
        return self.dir / f"{image_hash}.npz"

    def get(self, image_hash: str) -> dict[str, np.ndarray] | None:
        """Return the stored arrays of an image, or None when absent or unreadable (then they are recomputed)."""
        p = self.path(image_hash)
        if not p.is_file():
            return None
        try:
            with np.load(io.BytesIO(p.read_bytes()), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - a damaged file is recomputed
            return None

    def get_for(self, image_hash: str, hw: tuple[int, int]) -> dict[str, np.ndarray] | None:
        """Return the stored arrays of an image of size ``hw`` (None when absent, unreadable or of another size)."""
        arrays = self.get(image_hash)
        if arrays is None or "orig_hw" not in arrays or tuple(int(v) for v in arrays["orig_hw"]) != tuple(hw):
            return None
        return arrays

    def put(self, image_hash: str, arrays: dict[str, np.ndarray]) -> Path:
        """Store an image's arrays atomically (and the key description once per folder)."""
        if not self._key_written:
            atomic_write_json(self.dir / "key.json", self.key)
            self._key_written = True
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path = self.path(image_hash)
        atomic_write_bytes(path, buf.getvalue())
        return path


def embedding_key(model: str, weights_sha256: str) -> dict[str, Any]:
    """The cache key of a model's embeddings: the registered model name and the weights' SHA-256 (or seed tag)."""
    return {"model": model, "weights_sha256": weights_sha256}


def predictor_arrays(pred: Any, family: str, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """The image state of an official predictor after ``set_image`` (an ``hw`` image), as float32 arrays."""
    hw_arr = np.array(hw, np.int64)
    if family == "sam2":
        f = pred._features
        return {"orig_hw": hw_arr, "image_embed": f["image_embed"].float().cpu().numpy(),
                **{f"high_res_{i}": t.float().cpu().numpy() for i, t in enumerate(f["high_res_feats"])}}
    return {"orig_hw": hw_arr, "input_hw": np.array(pred.input_size, np.int64),
            "features": pred.features.float().cpu().numpy()}


def restore_predictor(pred: Any, family: str, arrays: dict[str, np.ndarray], device: Any) -> None:
    """Set an official predictor's image state from stored arrays, as if ``set_image`` had just run."""
    import torch

    hw = tuple(int(v) for v in arrays["orig_hw"])
    if family == "sam2":
        pred.reset_predictor()
        pred._orig_hw = [hw]
        pred._features = {"image_embed": torch.from_numpy(arrays["image_embed"]).to(device),
                          "high_res_feats": [torch.from_numpy(arrays[f"high_res_{i}"]).to(device) for i in (0, 1)]}
        pred._is_image_set = True
    else:
        pred.reset_image()
        pred.original_size = hw
        pred.input_size = tuple(int(v) for v in arrays["input_hw"])
        pred.features = torch.from_numpy(arrays["features"]).to(device)
        pred.is_image_set = True
