"""Where defectbench looks for datasets and checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "DEFECTBENCH_DATA"
CHECKPOINTS_ENV = "DEFECTBENCH_CHECKPOINTS"
CACHE_ENV = "DEFECTBENCH_CACHE"


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


def user_cache_dir() -> Path:
    """Return the user's cache folder: ``$XDG_CACHE_HOME``, else ``~/.cache`` (the rule torch hub follows too)."""
    env = os.environ.get("XDG_CACHE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache"


def weights_dir() -> Path:
    """Return the folder weight files are fetched into and looked for first: ``$DEFECTBENCH_CHECKPOINTS``, else
    ``<user cache>/defectbench/checkpoints`` (``~/.cache/defectbench/checkpoints``)."""
    return checkpoints_dir() or user_cache_dir() / "defectbench" / "checkpoints"


def cache_root() -> Path:
    """Return ``$DEFECTBENCH_CACHE``, else ``~/.cache/defectbench/sam`` (SAM proposals, remembered file hashes)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "defectbench" / "sam"


def prepare_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` as a folder (with its parents) or raise one clear error: a file in the way, no permission."""
    from defectbench.errors import DataError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"{path}: {what} is an existing file, not a folder; choose another path")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise DataError(f"{path}: cannot create the {what}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DataError(f"{path}: cannot write the {what}: no write permission in {ancestor}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{path}: cannot create the {what} ({exc.strerror})") from None
    return path


def prepare_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check that ``path`` can be written as a file (its folder created), or raise one clear error."""
    from defectbench.errors import DataError

    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"{path}: {what} is an existing folder; give a file name")
    prepare_output_dir(path.parent, f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{path}: cannot overwrite the {what}: no write permission")
    return path
