"""Where defectbench looks for datasets and checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "DEFECTBENCH_DATA"
CHECKPOINTS_ENV = "DEFECTBENCH_CHECKPOINTS"


def data_root_candidates(data_root: str | os.PathLike | None = None) -> list[Path]:
    """Return the data roots in the order they are searched.

    Order: the explicit ``data_root`` argument (``--data-root``), else ``$DEFECTBENCH_DATA``,
    else ``./data``, else ``../shared/datasets`` (relative to the working directory).
    An explicit argument or environment variable is the only candidate when given.
    """
    if data_root is not None:
        return [Path(data_root).expanduser()]
    env = os.environ.get(DATA_ENV)
    if env:
        return [Path(env).expanduser()]
    return [Path("data"), Path("..") / "shared" / "datasets"]


def checkpoints_dir() -> Path | None:
    """Return ``$DEFECTBENCH_CHECKPOINTS`` as a path, or None when unset."""
    env = os.environ.get(CHECKPOINTS_ENV)
    return Path(env).expanduser() if env else None
