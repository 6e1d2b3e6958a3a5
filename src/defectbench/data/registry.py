"""Datasets by name: ``sd900``, ``mt``, ``nrsd``, ``folder:<path>``."""

from __future__ import annotations

from collections.abc import Callable

from defectbench.data import folder, mt, nrsd, sd900
from defectbench.data.dataset import Dataset
from defectbench.errors import DataError

LOADERS: dict[str, Callable[..., Dataset]] = {sd900.NAME: sd900.load, mt.NAME: mt.load, nrsd.NAME: nrsd.load}
TITLES = {sd900.NAME: sd900.TITLE, mt.NAME: mt.TITLE, nrsd.NAME: nrsd.TITLE}


def list_datasets() -> list[str]:
    """Return the registered dataset names (plus the ``folder:<path>`` form)."""
    return [*LOADERS, "folder:<path>"]


def load_dataset(name: str, data_root=None) -> Dataset:
    """Load a dataset by registry name; ``folder:<path>`` loads a generic images/ + masks/ folder."""
    if name.startswith("folder:"):
        return folder.load(name.split(":", 1)[1])
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}")
    return LOADERS[name](data_root)
