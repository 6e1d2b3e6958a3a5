"""The unit of every dataset: one image, its mask and its defect class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectbench.data.imageio import read_image, read_mask


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    ``id`` is the file stem, unique within a dataset. ``mask_path`` is None for a defect-free image
    that ships without a mask (its mask is all background). ``defect_class`` is None when the
    dataset knows no classes; defect-free images have class ``"Free"``.
    """

    id: str
    image_path: Path
    mask_path: Path | None
    defect_class: str | None = None

    def image(self) -> np.ndarray:
        """Read the image as the dataset stores it (see :func:`defectbench.data.imageio.read_image`)."""
        return read_image(self.image_path)

    def mask(self) -> np.ndarray:
        """Read the ground truth as a boolean array (binarised at > 128); all False without a mask file."""
        if self.mask_path is None:
            h, w = self.image().shape[:2]
            return np.zeros((h, w), dtype=bool)
        return read_mask(self.mask_path)
