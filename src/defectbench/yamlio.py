"""The one YAML reader of defectbench: a missing file, invalid YAML or the wrong shape is one clear line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from defectbench.errors import ConfigError


def load_yaml(path: str | os.PathLike, what: str = "config file", mapping: bool = True) -> Any:
    """Read a YAML (or JSON) file; with ``mapping`` it must hold a mapping (an empty file gives ``{}``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found" + ("; it is a folder" if path.is_dir() else ""))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} is not a text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', None) or str(exc).splitlines()[0]})") from None
    if mapping:
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: {what} must hold a mapping of settings (key: value lines)")
    return data
