"""Every CLI verb meets bad values and broken paths with exit status 2 and one line naming the culprit.

The table below is the sweep: negative, zero and non-numeric numbers, missing files and folders, a file where a
folder is expected (and the reverse), a corrupt checkpoint, an unwritable location. Each row runs the CLI in this
process and asserts: exit status 2, the culprit (an option or a path) named in what was printed, and no traceback.
Add a row for every new option.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from defectbench.cli import main
from tests.conftest import write_png

# a folder that exists but that nobody, root included, can create anything in
UNWRITABLE = Path("/proc/1/defectbench-test")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Small inputs: images, masks, a plain file, a corrupt and an unsafe checkpoint, configs."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(root / "images" / f"a{i}.png", rng.integers(0, 255, (40, 48), dtype=np.uint8))
        write_png(root / "masks" / f"a{i}.png", (rng.random((40, 48)) > 0.7).astype(np.uint8) * 255)
    (root / "empty").mkdir()
    (root / "afile").write_text("not a folder\n")
    (root / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated")
    import torch

    torch.save({"model": torch.nn.Linear(2, 2)}, root / "unsafe.pt")  # a pickled module: not weights-only
    (root / "bad.yaml").write_text("experiment: [unclosed\n")
    (root / "ok.yaml").write_text("experiment: sweep\ndatasets:\n  - name: folder:" + str(root / "ds") +
                                  "\n    tasks: [{test: test}]\nmethods:\n  - {name: m, type: maps, path: " +
                                  str(root / "images") + "}\n")
    return {k: root / k for k in ("images", "masks", "empty", "afile", "corrupt.pt", "unsafe.pt", "bad.yaml", "ok.yaml")} | {"root": root}


def _cases(f: dict[str, Path]) -> list[tuple[list[str], str]]:
    """(argv, text the message must contain)."""
    img, masks, afile, empty = str(f["images"]), str(f["masks"]), str(f["afile"]), str(f["empty"])
    tmp = f["root"]
    predict = ["predict", "--model", "litenet", "--weights", "sd900", "--input", img]
    train = ["train", "--model", "litenet", "--out", str(tmp / "run")]
    return [
        # eval
        (["eval", "--pred", str(tmp / "nope"), "--gt", masks], "nope"),
        (["eval", "--pred", afile, "--gt", masks], "afile"),
        (["eval", "--pred", img, "--gt", str(tmp / "nomasks")], "nomasks"),
        (["eval", "--pred", img, "--gt", masks, "--csv", f"{afile}/x.csv"], "afile"),
        (["eval", "--pred", img, "--gt", masks, "--json", f"{UNWRITABLE}/x.json"], "defectbench-test"),
        (["eval", "--pred", img, "--gt", masks, "--workers", "0"], "--workers"),
        (["eval", "--pred", img, "--gt", masks, "--workers", "two"], "--workers"),
        (["eval", "--pred", img, "--dataset", "nosuch"], "nosuch"),
        # predict
        ([*predict, "--out", str(tmp / "m1"), "--batch", "-1"], "--batch"),
        ([*predict, "--out", str(tmp / "m2"), "--batch", "0"], "--batch"),
        ([*predict, "--out", str(tmp / "m3"), "--batch", "x"], "--batch"),
        ([*predict, "--out", str(tmp / "m4"), "--threads", "0"], "--threads"),
        ([*predict, "--out", f"{afile}/sub"], "afile"),
        ([*predict, "--out", afile], "afile"),
        ([*predict, "--out", f"{UNWRITABLE}/maps"], "defectbench-test"),
        ([*predict, "--out", img], "input images"),
        ([*predict, "--out", masks], "not written by defectbench predict"),
        (["predict", "--model", "litenet", "--weights", "sd900", "--input", str(tmp / "nope"), "--out", str(tmp / "m5")], "nope"),
        (["predict", "--model", "litenet", "--weights", "sd900", "--input", empty, "--out", str(tmp / "m6")], "no images"),
        (["predict", "--model", "litenet", "--weights", "nosuch", "--input", img, "--out", str(tmp / "m7")], "nosuch"),
        (["predict", "--checkpoint", str(tmp / "none.pt"), "--input", img, "--out", str(tmp / "m8")], "none.pt"),
        (["predict", "--checkpoint", str(f["corrupt.pt"]), "--input", img, "--out", str(tmp / "m9")], "corrupt.pt"),
        (["predict", "--checkpoint", str(f["unsafe.pt"]), "--input", img, "--out", str(tmp / "m10")], "unsafe"),
        # train
        ([*train, "--lr", "-1"], "--lr"),
        ([*train, "--lr", "nan"], "--lr"),
        ([*train, "--weight-decay", "-1"], "--weight-decay"),
        ([*train, "--ema-decay", "1"], "ema_decay"),
        ([*train, "--epochs", "0"], "--epochs"),
        ([*train, "--batch", "0"], "--batch"),
        ([*train, "--limit", "0"], "--limit"),
        ([*train, "--size", "0"], "--size"),
        ([*train, "--size", "100"], "size"),
        ([*train, "--model-args", '{"nosuch": 1}'], "nosuch"),
        ([*train, "--model-args", "[1, 2]"], "--model-args"),
        (["train", "--model", "nosuch", "--out", str(tmp / "run2")], "nosuch"),
        (["train", "--model", "litenet", "--out", f"{afile}/x"], "afile"),
        (["train", "--model", "litenet", "--out", afile], "afile"),
        ([*train, "--dataset", "nosuch"], "nosuch"),
        ([*train, "--init-from", str(tmp / "none.pt")], "none.pt"),
        # run / status / report / speed
        (["run", str(tmp / "none.yaml")], "none.yaml"),
        (["run", str(f["bad.yaml"])], "bad.yaml"),
        (["run", str(f["ok.yaml"]), "--runs-dir", afile], "afile"),
        (["run", str(f["ok.yaml"]), "--runs-dir", f"{afile}/runs"], "afile"),
        (["status", str(tmp / "noexp")], "noexp"),
        (["report", str(tmp / "noexp")], "noexp"),
        (["report", str(tmp / "noexp"), "--out", f"{afile}/rep"], "afile"),
        (["speed", "litenet", "--image-size", "0"], "--image-size"),
        (["speed", "litenet", "--image-size", "-32"], "--image-size"),
        (["speed", "litenet", "--max-seconds", "0"], "--max-seconds"),
        (["speed", "nosuch"], "nosuch"),
        (["speed", "litenet", "--json", f"{afile}/s.json"], "afile"),
        # sam
        (["sam", "predict", "--model", "nosuch", "--dataset", "sd900", "--out", str(tmp / "s1")], "nosuch"),
        (["sam", "predict", "--model", "vit_b", "--dataset", "sd900", "--out", str(tmp / "s2"), "--limit", "0"], "--limit"),
        (["sam", "predict", "--model", "vit_b", "--dataset", "sd900", "--out", str(tmp / "s3"),
          "--checkpoint", str(tmp / "none.pth")], "none.pth"),
        (["sam", "viz", str(tmp / "none.png"), "--out", str(tmp / "v1"), "--random-weights", "0", "--model", "mobile_sam"], "none.png"),
        (["sam", "viz", f"{img}/a0.png", "--gt-dir", str(tmp / "nogt"), "--out", str(tmp / "v2"), "--select",
          "oracle-best", "--random-weights", "0", "--model", "mobile_sam"], "nogt"),
        # export
        (["export", "--model", "nosuch", "--weights", "sd900", "--format", "onnx", "--out", str(tmp / "e1")], "nosuch"),
        (["export", "--checkpoint", str(f["corrupt.pt"]), "--format", "onnx", "--out", str(tmp / "e2")], "corrupt.pt"),
        (["export", "--checkpoint", str(tmp / "none.pt"), "--format", "onnx", "--out", str(tmp / "e3")], "none.pt"),
        (["export", "--model", "litenet", "--weights", "sd900", "--format", "onnx", "--size", "100",
          "--out", str(tmp / "e4")], "100"),
        (["export", "--model", "litenet", "--weights", "sd900", "--format", "onnx", "--out", f"{afile}/e5"], "afile"),
        (["predict", "--checkpoint", str(f["corrupt.pt"]), "--engine", "onnxruntime", "--input", img,
          "--out", str(tmp / "m11")], "corrupt.pt"),
        # data
        (["data", "info", "nosuch"], "nosuch"),
        (["data", "info", "sd900", "--data-root", str(tmp / "nodata")], "nodata"),
    ]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return int(code or 0), out.out + out.err


def test_every_bad_input_is_one_clear_line(files, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    failures = []
    for argv, culprit in _cases(files):
        try:
            code, text = _run(argv, capsys)
        except BaseException as exc:  # noqa: BLE001 - a traceback is what this test hunts
            failures.append(f"{' '.join(argv)}: raised {type(exc).__name__}: {exc}")
            continue
        last = [line for line in text.strip().splitlines() if line.strip()][-1:] or [""]
        if code != 2 or "Traceback" in text or culprit not in text:
            failures.append(f"{' '.join(argv)}: exit {code}, expected 2 naming {culprit!r}; got: {last[0][:300]}")
        elif not re.search(r"(defectbench: error:|error: argument)", text):
            failures.append(f"{' '.join(argv)}: no error line: {last[0][:300]}")
    assert not failures, f"{len(failures)} bad inputs not handled:\n" + "\n".join(failures)
