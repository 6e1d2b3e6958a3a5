"""The one progress-bar set-up: stderr by default, counts or bytes, nothing when disabled."""

from rich.progress import DownloadColumn, MofNCompleteColumn, TransferSpeedColumn

from defectbench.progress import make_progress


def test_bars_go_to_stderr_with_counts_by_default() -> None:
    bar = make_progress(True)
    assert bar.console.stderr
    kinds = [type(c) for c in bar.columns]
    assert MofNCompleteColumn in kinds and DownloadColumn not in kinds


def test_byte_bars_show_size_and_rate_instead_of_counts() -> None:
    bar = make_progress(True, units="bytes")
    kinds = [type(c) for c in bar.columns]
    assert DownloadColumn in kinds and TransferSpeedColumn in kinds and MofNCompleteColumn not in kinds
    assert bar.console.stderr


def test_download_progress_uses_the_shared_bar(tmp_path, monkeypatch) -> None:
    from defectbench.downloads import http as http_module  # the one downloader (datasets and weight files)

    made: list[str] = []
    real = make_progress

    def recording(*args, **kwargs):
        made.append(kwargs.get("units", "items"))
        return real(*args, **kwargs)

    monkeypatch.setattr("defectbench.progress.make_progress", recording)

    class Response:
        headers = {"Content-Length": "6"}
        status = 200

        def __init__(self) -> None:
            self.chunks = [b"abc", b"def", b""]

        def read(self, n: int) -> bytes:
            return self.chunks.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

    monkeypatch.setattr(http_module.urllib.request, "urlopen", lambda request, timeout: Response())
    http_module.download("http://example.invalid/x.zip", tmp_path / "x.zip", progress=False)
    assert (tmp_path / "x.zip").read_bytes() == b"abcdef"
    assert made == ["bytes"]
