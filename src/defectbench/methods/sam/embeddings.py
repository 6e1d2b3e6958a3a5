"""SAM image embeddings computed once per image and kept on disk, so that every prompt protocol reuses them.

One ``.npz`` file per image (uncompressed float32, exactly what the encoder returned, so decoding from the cache
gives the same masks and scores as decoding right after the encoder), written atomically under
``<root>/<model>/embed-<key digest>/<image sha256>.npz``; ``key.json`` beside them spells out the key (model,
checkpoint SHA-256, format). The root is the proposal cache's (``cache_dir``, else ``$DEFECTBENCH_CACHE``, else
``~/.cache/defectbench/sam``). SAM / MobileSAM store ``features`` (``1 x 256 x 64 x 64``) with the original and
resized input sizes; SAM 2.1 stores ``image_embed`` and its two high-resolution feature levels.
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
