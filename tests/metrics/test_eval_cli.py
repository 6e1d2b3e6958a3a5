"""``defectbench eval``: outputs, and every kind of bad input reported by name with a non-zero exit."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from defectbench.cli import main
from tests.conftest import REPO, needs_sd900, write_png
from tests.metrics.oracle import reference


@pytest.fixture
def folders(tmp_path, rng):
    """Five SD-saliency-900-named masks (In/Pa/Sc, train and test numbers) and blurred maps for them."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for stem in ("In_1", "In_70", "Pa_80", "Sc_5", "Sc_290"):
        g = np.zeros((40, 50), np.uint8)
        y, x = rng.integers(0, 25, 2)
        g[y : y + 12, x : x + 20] = 255
        write_png(gt_dir / f"{stem}.png", g)
        write_png(pred_dir / f"{stem}.png", cv2.GaussianBlur(g, (9, 9), 3))
    return pred_dir, gt_dir


def _eval(pred_dir, gt_dir, *extra):
    return main(["eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "--workers", "1", *extra])


def test_eval_json_csv_and_classes_match_the_oracle(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    assert _eval(pred_dir, gt_dir, "--json", str(js), "--csv", str(cs), "--by-class") == 0
    out = json.loads(js.read_text())
    keys = ["n", "S_alpha", "MAE", "max_E", "mean_E", "adp_E", "weighted_F", "max_F", "mean_F", "adp_F"]
    assert all(k in out for k in keys)
    stems = sorted(p.stem for p in gt_dir.iterdir())
    preds = [cv2.imread(str(pred_dir / f"{s}.png"), cv2.IMREAD_GRAYSCALE) for s in stems]
    gts = [cv2.imread(str(gt_dir / f"{s}.png"), cv2.IMREAD_GRAYSCALE) for s in stems]
    _, ref = reference(preds, gts)
    assert out["n"] == 5
    for k, v in ref.items():
        assert abs(out[k] - v) < 1e-9, k
    assert set(out["by_class"]) == {"In", "Pa", "Sc"} and out["by_class"]["Sc"]["n"] == 2
    assert out["by_split"]["train"]["n"] == 2 and out["by_split"]["test"]["n"] == 3  # In_1, Sc_5 are training images
    rows = list(csv.DictReader(cs.open()))
    assert [r["id"] for r in rows] == stems and {r["split"] for r in rows} == {"train", "test"}
    captured = capsys.readouterr()
    assert "WARNING: 2 of 5 scored images belong to a TRAINING split" in captured.err.replace("\n", " ")
    assert "class Pa" in captured.out


def test_missing_and_extra_maps_are_all_named(folders, capsys):
    pred_dir, gt_dir = folders
    (pred_dir / "In_1.png").unlink()
    (pred_dir / "Pa_80.png").unlink()
    write_png(pred_dir / "stray.png", np.zeros((40, 50), np.uint8))
    assert _eval(pred_dir, gt_dir) == 2
    err = capsys.readouterr().err
    assert "2 masks have no map" in err and "In_1" in err and "Pa_80" in err
    assert "1 maps in" in err and "stray.png" in err and "Traceback" not in err


def test_corrupt_and_mismatched_maps_are_all_named(folders, capsys):
    pred_dir, gt_dir = folders
    (pred_dir / "In_70.png").write_bytes(b"garbage")
    write_png(pred_dir / "Sc_5.png", np.zeros((20, 25), np.uint8))
    write_png(pred_dir / "Sc_290.png", np.zeros((41, 50), np.uint8))
    assert _eval(pred_dir, gt_dir) == 2
    err = capsys.readouterr().err
    assert "3 of 5 images could not be scored" in err
    assert "In_70.png: not a readable image" in err
    assert "Sc_5.png: map is 25x20 but its mask is 50x40" in err and "Sc_290.png: map is 50x41" in err


def test_resize_scales_maps_to_their_masks(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    g = cv2.imread(str(gt_dir / "Pa_80.png"), cv2.IMREAD_GRAYSCALE)
    small = cv2.resize(cv2.GaussianBlur(g, (9, 9), 3), (25, 20))
    write_png(pred_dir / "Pa_80.png", small)
    js = tmp_path / "r.json"
    assert _eval(pred_dir, gt_dir, "--resize", "--json", str(js)) == 0
    assert "1 maps: resized to the mask's size (bilinear): Pa_80.png" in capsys.readouterr().err
    stems = sorted(p.stem for p in gt_dir.iterdir())
    preds = [cv2.imread(str(pred_dir / f"{s}.png"), cv2.IMREAD_GRAYSCALE) for s in stems]
    preds = [cv2.resize(p, (50, 40), interpolation=cv2.INTER_LINEAR) for p in preds]
    _, ref = reference(preds, [cv2.imread(str(gt_dir / f"{s}.png"), cv2.IMREAD_GRAYSCALE) for s in stems])
    assert abs(json.loads(js.read_text())["S_alpha"] - ref["S_alpha"]) < 1e-9


def test_colour_and_16bit_maps_are_converted_with_a_note(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    g8 = cv2.imread(str(pred_dir / "In_70.png"), cv2.IMREAD_GRAYSCALE)
    write_png(pred_dir / "In_70.png", g8.astype(np.uint16) * 257)
    write_png(pred_dir / "Sc_5.png", np.stack([cv2.imread(str(pred_dir / "Sc_5.png"), 0)] * 3, axis=2))
    js = tmp_path / "r.json"
    assert _eval(pred_dir, gt_dir, "--json", str(js)) == 0
    notes = json.loads(js.read_text())["notes"]
    assert any("16-bit scaled to 8-bit" in n and "In_70.png" in n for n in notes)
    assert any("3 identical channels" in n and "Sc_5.png" in n for n in notes)


def test_two_maps_with_one_stem_are_refused(folders, capsys):
    pred_dir, gt_dir = folders
    write_png(pred_dir / "In_1.jpg", np.zeros((40, 50), np.uint8))
    assert _eval(pred_dir, gt_dir) == 2
    assert "In_1.jpg" in capsys.readouterr().err


def test_cli_error_is_one_message_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "defectbench.cli", "eval", "--pred", str(tmp_path / "no"), "--gt", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("defectbench: error:") and "Traceback" not in res.stderr
    assert "no: prediction folder not found" in res.stderr


@needs_sd900
def test_eval_against_a_dataset_split(tmp_path, data_root):
    from defectbench.data import load_dataset

    ds = load_dataset("sd900", data_root)
    pred_dir = tmp_path / "maps"
    for s in ds.split("test")[:360]:
        write_png(pred_dir / f"{s.id}.png", (s.mask() * 255).astype(np.uint8))
    js = tmp_path / "r.json"
    assert main(["eval", "--pred", str(pred_dir), "--dataset", "sd900", "--split", "test", "--data-root", str(data_root),
                 "--json", str(js), "--workers", "2"]) == 0
    out = json.loads(js.read_text())
    assert out["n"] == 360 and out["MAE"] == 0 and out["weighted_F"] == 1.0 and set(out["by_class"]) == {"In", "Pa", "Sc"}
    assert not any(n.startswith("WARNING") for n in out["notes"])
