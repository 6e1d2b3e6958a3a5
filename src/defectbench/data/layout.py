"""Helpers shared by the dataset loaders: locating a dataset and pairing images with masks."""

from __future__ import annotations

from pathlib import Path

from defectbench.data.imageio import list_images
from defectbench.errors import DataError
from defectbench.paths import data_root_candidates


def locate(dirnames: tuple[str, ...], title: str, how_to_get: str, data_root=None) -> Path:
    """Return the first existing ``<root>/<dirname>`` over the data roots, or raise one clear line."""
    roots = data_root_candidates(data_root)
    for root in roots:
        for name in dirnames:
            cand = root / name
            if cand.is_dir():
                return cand
    looked = ", ".join(str(r / dirnames[0]) for r in roots)
    raise DataError(f"{title} not found (looked in {looked}); {how_to_get}")


def pair_masks(images: list[Path], mask_dir: Path, context: str) -> dict[str, Path]:
    """Map each image stem to the mask of the same stem in ``mask_dir``; raise naming every missing mask."""
    masks = {p.stem: p for p in list_images(mask_dir)} if mask_dir.is_dir() else {}
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        shown = ", ".join(missing[:10]) + (f" … ({len(missing)} in all)" if len(missing) > 10 else "")
        raise DataError(f"{context}: no mask in {mask_dir} for {shown}; every image needs a mask of the same stem")
    return {p.stem: masks[p.stem] for p in images}


def first_existing(base: Path, names: tuple[str, ...]) -> Path | None:
    """Return the first ``base/<name>`` folder that exists (case-insensitive), else None."""
    if not base.is_dir():
        return None
    lower = {p.name.lower(): p for p in base.iterdir() if p.is_dir()}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None
