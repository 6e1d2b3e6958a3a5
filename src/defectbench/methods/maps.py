"""Maps made elsewhere as a method: the map of an image is read from a folder by the image's id (file stem).

This lets saliency maps produced by anyone's code (the SOD field's interchange format) go through the same loop,
scoring and report as defectbench's own methods. A map whose size differs from its image's is an error unless
``resize`` is set (then it is resized bilinearly, as the SOD evaluation toolkits do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from defectbench.data.imageio import images_by_stem, read_map_for_mask
from defectbench.data.sample import Sample
from defectbench.errors import DataError


class FolderMaps:
    """A :class:`~defectbench.methods.base.Method` whose maps are files in ``folder`` named by image id."""

    oracle = False

    def __init__(self, folder: str | Path, name: str = "maps", resize: bool = False) -> None:
        self.folder = Path(folder).expanduser()
        self.name, self.resize = name, bool(resize)
        self.files = images_by_stem(self.folder, f"maps folder of method {name}")

    def has(self, sample_id: str) -> bool:
        """Whether the folder holds a map for ``sample_id``."""
        return sample_id in self.files

    def predict_sample(self, sample: Sample) -> np.ndarray:
        """Read the sample's map at its image's size: float32 in [0, 1]."""
        if sample.id not in self.files:
            raise DataError(f"{self.folder}: no map for image {sample.id!r} (maps are matched to images by file stem)")
        h, w = sample.image().shape[:2]
        pred, _ = read_map_for_mask(self.files[sample.id], (h, w), self.resize)
        return pred.astype(np.float32) / 255.0

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """Maps are looked up by image id, not computed: use :meth:`predict_sample`."""
        raise TypeError("FolderMaps reads maps by image id: call predict_sample(sample)")

    def record(self) -> dict[str, Any]:
        """Where the maps came from."""
        return {"type": "maps", "source": str(self.folder.resolve()), "resize": self.resize, "n_maps": len(self.files)}
