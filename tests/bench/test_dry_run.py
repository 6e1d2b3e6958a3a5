"""`run --dry-run` checks every dataset, split and weight file the jobs open, lists what is missing with the command
that gets it and exits 2; `weights fetch --for CONFIG` (from a local server) fills the checkpoints folder, and the
dry run of the paper's matrix then passes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from defectbench.bench import load_config
from defectbench.bench.needs import check_config, config_weights
from defectbench.cli import main
from defectbench.data.splits import read_split, split_file
from tests.downloads.server import file_server, serve_as_official

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "configs" / "paper.yaml"
# what the paper's matrix opens: the backbones of its 13 baselines (litenet's come with a PyPI package) and SAM ViT-H
PAPER_FILES = {"vgg16": "vgg16-397923af.pth", "vgg16_bn": "vgg16_bn-6c64b313.pth", "resnet34": "resnet34-b627a593.pth",
               "resnet50": "resnet50-0676ba61.pth", "res2net50_v1b": "res2net50_v1b_26w_4s-3cf99910.pth",
               "t2t_vit_t_14": "81.7_T2T_ViTt_14.pth.tar", "vit_h": "sam_vit_h_4b8939.pth"}


def _write_all(paths: list[Path], data: bytes) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def published_layouts(root: Path) -> Path:
    """SD-saliency-900, MT and NRSD-MN in their published folder layouts, tiny images: SD-saliency-900 and MT with
    every image their shipped split files name, NRSD-MN with three images per split."""
    image = lambda ext: cv2.imencode(ext, np.zeros((4, 4), np.uint8))[1].tobytes()  # noqa: E731
    sd = [i for s in ("train", "test") for i in read_split(split_file("sd900", s))]
    _write_all([root / "SD-saliency-900" / "Source Images" / f"{i}.bmp" for i in sd], image(".bmp"))
    _write_all([root / "SD-saliency-900" / "Ground truth" / f"{i}.png" for i in sd], image(".png"))
    mt = root / "Magnetic-tile-defect-datasets"
    defects = [i for s in ("1to1-train", "1to1-test") for i in read_split(split_file("mt", s))]
    for cls, ids in (("Blowhole", defects), ("Free", read_split(split_file("mt", "free")))):
        _write_all([mt / f"MT_{cls}" / "Imgs" / f"{i}.jpg" for i in ids], image(".jpg"))
        _write_all([mt / f"MT_{cls}" / "Imgs" / f"{i}.png" for i in ids], image(".png"))
    for cls in ("Break", "Crack", "Fray", "Uneven"):
        (mt / f"MT_{cls}" / "Imgs").mkdir(parents=True)
    for split in ("train", "test"):
        names = [f"{split}_{k}" for k in range(3)]
        _write_all([root / "NRSD-MN" / split / "images" / f"{n}.jpg" for n in names], image(".jpg"))
        _write_all([root / "NRSD-MN" / split / "masks" / f"{n}.png" for n in names], image(".png"))
    return root


@pytest.fixture
def empty_checkpoints(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(folder))
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    return folder


def test_paper_dry_run_lists_every_missing_file_and_passes_after_fetch_for(tmp_path, monkeypatch, capsys,
                                                                           empty_checkpoints):
    data = published_layouts(tmp_path / "data")
    dry_run = ["run", str(PAPER), "--dry-run", "--data-root", str(data), "--runs-dir", str(tmp_path / "runs")]
    config = load_config(PAPER)
    with file_server() as server:
        for name in PAPER_FILES:  # tiny stand-ins, with the catalog pointed at the local server
            serve_as_official(monkeypatch, server, name, f"stand-in weights of {name}".encode() * 100)
        assert {f.name for f in config_weights(config)} == set(PAPER_FILES)
        missing = check_config(config, PAPER, str(data))
        assert {m.name for m in missing} == set(PAPER_FILES.values())  # every file, and nothing else (data is there)
        assert {m.fix for m in missing} == {f"defectbench weights fetch --for {PAPER}"}
        by_name = {m.name: m for m in missing}
        assert len(by_name["sam_vit_h_4b8939.pth"].jobs) == 12 + 4 * (8 + 3) and len(by_name["resnet50-0676ba61.pth"].jobs) == 48
        assert main(dry_run) == 2
        out = capsys.readouterr().out
        assert "248 jobs in" in out and "missing or unusable (7)" in out
        assert f"  defectbench weights fetch --for {PAPER}" in out

        assert main(["weights", "fetch", "--for", str(PAPER)]) == 0
        assert sorted(p.name for p in empty_checkpoints.iterdir()) == sorted(PAPER_FILES.values())
        for name, file_name in PAPER_FILES.items():
            assert (empty_checkpoints / file_name).read_bytes() == server.files[file_name], name
        assert "7 weight files present and verified" in capsys.readouterr().out

        n_requests = len(server.requests)
        assert main(dry_run) == 0
        assert "every dataset, split and weight file the jobs open is present" in capsys.readouterr().out
        assert main(["weights", "fetch", "--for", str(PAPER)]) == 0 and len(server.requests) == n_requests


def test_dry_run_names_missing_data_corrupt_weights_and_takes_the_data_root(tmp_path, monkeypatch, capsys,
                                                                            empty_checkpoints):
    empty_checkpoints.mkdir()
    (empty_checkpoints / "sam_vit_b_01ec64.pth").write_bytes(b"not the official file")
    methods = [{"name": "sam-b", "type": "sam", "model": "vit_b", "select": "prior"},
               {"name": "sam-b-own", "type": "sam", "model": "vit_b", "select": "prior", "allow_unofficial": True},
               {"name": "f3net", "type": "sod", "model": "f3net", "train": {"epochs": 1}},
               {"name": "f3net-scratch", "type": "sod", "model": "f3net", "train": {"epochs": 1, "pretrained": False}},
               {"name": "litenet", "type": "sod", "model": "litenet", "train": {"epochs": 1}}]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": "x", "datasets": [{"name": "sd900"}], "methods": methods}))
    root = tmp_path / "no-data"
    missing = {m.name: m for m in check_config(load_config(cfg), cfg, str(root))}
    assert set(missing) == {"sd900", "sam_vit_b_01ec64.pth", "resnet50-0676ba61.pth"}
    assert str(root / "SD-saliency-900") in missing["sd900"].problem  # looked for in --data-root only
    assert missing["sd900"].fix == f"defectbench data fetch sd900 --data-root {root}"
    sam = missing["sam_vit_b_01ec64.pth"]
    digest = hashlib.sha256(b"not the official file").hexdigest()
    assert digest in sam.problem and "ec2df62732614e57" in sam.problem and "--allow-unofficial" in sam.problem
    assert sam.jobs == ["sd900-test/sam-b/seed0"]  # the method that allows its own weights does not need it
    assert missing["resnet50-0676ba61.pth"].jobs == ["sd900-test/f3net/seed0"]  # trained from scratch: no file
    assert main(["run", str(cfg), "--dry-run", "--data-root", str(root), "--runs-dir", str(tmp_path / "r")]) == 2
    out = capsys.readouterr().out
    assert f"defectbench data fetch sd900 --data-root {root}" in out and "defectbench weights fetch --for" in out
