"""The one interface every method offers: image in, saliency map out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Method(Protocol):
    """A method maps an image (as read by :func:`defectbench.data.read_image`) to a float map in [0, 1] of the image's size."""

    name: str

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Return the saliency map of ``image``: float32, ``HxW``, values in [0, 1]."""
        ...
