"""HTTP downloads with a progress bar and resume: a partial file is continued with a ``Range`` request.

Every failure is one line of the caller's error class naming the URL: the server unreachable, an HTTP error
status (404, 500...), or a connection that broke off (then what arrived is kept, and the same call resumes).
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from defectbench import __version__
from defectbench.errors import DefectbenchError

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _open(url: str, start: int, timeout: float, error: type[DefectbenchError], dest: Path):
    """Open ``url`` (from byte ``start`` when > 0); return the response, or None when ``start`` is already the end."""
    headers = {"User-Agent": f"defectbench/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left after ``start``: the partial file is complete (or too long)
            if exc.headers.get("Content-Range", "").rpartition("/")[2] == str(start):
                return None
            raise error(f"could not resume {url}: {dest} is longer than the file; delete it and run the command "
                        "again") from None
        raise error(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise error(f"could not download {url} ({reason}); check the network, or download it by hand") from None


def download(url: str, dest: str | os.PathLike, *, progress: bool = True, description: str = "downloading",
             resume: bool = True, error: type[DefectbenchError] = DefectbenchError, timeout: float = 30.0) -> int:
    """Download ``url`` into ``dest``; return the file's size in bytes.

    With ``resume``, an existing ``dest`` is taken as the first part of the file and only the rest is asked for
    (``Range: bytes=N-``); a server that ignores the range sends the whole file, which then replaces it. Without
    ``resume`` the file is written from scratch. A connection that breaks off raises ``error`` (saying to run the
    command again) and leaves what arrived in ``dest``.
    """
    from defectbench.progress import make_progress

    dest = Path(dest)
    start = dest.stat().st_size if resume and dest.is_file() else 0
    resp = _open(url, start, timeout, error, dest)
    if resp is None:
        return start
    if start and resp.status != 206:
        start = 0  # the server sent the whole file
    elif start:
        got = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not got or int(got.group(1)) != start:
            resp.close()
            raise error(f"could not resume {url}: the server answered the range request with "
                        f"{resp.headers.get('Content-Range')!r}; delete {dest} and run the command again")
    length = int(resp.headers.get("Content-Length") or 0)
    total = start + length if length else None
    done = start
    again = "run the same command again to resume" if resume else "run the command again"
    with resp, open(dest, "ab" if start else "wb") as out, make_progress(progress, units="bytes") as bar:
        task = bar.add_task(description, total=total, completed=start)
        while True:
            try:
                chunk = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise error(f"download of {url} broke off after {done} of {total or '?'} bytes "
                            f"({type(exc).__name__}); {again}") from None
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            bar.advance(task, len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if total is not None and done != total:
        raise error(f"download of {url} broke off after {done} of {total} bytes; {again}")
    return done
