"""Datasets by name: ``sd900``, ``mt``, ``nrsd``, ``folder:<path>``."""

from __future__ import annotations

from collections.abc import Callable

from defectbench.data import folder, mt, nrsd, sd900
from defectbench.data.dataset import Dataset
from defectbench.errors import DataError

LOADERS: dict[str, Callable[..., Dataset]] = {sd900.NAME: sd900.load, mt.NAME: mt.load, nrsd.NAME: nrsd.load}
TITLES = {sd900.NAME: sd900.TITLE, mt.NAME: mt.TITLE, nrsd.NAME: nrsd.TITLE}
# readable names of defect classes whose ids are abbreviations
CLASS_NAMES: dict[str, dict[str, str]] = {sd900.NAME: sd900.CLASS_NAMES}


def dataset_title(name: str) -> str:
    """The human name of a registered dataset (the name itself for others, e.g. ``folder:<path>``)."""
    return TITLES.get(name, name)


def class_title(dataset: str, cls: str) -> str:
    """The readable name of a defect class (``In`` -> ``inclusion`` for SD-saliency-900)."""
    return CLASS_NAMES.get(dataset, {}).get(cls, cls)


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
