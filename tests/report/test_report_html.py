"""index.html in headless Chromium (Debian's ``chromium``): a screenshot, every image loads, every table has rows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  const tables = [...document.querySelectorAll('table.results')].map(
      t => [t.id, t.querySelectorAll('tbody tr:not(.group-title)').length]);
  document.body.setAttribute('data-check', JSON.stringify({images: imgs.length, broken, tables}));
});
</script>"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="headless check needs Debian's chromium package (apt-get install -y chromium)")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180)


def test_index_html_loads_images_and_tables(experiment, tmp_path):
    index: Path = experiment["index"]
    page = tmp_path / "site"
    shutil.copytree(index.parent, page)
    check = page / "check.html"
    check.write_text(index.read_text().replace("</body>", CHECK + "</body>"))
    res = _chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", check.as_uri())
    match = re.search(r'data-check="([^"]*)"', res.stdout)
    assert match, f"page did not finish loading: {res.stderr[-2000:]}"
    data = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert data["broken"] == []
    assert data["images"] >= 3
    assert len(data["tables"]) >= 7
    empty = [tid for tid, n in data["tables"] if n == 0]
    assert empty == []

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1280,3000", "--hide-scrollbars", f"--screenshot={shot}", index.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
