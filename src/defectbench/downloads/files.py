"""Where weight files are on disk, and whether a copy is the official file.

Files are looked for, under their official names, in the checkpoints folder (``$DEFECTBENCH_CHECKPOINTS``, else
``~/.cache/defectbench/checkpoints``; :func:`defectbench.paths.weights_dir`) and then in torch hub's cache
(``$TORCH_HOME/hub/checkpoints``, else ``~/.cache/torch/hub/checkpoints``), where torchvision and timm put the
files they download.

A copy found there is checked against the official SHA-256 (or its prefix, where only that is known). Hashing a
multi-GB file takes seconds, so a file's digest is computed once and remembered in
``<cache root>/checkpoint_hashes.json``, keyed by path, size and modification time (any change re-hashes).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from defectbench.atomic import atomic_write_json
from defectbench.downloads.catalog import WeightFile
from defectbench.errors import CheckpointError
from defectbench.paths import cache_root as default_cache_root
from defectbench.paths import user_cache_dir, weights_dir

HASHES_FILE = "checkpoint_hashes.json"


def torch_hub_dir() -> Path:
    """Return torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``, the same rule without torch)."""
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    env = os.environ.get("TORCH_HOME")
    home = Path(env).expanduser() if env else user_cache_dir() / "torch"
    return home / "hub" / "checkpoints"


def search_dirs() -> list[Path]:
    """Return the folders weight files are looked for in, in order: the checkpoints folder, torch hub's cache."""
    out: list[Path] = []
    for folder in (weights_dir(), torch_hub_dir()):
        if folder not in out:
            out.append(folder)
    return out


def find(entry: WeightFile) -> Path | None:
    """Return the first copy of ``entry`` (under any of its names) in :func:`search_dirs`, or None."""
    for folder in search_dirs():
        for name in entry.file_names:
            if (folder / name).is_file():
                return folder / name
    return None


def where(path: Path) -> str:
    """Say which of the searched folders ``path`` is in (``checkpoints folder``, ``torch hub cache``, or its folder)."""
    if path.parent == weights_dir():
        return "checkpoints folder"
    if path.parent == torch_hub_dir():
        return "torch hub cache"
    return str(path.parent)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Return the SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _memo_key(path: Path) -> str:
    st = path.stat()
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _memo_file(cache_root: str | os.PathLike | None) -> Path:
    return (Path(cache_root) if cache_root else default_cache_root()) / HASHES_FILE


def _read_memo(memo_file: Path) -> dict[str, str]:
    if memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
            return memo if isinstance(memo, dict) else {}
        except (OSError, ValueError):
            pass
    return {}


def remember_sha256(path: str | os.PathLike, digest: str, cache_root: str | os.PathLike | None = None) -> None:
    """Remember ``digest`` as the SHA-256 of ``path`` as it is now (a read-only cache only costs a re-hash later)."""
    path = Path(path).resolve()
    memo_file = _memo_file(cache_root)
    memo = {k: v for k, v in _read_memo(memo_file).items() if Path(k.split("|", 1)[0]).is_file()}  # drop gone files
    memo[_memo_key(path)] = digest
    try:
        atomic_write_json(memo_file, memo)
    except OSError:
        pass


def cached_sha256(path: str | os.PathLike, cache_root: str | os.PathLike | None = None) -> str:
    """Return a file's SHA-256, reusing the value remembered for the same path, size and modification time."""
    path = Path(path).resolve()
    digest = _read_memo(_memo_file(cache_root)).get(_memo_key(path))
    if digest is None:
        digest = file_sha256(path)
        remember_sha256(path, digest, cache_root)
    return digest


def mismatch_message(path: Path, entry: WeightFile, digest: str, own_weights_hint: str = "") -> str:
    """One line: which file, both hashes, and what to do (fetch the official file again, or say it is your own)."""
    expected = (f"starts with {entry.sha256_prefix} (the prefix in its name)" if entry.check == "prefix"
                else f"is {entry.sha256}")
    return (f"{path}: not the official {entry.file_name}: its sha256 is {digest}, the official file's {expected}; "
            f"the copy is truncated, corrupt or another file: delete it and run `defectbench weights fetch "
            f"{entry.name}`" + (f"; {own_weights_hint}" if own_weights_hint else ""))


def verify(path: str | os.PathLike, entry: WeightFile, cache_root: str | os.PathLike | None = None,
           own_weights_hint: str = "", allow_unofficial: bool = False) -> str:
    """Return the SHA-256 of ``path``; unless ``allow_unofficial``, a digest other than ``entry``'s is a
    :class:`CheckpointError` naming the file, both hashes and what to do. Entries without a known hash pass."""
    digest = cached_sha256(path, cache_root)
    if not allow_unofficial and not entry.matches(digest):
        raise CheckpointError(mismatch_message(Path(path), entry, digest, own_weights_hint))
    return digest


def status(entry: WeightFile, check_hash: bool = False, cache_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return one row of ``weights list``: the entry's facts, where a copy was found and its state.

    The state is ``missing``, ``found`` (size as published, or no published size), ``size differs``, or with
    ``check_hash``: ``verified``, ``prefix verified`` (only the prefix is known), ``found (no published hash)``
    or ``sha256 differs``.
    """
    path = find(entry)
    row: dict[str, Any] = {
        "name": entry.name, "title": entry.title, "kind": entry.kind, "file": entry.file_name, "url": entry.url,
        "size": entry.size, "sha256": entry.sha256, "sha256_prefix": entry.sha256_prefix, "check": entry.check,
        "path": str(path) if path else None, "where": where(path) if path else None, "status": "missing",
    }
    if path is None:
        return row
    size = path.stat().st_size
    row["status"] = "found" if entry.size in (None, size) else f"size differs ({size} bytes)"
    if check_hash:
        digest = cached_sha256(path, cache_root)
        verified = {"sha256": "verified", "prefix": "prefix verified", "none": "found (no published hash)"}
        row["status"] = verified[entry.check] if entry.matches(digest) else "sha256 differs"
    return row
