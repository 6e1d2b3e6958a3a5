"""``defectbench sam predict`` / ``viz`` end to end, the proposal cache, and resuming after ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectbench.cli import main
from defectbench.errors import DefectbenchError
from defectbench.methods.sam.predict import SamMethod, predict_dataset

from tests.conftest import REPO, needs_sd900
from .helpers import register_tiny

AMG = {"points_per_side": 6, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.9}


@pytest.fixture(scope="module", autouse=True)
def tiny_model():
    """A reduced official SAM registered as ``test_tiny`` (random weights, 128 px input)."""
    register_tiny("test_tiny", img_size=128)
    register_tiny("test_tiny_small_masks", img_size=128, sharpen=100.0, shrink=30.0)
    yield


def _maps(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "maps").glob("*.png"))}


@needs_sd900
def test_predict_dataset_writes_maps_and_run_record_and_reuses_proposals(tmp_path, data_root):
    cache = tmp_path / "cache"
    rec = predict_dataset("test_tiny", "sd900", "test", "oracle-combine", tmp_path / "a", random_seed=0,
                          cache_dir=cache, amg_params=AMG, limit=3, data_root=data_root, progress=False)
    maps = sorted((tmp_path / "a" / "maps").glob("*.png"))
    assert [p.stem for p in maps] == ["In_61", "In_62", "In_63"]
    img = cv2.imread(str(maps[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (200, 200) and img.dtype == np.uint8 and set(np.unique(img)) <= {0, 255}
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run == json.loads(json.dumps(rec))
    assert run["oracle"] is True and "ORACLE" in run["label"] and "oracle" in run["method"]
    assert run["metrics"]["n"] == 3 and "pixel_max_f1" in run["metrics"] and "ORACLE" in run["metrics"]["note"]
    assert run["checkpoint"]["sha256"] == "random-seed0"
    assert run["this_run"]["sam_images"] == 3 and run["this_run"]["maps_written"] == 3
    assert run["config"]["amg_params"]["points_per_side"] == 6
    assert len(list(Path(run["cache"]["dir"]).glob("*.npz"))) == 3
    # the same command again: nothing to do
    again = predict_dataset("test_tiny", "sd900", "test", "oracle-combine", tmp_path / "a", random_seed=0,
                            cache_dir=cache, amg_params=AMG, limit=3, data_root=data_root, progress=False)
    assert again["this_run"]["maps_skipped"] == 3 and again["this_run"]["sam_images"] == 0
    # another strategy on the same proposals: no SAM run
    other = predict_dataset("test_tiny", "sd900", "test", "prior", tmp_path / "b", random_seed=0, cache_dir=cache,
                            amg_params=AMG, limit=3, data_root=data_root, progress=False)
    assert other["this_run"]["sam_images"] == 0 and other["this_run"]["cached_images"] == 3
    assert other["oracle"] is False and "oracle" not in other["method"]
    # other generator settings are other proposals
    changed = predict_dataset("test_tiny", "sd900", "test", "prior", tmp_path / "c", random_seed=0, cache_dir=cache,
                              amg_params={**AMG, "points_per_side": 4}, limit=1, data_root=data_root, progress=False)
    assert changed["this_run"]["sam_images"] == 1
    # a folder holding a run with other settings is not silently mixed
    with pytest.raises(DefectbenchError, match="other settings"):
        predict_dataset("test_tiny", "sd900", "test", "oracle-best", tmp_path / "a", random_seed=0, cache_dir=cache,
                        amg_params=AMG, limit=3, data_root=data_root, progress=False)


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from tests.methods.sam.helpers import register_tiny
register_tiny("test_tiny", img_size=128)
from defectbench.methods.sam.predict import predict_dataset
predict_dataset("test_tiny", "sd900", "test", "oracle-combine", {out!r}, random_seed=0, cache_dir={cache!r},
                amg_params={amg!r}, limit={limit}, data_root={data!r}, progress=False)
"""


def _proposal_files(cache: Path) -> list[Path]:
    """The proposal files of a cache (its ``embed-*`` folders hold the shared image embeddings)."""
    return [p for p in cache.glob("*/*/*.npz") if not p.parent.name.startswith("embed-")]


@needs_sd900
def test_resume_after_kill_9_recomputes_nothing_finished(tmp_path, data_root):
    limit = 6
    out, cache = tmp_path / "out", tmp_path / "cache"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(repo=str(REPO), out=str(out), cache=str(cache), amg=AMG, limit=limit,
                                          data=str(data_root)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    done: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        done = _proposal_files(cache)
        if len(done) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in _proposal_files(cache)}
    assert 2 <= len(finished) < limit
    maps_before = len(list((out / "maps").glob("*.png")))
    assert maps_before <= len(finished)
    rec = predict_dataset("test_tiny", "sd900", "test", "oracle-combine", out, random_seed=0, cache_dir=cache,
                          amg_params=AMG, limit=limit, data_root=data_root, progress=False)
    assert rec["this_run"]["sam_images"] == limit - len(finished)
    assert rec["this_run"]["maps_skipped"] == maps_before
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # finished proposals untouched
    fresh = predict_dataset("test_tiny", "sd900", "test", "oracle-combine", tmp_path / "fresh", random_seed=0,
                            cache_dir=tmp_path / "cache2", amg_params=AMG, limit=limit, data_root=data_root,
                            progress=False)
    assert fresh["this_run"]["sam_images"] == limit
    assert _maps(out) == _maps(tmp_path / "fresh") and len(_maps(out)) == limit


def _synthetic_folder(root: Path, n: int = 4) -> Path:
    """A folder dataset (train/ and test/) of textured images with one large bright defect each (about 60% of
    the image, so that some of a random model's scattered masks are mostly defect)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(n):
            img = (rng.normal(90, 12, (72, 96))).clip(0, 255).astype(np.uint8)
            mask = np.zeros((72, 96), np.uint8)
            y, x = rng.integers(0, 15), rng.integers(0, 20)
            mask[y:y + 55, x:x + 75] = 255
            img[mask > 0] = np.clip(img[mask > 0] + 70, 0, 255)
            for sub, arr in (("images", img), ("masks", mask)):
                (root / split / sub).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / split / sub / f"{split}{i}.png"), arr)
    return root


def test_cli_predict_learned_end_to_end(tmp_path, capsys):
    data = _synthetic_folder(tmp_path / "data")
    out = tmp_path / "out"
    args = ["sam", "predict", "--model", "test_tiny_small_masks", "--random-weights", "0", "--dataset",
            f"folder:{data}", "--split", "test", "--select", "learned", "--out", str(out), "--cache-dir",
            str(tmp_path / "cache"), "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh",
            "0", "--box-nms-thresh", "0.9", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ground-truth free" in printed and "pixel max-F1" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["oracle"] is False and run["selector"]["train_split"] == "train"
    assert run["selector"]["n_images"] == 4 and run["this_run"]["sam_images"] == 8
    sel = json.loads((out / "selector.json").read_text())
    assert sel["kind"] == "logistic" and sel["info"]["n_candidates"] > 0
    assert len(list((out / "maps").glob("*.png"))) == 4
    # --output score gives graded maps; --amg-config is read (and flags override it)
    cfg = tmp_path / "amg.yaml"
    cfg.write_text("amg:\n  points_per_side: 4\n  pred_iou_thresh: 0\n  stability_score_thresh: 0\n  box_nms_thresh: 0.5\n")
    assert main(args[:-8] + ["--amg-config", str(cfg), "--box-nms-thresh", "0.9", "--device", "cpu", "--select",
                             "prior", "--output", "score", "--out", str(tmp_path / "score")]) == 0
    run2 = json.loads((tmp_path / "score" / "run.json").read_text())
    assert run2["config"]["amg_params"]["box_nms_thresh"] == 0.9 and run2["this_run"]["sam_images"] == 0


def test_cli_viz_draws_proposals_and_selection(tmp_path, capsys):
    data = _synthetic_folder(tmp_path / "data", n=1)
    img = data / "test" / "images" / "test0.png"
    code = main(["sam", "viz", str(img), "--model", "test_tiny_small_masks", "--random-weights", "0",
                 "--select", "oracle-combine", "--gt-dir", str(data / "test" / "masks"), "--out", str(tmp_path / "viz"),
                 "--cache-dir", str(tmp_path / "cache"), "--points-per-side", "3", "--pred-iou-thresh", "0",
                 "--stability-score-thresh", "0", "--device", "cpu"])
    assert code == 0
    pic = cv2.imread(str(tmp_path / "viz" / "test0_sam.png"))
    assert pic.shape == (72, 2 * 96 + 4, 3)
    assert (pic[:, :96] != cv2.imread(str(img))).any()  # proposals drawn over the image
    assert "selected" in capsys.readouterr().out


def test_sam_method_protocol(tmp_path):
    from defectbench.methods.base import Method

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (50, 70), dtype=np.uint8)
    gt = np.zeros((50, 70), bool)
    gt[10:30, 20:50] = True
    amg = {"points_per_side": 3, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    oracle = SamMethod("test_tiny", "oracle-combine", random_seed=0, cache_dir=tmp_path, amg_params=amg)
    assert isinstance(oracle, Method) and "oracle" in oracle.name
    with pytest.raises(DefectbenchError, match="needs the image's ground-truth"):
        oracle.predict(image)
    m = oracle.predict(image, gt=gt)
    assert m.shape == (50, 70) and m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0}
    prior = SamMethod("test_tiny", "prior", random_seed=0, cache_dir=tmp_path, amg_params=amg, output="soft")
    soft = prior.predict(image)
    assert soft.shape == (50, 70) and 0.0 <= soft.min() and soft.max() <= 1.0
    assert prior.source.stats["cached_images"] == 1  # the oracle's proposals were reused
