"""Issue 8's data-loss and honest-number cases, one test each: inputs never overwritten, label masks, modes,
renamed rows, exact stems, one message for every problem, explicit files that are missing."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

from defectbench.cli import main
from tests.bench.synthetic import make_dataset, make_maps, write_config
from tests.conftest import write_png


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _images(folder: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(folder / f"img{i}.png", rng.integers(0, 255, (48, 64), dtype=np.uint8))
    return folder


def _predict(inp: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--model", "litenet", "--weights", "sd900", "--input", str(inp), "--out", str(out), *extra])


def test_predict_never_overwrites_its_inputs(tmp_path, capsys) -> None:
    inp = _images(tmp_path / "in")
    before = _digest(inp)
    assert _predict(inp, inp) == 2
    assert _predict(inp, inp, "--into-existing") == 2  # the flag never allows writing over input images
    assert "input images" in capsys.readouterr().err
    assert _digest(inp) == before


def test_predict_refuses_foreign_files_and_never_replaces_them(tmp_path, capsys) -> None:
    inp = _images(tmp_path / "in")
    out = tmp_path / "out"
    write_png(out / "notes.png", np.full((5, 5), 7, np.uint8))
    write_png(out / "img1.png", np.full((5, 5), 9, np.uint8))  # same stem as an input: a map would replace it
    before = _digest(out)
    assert _predict(inp, out) == 2
    assert _predict(inp, out, "--into-existing") == 2
    assert "img1.png" in capsys.readouterr().err
    assert _digest(out) == before
    (out / "img1.png").unlink()
    assert _predict(inp, out, "--into-existing") == 0  # beside a foreign file, with the flag
    assert (out / "notes.png").read_bytes() and _digest(out)["notes.png"] == before["notes.png"]
    assert {"img0.png", "img1.png", "img2.png"} <= set(os.listdir(out))


def test_predict_again_into_its_own_folder_is_fine(tmp_path) -> None:
    inp = _images(tmp_path / "in")
    out = tmp_path / "out"
    assert _predict(inp, out) == 0
    first = _digest(out)
    assert _predict(inp, out) == 0  # the folder holds only what predict wrote (and its manifest)
    assert _digest(out) == first


def test_label_masks_are_read_as_foreground_nonzero(tmp_path) -> None:
    from PIL import Image

    from defectbench.data.imageio import LABEL_MASK_NOTE, read_mask, read_mask_noted

    truth = np.zeros((20, 30), bool)
    truth[5:12, 8:20] = True
    write_png(tmp_path / "m255.png", truth.astype(np.uint8) * 255)
    write_png(tmp_path / "m01.png", truth.astype(np.uint8))
    write_png(tmp_path / "classes.png", truth.astype(np.uint8) * 3)
    pal = Image.fromarray(truth.astype(np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)  # index 1 is red: its luma is < 128
    pal.save(tmp_path / "palette.png")
    assert np.array_equal(read_mask(tmp_path / "m255.png"), truth)
    for name in ("m01.png", "classes.png", "palette.png"):
        mask, notes = read_mask_noted(tmp_path / name)
        assert np.array_equal(mask, truth), name
        assert LABEL_MASK_NOTE in notes
    grey = np.tile(np.arange(0, 120, dtype=np.uint8), (10, 1))  # 119 grey levels, all <= 128: not a mask
    write_png(tmp_path / "grey.png", grey)
    with pytest.raises(Exception, match="grey levels.*rescale it to 0"):
        read_mask(tmp_path / "grey.png")


def test_eval_scores_label_masks_like_0_255_masks_and_says_so(tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    truth = np.zeros((40, 40), np.uint8)
    truth[10:25, 5:30] = 1
    for i in range(2):
        write_png(tmp_path / "gt255" / f"x{i}.png", truth * 255)
        write_png(tmp_path / "gt01" / f"x{i}.png", truth)
        write_png(tmp_path / "pred" / f"x{i}.png", np.clip(truth * 200 + rng.integers(0, 40, truth.shape), 0, 255).astype(np.uint8))
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt255"), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt01"), "--json", str(tmp_path / "b.json")]) == 0
    a, b = (yaml.safe_load((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for key in ("S_alpha", "weighted_F", "MAE", "max_F"):
        assert a[key] == pytest.approx(b[key], abs=1e-12)
    assert a["weighted_F"] > 0.5
    assert any("label mask" in n for n in b["notes"])


def test_eval_names_missing_and_corrupt_maps_in_one_message(tmp_path, capsys) -> None:
    for i in range(12):
        write_png(tmp_path / "gt" / f"s{i:02d}.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "pred" / "s00.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "pred" / "s01.png").write_bytes(b"not a png")
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]) == 2
    err = capsys.readouterr().err
    assert "10 masks have no map" in err and "s02, s03, s04, s05, s06 and 5 more" in err
    assert "s01.png" in err and "could not be scored" in err  # the corrupt one, in the same message
    assert "s11" not in err


def test_written_files_respect_the_umask(tmp_path) -> None:
    from defectbench.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


def test_a_renamed_row_label_does_not_recompute_a_finished_job(tmp_path) -> None:
    from defectbench.bench import ResultsStore, load_config, run_experiment

    ds = make_dataset(tmp_path / "ds", 2, 3)
    maps = make_maps(ds, tmp_path / "maps", "good", seed=1)
    cfg_path = write_config(tmp_path / "c.yaml", ds, {"good": maps})
    first = run_experiment(load_config(cfg_path), tmp_path / "runs", progress=False)
    assert first.done == ["syn-test/good/seed0"]
    raw = yaml.safe_load(cfg_path.read_text())
    raw["methods"][0]["label"] = "Good maps (renamed)"
    cfg_path.write_text(yaml.safe_dump(raw))
    again = run_experiment(load_config(cfg_path), tmp_path / "runs", progress=False)
    assert again.already_done == ["syn-test/good/seed0"] and again.done == []
    with ResultsStore(tmp_path / "runs" / "synth" / "results.sqlite", readonly=True) as store:
        assert store.job("syn-test/good/seed0").label == "Good maps (renamed)"


def test_masks_are_matched_by_exact_stem(tmp_path, capsys) -> None:
    from defectbench.data.imageio import images_by_stem

    write_png(tmp_path / "gt" / "a1.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "gt" / "a[1].png", np.full((4, 4), 255, np.uint8))
    found = images_by_stem(tmp_path / "gt")
    assert found["a[1]"].name == "a[1].png" and found["a1"].name == "a1.png"
    write_png(tmp_path / "img" / "b[2].png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "gt2" / "b2.png", np.zeros((4, 4), np.uint8))
    code = main(["sam", "viz", str(tmp_path / "img" / "b[2].png"), "--gt-dir", str(tmp_path / "gt2"), "--out",
                 str(tmp_path / "v"), "--model", "mobile_sam", "--random-weights", "0"])
    assert code == 2 and "no mask with the stem 'b[2]'" in capsys.readouterr().err


def test_an_explicit_missing_sam_checkpoint_fails_and_dry_run_says_so(tmp_path, capsys, monkeypatch) -> None:
    from defectbench.bench import load_config, run_experiment

    ds = make_dataset(tmp_path / "ds", 2, 2)
    cfg = {"experiment": "x", "datasets": [{"name": f"folder:{ds}", "id": "syn", "tasks": [{"test": "test"}]}],
           "methods": [{"name": "sam-explicit", "type": "sam", "model": "vit_b", "select": "prior",
                        "checkpoint": str(tmp_path / "missing_vit_b.pth")},
                       {"name": "sam-default", "type": "sam", "model": "vit_b", "select": "prior"}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    assert main(["run", str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 2
    out = capsys.readouterr().out
    assert "sam-explicit/seed0  [ERROR]" in out and "missing_vit_b.pth" in out
    assert "sam-default/seed0  [would skip]" in out
    summary = run_experiment(load_config(path), tmp_path / "runs", progress=False)
    assert list(summary.failed) == ["syn-test/sam-explicit/seed0"] and "missing_vit_b.pth" in summary.failed["syn-test/sam-explicit/seed0"]
    assert list(summary.skipped) == ["syn-test/sam-default/seed0"]
