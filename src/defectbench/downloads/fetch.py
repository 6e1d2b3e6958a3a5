"""Fetch catalog files into the checkpoints folder: resumable download, SHA-256 check, atomic move into place.

A file already present (in the checkpoints folder or torch hub's cache) is verified and kept. A download goes to
``<file>.part`` beside its final place (an interrupted fetch continues it), is hashed, and only a file with the
official digest is moved to its final name; a wrong one is deleted, so nothing unverified is ever left in place.
One fetch at a time per file: a second process wanting the same file is told to wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from defectbench.downloads.catalog import WeightFile
from defectbench.downloads.files import file_sha256, find, remember_sha256, verify, where
from defectbench.downloads.http import download
from defectbench.errors import CheckpointError
from defectbench.paths import prepare_output_dir, weights_dir


@dataclass(frozen=True)
class Fetched:
    """What fetching one file did: ``downloaded`` or ``present`` (already there, verified), where and its hash."""

    entry: WeightFile
    path: Path
    action: str
    sha256: str


@contextlib.contextmanager
def _only_fetch(part: Path) -> Iterator[None]:
    """Hold an exclusive lock on the ``.part`` file (released by the kernel if the process dies)."""
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"{part}: another process is downloading this file; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def fetch_file(entry: WeightFile, progress: bool = True, cache_root: str | os.PathLike | None = None) -> Fetched:
    """Make ``entry`` present and verified: keep a good copy already found, else download it into the checkpoints
    folder (resuming a ``.part`` file), check its SHA-256 and move it into place atomically."""
    present = find(entry)
    if present is not None:
        return Fetched(entry, present, "present", verify(present, entry, cache_root))
    folder = prepare_output_dir(weights_dir(), "checkpoints folder")
    target = folder / entry.file_name
    part = target.with_name(target.name + ".part")
    with _only_fetch(part):
        download(entry.url, part, progress=progress, description=entry.file_name, error=CheckpointError)
        digest = file_sha256(part)
        if not entry.matches(digest):
            part.unlink()
            raise CheckpointError(
                f"{entry.url}: the downloaded {entry.file_name} has sha256 {digest}, not the official "
                f"{entry.expected}; it was deleted and nothing was put in place: run the command again, and if this "
                f"repeats the file at that address has changed: report it, or download it by hand and check it")
        os.replace(part, target)
    remember_sha256(target, digest, cache_root)
    return Fetched(entry, target, "downloaded", digest)


def fetch_files(entries: list[WeightFile], progress: bool = True, log=lambda line: None,
                cache_root: str | os.PathLike | None = None) -> list[Fetched]:
    """Fetch each entry in turn (see :func:`fetch_file`), logging one line per file; the first failure stops."""
    out = []
    for entry in entries:
        got = fetch_file(entry, progress, cache_root)
        log(f"{entry.file_name}: {'downloaded to' if got.action == 'downloaded' else 'present in'} "
            f"{where(got.path) if got.action == 'present' else got.path}")
        out.append(got)
    return out
