"""The one interface every method family offers, and the one loop that turns a dataset's images into maps.

A method is built from its options by its family (:mod:`defectbench.bench.families`), may be ``fit`` on a
training split, and then maps an image (as read by :func:`defectbench.data.read_image`) to a float map in
[0, 1] of the image's size. Methods that declare themselves ``oracle`` also receive the image's ground truth:
their maps are never a deployable number. ``record()`` says what the method is and where its weights came from.

:func:`write_maps` is the only place where maps are made from samples: the experiment runner, ``defectbench
predict`` and ``defectbench sam predict`` all call it. Maps are written atomically, one 8-bit PNG per image
named by the sample id; maps already present are kept, so an interrupted loop resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from defectbench.data.sample import Sample


@runtime_checkable
class Method(Protocol):
    """Image in, saliency map out (``oracle`` methods read the ground truth too)."""

    name: str
    oracle: bool

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """Return the saliency map of ``image``: float32, ``HxW``, values in [0, 1]."""
        ...

    def record(self) -> dict[str, Any]:
        """Return what the method is and where its weights came from (JSON-able)."""
        ...


def write_maps(method: Method, samples: Sequence[Sample], maps_dir: str | Path, batch: int = 1,
               advance: Callable[[int], None] | None = None, resume: bool = True) -> dict[str, int]:
    """Write ``method``'s map of every sample into ``maps_dir`` (``<id>.png``); return ``{"written", "kept"}``.

    With ``resume`` a map already present is kept (it was written atomically by an earlier attempt). Methods
    with a ``predict_batch(images)`` run ``batch`` images at a time; oracles get each image's ground truth;
    methods that look maps up by image id (``predict_sample(sample)``, e.g. maps made elsewhere) get the sample.
    """
    from defectbench.data.imageio import write_saliency_map

    maps_dir = Path(maps_dir)
    maps_dir.mkdir(parents=True, exist_ok=True)
    advance = advance or (lambda n: None)
    todo = [s for s in samples if not (resume and (maps_dir / f"{s.id}.png").is_file())]
    advance(len(samples) - len(todo))
    by_sample = getattr(method, "predict_sample", None)
    batched = getattr(method, "predict_batch", None) if not method.oracle else None
    step = max(1, int(batch)) if batched is not None and by_sample is None else 1
    for start in range(0, len(todo), step):
        chunk = todo[start:start + step]
        if by_sample is not None:
            maps = [by_sample(s) for s in chunk]
        elif batched is not None:
            maps = batched([s.image() for s in chunk])
        else:
            maps = [method.predict(s.image(), s.mask() if method.oracle else None) for s in chunk]
        for s, prob in zip(chunk, maps, strict=True):
            write_saliency_map(maps_dir / f"{s.id}.png", prob)
        advance(len(chunk))
    return {"written": len(todo), "kept": len(samples) - len(todo)}
