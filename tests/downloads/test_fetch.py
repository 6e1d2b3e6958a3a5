"""`weights fetch` against a local server: resume after a broken connection, wrong hashes refused with nothing left in
place, server errors in one line, files in torch hub's cache found and used, hashes remembered per file."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest
import torch

from defectbench.cli import main
from defectbench.downloads import catalog, files
from defectbench.downloads.fetch import fetch_file
from defectbench.errors import CheckpointError
from tests.downloads.server import serve_as_official


def tiny_resnet34() -> tuple[bytes, dict[str, torch.Tensor]]:
    """A ResNet-34 state dict in torchvision's file format whose tensors are broadcast scalars (exact keys and shapes,
    a few kilobytes), and the tensors it holds."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.resnet34(weights=None).state_dict().items()}
    state = {k: torch.zeros((), dtype=torch.long) if k.endswith("num_batches_tracked")
             else torch.full((1,), (i % 97) / 97.0).expand(shape) for i, (k, shape) in enumerate(shapes.items())}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue(), state


def test_an_interrupted_download_resumes_with_a_range_request(server, folders, monkeypatch):
    data = bytes(range(256)) * 2000  # 512 kB: several read chunks
    serve_as_official(monkeypatch, server, "resnet34", data)
    entry = catalog.BACKBONES["resnet34"]
    server.drop_after[entry.file_name] = 200_000
    with pytest.raises(CheckpointError) as err:
        fetch_file(entry, progress=False)
    msg = str(err.value)
    assert entry.url in msg and "broke off after 200000 of 512000 bytes" in msg and "resume" in msg and "\n" not in msg
    part = folders["checkpoints"] / (entry.file_name + ".part")
    target = folders["checkpoints"] / entry.file_name
    assert part.read_bytes() == data[:200_000] and not target.exists()  # nothing unverified in place
    got = fetch_file(entry, progress=False)
    assert server.requests[-1] == (entry.file_name, "bytes=200000-")  # only the rest was asked for
    assert got.action == "downloaded" and got.path == target and target.read_bytes() == data
    assert got.sha256 == hashlib.sha256(data).hexdigest() and not part.exists()
    again = fetch_file(entry, progress=False)  # present and verified: no further request
    assert again.action == "present" and len(server.requests) == 2


def test_a_wrong_hash_is_refused_and_nothing_is_left_in_place(server, folders, monkeypatch):
    serve_as_official(monkeypatch, server, "resnet50", b"the official bytes")
    entry = catalog.BACKBONES["resnet50"]
    server.files[entry.file_name] = b"other bytes, same address"
    with pytest.raises(CheckpointError) as err:
        fetch_file(entry, progress=False)
    msg = str(err.value)
    got = hashlib.sha256(b"other bytes, same address").hexdigest()
    assert entry.url in msg and got in msg and entry.sha256 in msg and "nothing was put in place" in msg
    assert list(folders["checkpoints"].iterdir()) == []  # neither the file nor a .part to resume from


@pytest.mark.parametrize("status", [404, 500])
def test_a_server_error_is_one_line_naming_the_url(server, folders, monkeypatch, capsys, status):
    serve_as_official(monkeypatch, server, "vgg16", b"x")
    server.status[catalog.BACKBONES["vgg16"].file_name] = status
    assert main(["weights", "fetch", "vgg16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("defectbench: error: could not download ") and "\n" not in err
    assert catalog.BACKBONES["vgg16"].url in err and f"HTTP {status}" in err


def test_a_file_in_torch_hubs_cache_is_found_checked_and_used_by_the_loader(server, folders, monkeypatch, capsys):
    from defectbench.methods.saliency.backbones import build_resnet

    data, state = tiny_resnet34()
    serve_as_official(monkeypatch, server, "resnet34", data)
    entry = catalog.BACKBONES["resnet34"]
    folders["hub"].mkdir(parents=True)
    (folders["hub"] / entry.file_name).write_bytes(data)
    got = fetch_file(entry, progress=False)
    assert got.action == "present" and got.path == folders["hub"] / entry.file_name and server.requests == []
    net = build_resnet(34, pretrained=True)  # the loader finds it there too
    assert torch.equal(net.layer3[2].conv1.weight, state["layer3.2.conv1.weight"].expand_as(net.layer3[2].conv1.weight))
    capsys.readouterr()
    assert main(["weights", "list", "--verify", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet34"]["status"] == "verified" and rows["resnet34"]["where"] == "torch hub cache"
    assert rows["vgg16"]["status"] == "missing" and rows["res2net50_v1b"]["check"] == "prefix"
    (folders["hub"] / entry.file_name).write_bytes(data[:-10])  # a truncated copy is refused by the loader
    with pytest.raises(CheckpointError, match=r"not the official resnet34-b627a593\.pth: its sha256 is [0-9a-f]{64}, "
                                              r"the official file's is [0-9a-f]{64}.*weights fetch resnet34"):
        build_resnet(34, pretrained=True)


def test_a_fetched_file_is_used_by_the_loader_and_its_hash_is_computed_once(server, folders, monkeypatch):
    from defectbench.methods.saliency.backbones import build_resnet

    data, state = tiny_resnet34()
    serve_as_official(monkeypatch, server, "resnet34", data)
    assert main(["weights", "fetch", "resnet34"]) == 0
    calls = []
    real = files.file_sha256
    monkeypatch.setattr(files, "file_sha256", lambda path, *a: calls.append(path) or real(path, *a))
    for _ in range(2):
        net = build_resnet(34, pretrained=True)
    assert calls == []  # fetch remembered the digest of what it moved into place: no re-hash at load time
    assert torch.equal(net.fc.bias, state["fc.bias"].expand_as(net.fc.bias))
    memo = json.loads((folders["cache"] / files.HASHES_FILE).read_text())
    assert list(memo.values()) == [hashlib.sha256(data).hexdigest()]
    target = folders["checkpoints"] / catalog.BACKBONES["resnet34"].file_name
    before = target.stat().st_mtime_ns
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, new content, later time: re-hashed
    os.utime(target, ns=(before + 10**9, before + 10**9))  # (file systems may keep coarse times)
    with pytest.raises(CheckpointError, match="not the official"):
        build_resnet(34, pretrained=True)
    assert len(calls) == 1


def test_an_unknown_name_and_nothing_to_fetch_are_one_line(capsys):
    assert main(["weights", "fetch", "nosuchfile"]) == 2
    assert "unknown weight file 'nosuchfile'" in capsys.readouterr().err
    assert main(["weights", "fetch"]) == 2
    assert "--for CONFIG" in capsys.readouterr().err
