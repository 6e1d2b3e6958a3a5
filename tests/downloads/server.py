"""A local HTTP file server for download tests: Range requests, a connection dropped mid-file, error statuses."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace


@dataclass
class Served:
    """What the server holds and what it was asked: files by URL path, a drop-after budget per path, requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the connection is cut (once)
    status: dict[str, int] = field(default_factory=dict)  # path -> error status to answer
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    base: str = ""

    def url(self, path: str) -> str:
        """The address of ``path`` on this server."""
        return f"{self.base}/{path.lstrip('/')}"


def _handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.lstrip("/")
            rng = self.headers.get("Range")
            served.requests.append((path, rng))
            if path in served.status:
                self.send_error(served.status[path])
                return
            if path not in served.files:
                self.send_error(404)
                return
            data = served.files[path]
            start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
            if start >= len(data) and start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            cut = served.drop_after.pop(path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # the connection breaks off mid-file
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def file_server() -> Iterator[Served]:
    """Serve a :class:`Served` on a free port of 127.0.0.1 for the duration of the context."""
    served = Served()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()


def serve_as_official(monkeypatch, served: Served, name: str, data: bytes) -> None:
    """Serve ``data`` as catalog file ``name`` and make the catalog point there with ``data``'s size and SHA-256."""
    from defectbench.downloads import catalog
    from defectbench.methods.sam.registry import MODELS

    digest = hashlib.sha256(data).hexdigest()
    if name in catalog.BACKBONES:
        entry = catalog.BACKBONES[name]
        served.files[entry.file_name] = data
        monkeypatch.setitem(catalog.BACKBONES, name, replace(entry, url=served.url(entry.file_name), size=len(data),
                                                            sha256=digest, sha256_prefix=None))
    else:
        spec = MODELS[name]
        served.files[spec.file_name] = data
        monkeypatch.setitem(MODELS, name, replace(spec, url=served.url(spec.file_name), size=len(data), sha256=digest))
