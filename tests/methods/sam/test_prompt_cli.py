"""``defectbench sam predict --prompt`` and ``sam viz --prompt`` end to end (reduced official SAM, random weights),
and their bad inputs: one line, exit status 2, before any work."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from defectbench.cli import main

from .helpers import register_tiny
from .test_predict import _synthetic_folder


@pytest.fixture(scope="module", autouse=True)
def tiny_model():
    register_tiny("test_tiny", img_size=128)
    yield


def _args(data, out, cache, *extra):
    return ["sam", "predict", "--model", "test_tiny", "--random-weights", "0", "--dataset", f"folder:{data}",
            "--split", "test", "--out", str(out), "--cache-dir", str(cache), "--device", "cpu", *extra]


def test_predict_prompt_modes_reuse_the_embeddings(tmp_path, capsys):
    data = _synthetic_folder(tmp_path / "data", n=3)
    cache = tmp_path / "cache"
    assert main(_args(data, tmp_path / "box", cache, "--prompt", "box-per-region")) == 0
    run = json.loads((tmp_path / "box" / "run.json").read_text())
    assert run["oracle"] is True and run["protocol"]["mode"] == "box-per-region"
    assert run["sam"]["this_run"]["encoder_calls"] == 3 and run["metrics"]["n"] == 3 and "ORACLE" in run["metrics"]["note"]
    assert len(list((tmp_path / "box" / "maps").glob("*.png"))) == 3
    rec = json.loads((tmp_path / "box" / "prompts" / "test0.json").read_text())
    assert len(rec["prompts"]) == 1 and len(rec["scores"][0]) == 3 and rec["pick_oracle"][0] is not None
    assert "ORACLE" in capsys.readouterr().err
    # another protocol on the same images: the cached embeddings, no encoder pass
    assert main(_args(data, tmp_path / "clicks", cache, "--prompt", "interactive", "--k", "3")) == 0
    run = json.loads((tmp_path / "clicks" / "run.json").read_text())
    assert run["sam"]["this_run"]["encoder_calls"] == 0 and run["sam"]["this_run"]["cached_embeddings"] == 3
    assert sorted(run["curve"]) == ["1", "2", "3"] and run["curve"]["3"]["n"] == 3
    assert "3 point(s)" in capsys.readouterr().out
    # the hybrid: prompts from the shipped litenet, GT-free
    assert main(_args(data, tmp_path / "hyb", cache, "--prompt", "box-all", "--prompts-from", "litenet:sd900",
                      "--threshold", "otsu")) == 0
    run = json.loads((tmp_path / "hyb" / "run.json").read_text())
    assert run["oracle"] is False and run["protocol"]["prompts_from"] == "litenet:sd900"
    assert run["protocol"]["threshold"] == "otsu" and run["light"]["calls"] == 3


@pytest.mark.parametrize("extra, culprit", [
    (["--prompt", "box-some"], "unknown prompt mode 'box-some'"),
    (["--prompt", "interactive", "--k", "0"], "k (interactive points)"),
    (["--prompt", "box-all", "--jitter", "1.5"], "jitter must be a fraction in [0, 1)"),
    (["--prompt", "box-all", "--jitter", "-0.1"], "jitter must be a fraction in [0, 1)"),
    (["--prompt", "box-all", "--prompts-from", "litenet:nrsd"], "no shipped weights 'nrsd'"),
    (["--prompt", "box-all", "--prompts-from", "nonet:sd900"], "unknown saliency model 'nonet'"),
    (["--prompt", "box-all", "--choice", "best"], "unknown mask choice 'best'"),
    (["--prompt", "box-all", "--prompts-from", "litenet:sd900", "--threshold", "2"], "threshold must be"),
])
def test_bad_prompt_inputs_exit_2_before_any_work(tmp_path, capsys, extra, culprit):
    data = _synthetic_folder(tmp_path / "data", n=1)
    out = tmp_path / "out"
    assert main(_args(data, out, tmp_path / "cache", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert culprit in " ".join(err.split()) and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_ground_truth_prompts_on_a_split_without_masks_exit_2(tmp_path, capsys):
    data = _synthetic_folder(tmp_path / "data", n=1)
    for i in range(2):
        (data / "good").mkdir(exist_ok=True)
        cv2.imwrite(str(data / "good" / f"ok{i}.png"), np.full((40, 40), 90, np.uint8))
    args = _args(data, tmp_path / "out", tmp_path / "cache", "--prompt", "box-all")
    args[args.index("test")] = "free"
    assert main(args) == 2
    assert "has no masks" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_viz_draws_the_prompts(tmp_path, capsys):
    data = _synthetic_folder(tmp_path / "data", n=1)
    img = data / "test" / "images" / "test0.png"
    base = ["sam", "viz", str(img), "--model", "test_tiny", "--random-weights", "0", "--out", str(tmp_path / "viz"),
            "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    assert main([*base, "--prompt", "box-per-region", "--gt-dir", str(data / "test" / "masks")]) == 0
    pic = cv2.cvtColor(cv2.imread(str(tmp_path / "viz" / "test0_sam_box-per-region.png")), cv2.COLOR_BGR2RGB)
    assert pic.shape == (72, 2 * 96 + 4, 3)
    assert (np.abs(pic[:, :96].astype(int) - [255, 220, 0]).sum(-1) == 0).sum() > 50  # the yellow box is drawn
    assert main([*base, "--prompt", "interactive", "--k", "3", "--gt-dir", str(data / "test" / "masks")]) == 0
    pic = cv2.cvtColor(cv2.imread(str(tmp_path / "viz" / "test0_sam_interactive.png")), cv2.COLOR_BGR2RGB)
    assert (np.abs(pic[:, :96].astype(int) - [40, 255, 40]).sum(-1) == 0).sum() > 3  # a positive point
    assert main([*base, "--prompt", "box-all"]) == 2  # ground-truth prompts without --gt-dir
    assert "--gt-dir" in capsys.readouterr().err
