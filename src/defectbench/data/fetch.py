"""``defectbench data fetch``: download a dataset's published archive, unpack it, verify its content.

The archives are the GitHub repositories the datasets are published in. GitHub re-creates repository
archives on demand (their bytes are not stable), so the checksum is taken over the dataset's *content*:
SHA-256 of the sorted list of ``relative path<TAB>sha256(file)`` lines of its image and mask files.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from defectbench.downloads.http import download
from defectbench.errors import DataError


@dataclass(frozen=True)
class Source:
    """Where a dataset is published and how to find it inside the archive."""

    name: str
    dirname: str
    url: str
    member_prefix: str  # folder inside the archive that holds the dataset (after the archive's top folder)
    patterns: tuple[str, ...]  # glob patterns (relative to the dataset folder) of the files the digest covers
    digest: str
    n_files: int


SOURCES = {
    "sd900": Source(
        "SD-saliency-900",
        "SD-saliency-900",
        "https://github.com/SongGuorong/MCITF/archive/refs/heads/master.zip",
        "SD-saliency-900/",
        ("Source Images/*.bmp", "Ground truth/*.png"),
        "eb74d1d2ecb96d609e2c4ee9f12b53ab80e648b5a445173608b73efd24fd120a",
        1800,
    ),
    "mt": Source(
        "MT (magnetic tile)",
        "Magnetic-tile-defect-datasets",
        "https://github.com/abin24/Magnetic-tile-defect-datasets./archive/refs/heads/master.zip",
        "",
        ("MT_*/Imgs/*.jpg", "MT_*/Imgs/*.png"),
        "038726ddab8cca0d1003b5ff27b97bbd76ce2a94a331af33b6dbf303086dbcb1",
        2688,
    ),
}
NRSD_HINT = ("NRSD-MN is published by the MCnet authors at https://github.com/zdfcvsn/MCnet (the archive is "
             "password-protected: e-mail the authors for the password); unpack it as <data-root>/NRSD-MN")


def content_digest(folder: Path, patterns: tuple[str, ...]) -> tuple[str, int]:
    """Return (SHA-256 over ``relpath<TAB>sha256`` lines of the matching files, number of files)."""
    files = sorted({p for pat in patterns for p in Path(folder).glob(pat) if p.is_file()})
    outer = hashlib.sha256()
    for f in files:
        rel = f.relative_to(folder).as_posix()
        outer.update(f"{rel}\t{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    return outer.hexdigest(), len(files)


def _extract(archive: Path, prefix: str, target: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{archive}: the downloaded file is not a zip archive; run the command again") from None
    with zf:
        names = zf.namelist()
        top = names[0].split("/", 1)[0] + "/" if names else ""
        base = top + prefix
        members = [n for n in names if n.startswith(base) and not n.endswith("/")]
        if not members:
            raise DataError(f"{archive}: no folder {prefix or top} in the archive; the published layout has changed")
        for name in members:
            rel = name[len(base):]
            if ".." in Path(rel).parts:
                continue
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def fetch(name: str, data_root: str | Path, progress: bool = True, verify: bool = True, url: str | None = None) -> Path:
    """Download and unpack dataset ``name`` (``sd900`` or ``mt``) into ``data_root``; return its folder."""
    if name == "nrsd":
        raise DataError(NRSD_HINT)
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; fetch knows {', '.join(SOURCES)} (and nrsd: see its hint)")
    src = SOURCES[name]
    root = Path(data_root)
    final = root / src.dirname
    if final.is_dir():
        raise DataError(f"{final} already exists; remove it first to download again")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        archive = Path(tmp) / "archive.zip"
        download(url or src.url, archive, progress=progress, resume=False, error=DataError)
        staged = Path(tmp) / src.dirname
        _extract(archive, src.member_prefix, staged)
        digest, n = content_digest(staged, src.patterns)
        if verify and (digest != src.digest or n != src.n_files):
            raise DataError(
                f"{src.name}: downloaded content does not match the published checksum ({n} files, sha256 {digest[:12]}… "
                f"expected {src.n_files} files, {src.digest[:12]}…); pass --no-verify to keep it anyway"
            )
        staged.rename(final)
    return final
