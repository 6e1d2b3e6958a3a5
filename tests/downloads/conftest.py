"""Fixtures of the download tests: a local file server, an empty checkpoints folder and torch hub cache."""

from __future__ import annotations

import pytest

from tests.downloads.server import file_server


@pytest.fixture
def server():
    """A :class:`tests.downloads.server.Served` file server on 127.0.0.1."""
    with file_server() as served:
        yield served


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Empty checkpoints folder (``$DEFECTBENCH_CHECKPOINTS``), torch hub home and hash cache; returns them."""
    ck, hub, cache = tmp_path / "checkpoints", tmp_path / "torch", tmp_path / "cache"
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(ck))
    monkeypatch.setenv("TORCH_HOME", str(hub))
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(cache))
    return {"checkpoints": ck, "hub": hub / "hub" / "checkpoints", "cache": cache}
