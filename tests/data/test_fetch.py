"""``data fetch``: offline failure, download + unpack + checksum from a local server, digests of the real data."""

import functools
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from defectbench.cli import main
from defectbench.data.fetch import SOURCES, content_digest, fetch
from defectbench.errors import DataError
from tests.conftest import needs_mt, needs_sd900


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/www`` on a free localhost port."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _archive(www: Path) -> None:
    with zipfile.ZipFile(www / "repo.zip", "w") as zf:
        zf.writestr("MCITF-master/README.md", "code")
        zf.writestr("MCITF-master/SD-saliency-900/Source Images/In_1.bmp", b"image-bytes")
        zf.writestr("MCITF-master/SD-saliency-900/Ground truth/In_1.png", b"mask-bytes")


def test_fetch_offline_fails_with_one_clear_line(tmp_path, capsys):
    with pytest.raises(DataError) as err:
        fetch("sd900", tmp_path, progress=False, url="http://127.0.0.1:9/unreachable.zip")
    assert "could not download http://127.0.0.1:9/unreachable.zip" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "SD-saliency-900").exists()
    assert main(["data", "fetch", "nrsd"]) == 2
    assert "zdfcvsn/MCnet" in capsys.readouterr().err


def test_fetch_unpacks_the_dataset_folder_and_checks_the_checksum(tmp_path, server):
    www, base = server
    _archive(www)
    with pytest.raises(DataError, match="does not match the published checksum"):
        fetch("sd900", tmp_path / "root", progress=False, url=f"{base}/repo.zip")
    assert not (tmp_path / "root" / "SD-saliency-900").exists()  # nothing half-unpacked is left
    out = fetch("sd900", tmp_path / "root", progress=False, verify=False, url=f"{base}/repo.zip")
    assert (out / "Source Images" / "In_1.bmp").read_bytes() == b"image-bytes"
    assert (out / "Ground truth" / "In_1.png").read_bytes() == b"mask-bytes"
    assert not (out / "README.md").exists()
    with pytest.raises(DataError, match="already exists"):
        fetch("sd900", tmp_path / "root", progress=False, url=f"{base}/repo.zip")


@needs_sd900
@needs_mt
def test_shipped_checksums_match_the_published_copies(data_root):
    for name, folder in (("sd900", "SD-saliency-900"), ("mt", "Magnetic-tile-defect-datasets")):
        digest, n = content_digest(data_root / folder, SOURCES[name].patterns)
        assert (digest, n) == (SOURCES[name].digest, SOURCES[name].n_files), name
