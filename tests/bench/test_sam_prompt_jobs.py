"""Real ``sam_prompt`` jobs on a reduced SAM (official modules, tiny widths, random weights in the official file
format): oracle prompt rows on the test split only, the hybrid (shipped litenet, or a method of the run) on the
defect-free images too; the K-point curve; skipped rows naming the file to get; bad inputs refused before work."""

from __future__ import annotations

import json
from functools import partial

import cv2
import numpy as np
import pytest
import yaml

from defectbench.bench import ResultsStore, load_config, run_experiment
from defectbench.errors import ConfigError
from tests.bench.synthetic import classed_loader, make_dataset, make_maps
from tests.methods.sam.helpers import build_tiny_sam


@pytest.fixture
def tiny_sam_file(tmp_path):
    """Register a tiny SAM (``tiny_prompt_sam``) and write random weights as its checkpoint file."""
    from defectbench.methods.sam.checkpoints import save_random_checkpoint
    from defectbench.methods.sam.registry import ModelSpec, add_sam_model, remove_sam_model

    add_sam_model(ModelSpec("tiny_prompt_sam", "sam", "tiny SAM", "tiny_prompt_sam.pth", "(test only)", None, None,
                            0.0, partial(build_tiny_sam, 2)))
    try:
        yield save_random_checkpoint("tiny_prompt_sam", tmp_path / "ck" / "tiny_prompt_sam.pth")
    finally:
        remove_sam_model("tiny_prompt_sam")


def _config(tmp_path, ds, methods, **extra):
    cfg = {"experiment": "prompts", "datasets": [{"name": f"folder:{ds}", "id": "syn", "extra_eval": ["free"]}],
           "methods": methods, **extra}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_prompt_rows_hybrid_rows_curve_and_report(tmp_path, tiny_sam_file, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    ds = make_dataset(tmp_path / "ds", 2, 3, 2, size=40)
    good = make_maps(ds, tmp_path / "maps" / "good", "good", seed=1)
    for free in (ds / "test" / "masks").glob("Free_*.png"):  # the light maps find nothing on defect-free images
        cv2.imwrite(str(good / free.name), np.zeros((40, 40), np.uint8))
    ck = str(tiny_sam_file)
    base = {"type": "sam_prompt", "model": "tiny_prompt_sam", "checkpoint": ck}
    methods = [{"name": "light", "type": "maps", "path": str(good)},
               {"name": "box", **base, "prompt": "box-per-region"},
               {"name": "pt", **base, "prompt": "point-largest", "jitter": 0.2},
               {"name": "clicks", **base, "prompt": "interactive", "k": 3},
               {"name": "hyb", **base, "prompt": "box-per-region", "prompts_from": {"method": "light"}},
               {"name": "hyb-lite", **base, "prompt": "box-all", "prompts_from": {"model": "litenet", "weights": "sd900"},
                "fuse": "mean"},
               {"name": "absent", "type": "sam_prompt", "model": "tiny_prompt_sam", "prompt": "box-all"}]
    path = _config(tmp_path, ds, methods, speed={"device": "cpu", "image_size": 64, "max_seconds": 0.3,
                                                  "methods": ["hyb-lite", "box"]})
    summary = run_experiment(load_config(path), tmp_path / "runs", progress=False, device="cpu",
                             dataset_loader=classed_loader)
    expected = {f"syn-test/{m}/seed0" for m in ("light", "box", "pt", "clicks", "hyb", "hyb-lite")}
    assert expected <= set(summary.done), summary.failed
    assert "tiny_prompt_sam.pth" in summary.skipped["syn-test/absent/seed0"]
    with ResultsStore(tmp_path / "runs/prompts/results.sqlite", readonly=True) as store:
        rows = {m: store.image_rows([f"syn-test/{m}/seed0"]) for m in ("box", "clicks", "hyb")}
        jobs = {m: store.job(f"syn-test/{m}/seed0") for m in ("box", "clicks", "hyb", "hyb-lite")}
        speed = {r.method: r for r in store.speed_rows()}
    assert {r.role for r in rows["box"]} == {"test"} and jobs["box"].uses_gt and "oracle" in jobs["box"].label
    assert {r.split for r in rows["hyb"]} == {"test", "free"} and not jobs["hyb"].uses_gt
    free = [r for r in rows["hyb"] if r.split == "free"]
    assert len(free) == 2 and not any(r.pred_any for r in free)  # no region in the light map: an empty map
    info = jobs["clicks"].info
    assert sorted(info["curve"], key=int) == ["1", "2", "3"] and "S_alpha" in info["curve"]["3"]
    assert info["prompted"]["protocol"]["k"] == 3
    # one encoder pass per image for all prompt rows: later rows read the cached embeddings
    enc = {m: jobs[m].info["prompted"]["sam"]["this_run"]["encoder_calls"] for m in ("box", "clicks", "hyb")}
    assert enc["box"] == 3 and enc["clicks"] == 0 and enc["hyb"] == 0  # defect-free images: no prompt, no SAM
    assert jobs["hyb-lite"].info["prompts_from"]["model"] == "litenet"
    assert jobs["box"].info["choices"]["prompts_with_gt"] >= 3
    assert "decoder" in speed["hyb-lite"].what and "litenet" in speed["hyb-lite"].what and speed["box"].fps > 0
    # the report: prompt rows (oracle marked), the curve table and figure, the efficiency rows
    from defectbench.report import write_report

    index = write_report(tmp_path / "runs/prompts")
    tables = (index.parent / "tables.md").read_text()
    assert "box (oracle)" in tables and "Interactive points" in tables and "hyb-lite" in tables
    assert "SAM, oracle prompts" in tables and "SAM prompted by light" in tables and "skipped" in tables
    assert (index.parent / "figures" / "interactive_syn-test.png").is_file()


def _bad(tmp_path, ds, entry, match, tiny=True):
    methods = [{"name": "light", "type": "maps", "path": str(tmp_path)},
               {"name": "p", "type": "sam_prompt", "model": "vit_b", **entry}]
    with pytest.raises(ConfigError, match=match) as exc:
        load_config(_config(tmp_path, ds, methods))
    assert "\n" not in str(exc.value)


def test_bad_inputs_are_refused_when_the_config_is_read(tmp_path):
    ds = tmp_path / "ds"
    _bad(tmp_path, ds, {"prompt": "box-some"}, "unknown prompt mode 'box-some'")
    _bad(tmp_path, ds, {"prompt": "interactive", "k": 0}, "k .* >= 1")
    _bad(tmp_path, ds, {"prompt": "box-all", "jitter": 1.0}, r"jitter must be a fraction in \[0, 1\)")
    _bad(tmp_path, ds, {"prompt": "box-all", "prompts_from": {"method": "nope"}}, "'nope' is not among")
    _bad(tmp_path, ds, {"prompt": "box-all", "prompts_from": {"model": "litenet", "weights": "nrsd"}},
         "no shipped weights 'nrsd'")
    _bad(tmp_path, ds, {"prompt": "box-all", "prompts_from": {"model": "nonet", "weights": "sd900"}},
         "unknown saliency model")
    _bad(tmp_path, ds, {"prompt": "interactive", "prompts_from": {"method": "light"}}, "cannot take prompts")
    _bad(tmp_path, ds, {"prompt": "box-all", "threshold": 0.3}, "needs 'prompts_from'")


def test_ground_truth_prompts_on_a_split_without_masks_stop_before_any_work(tmp_path, tiny_sam_file, monkeypatch):
    from defectbench.cli import main

    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    ds = make_dataset(tmp_path / "ds", 2, 2, 0, size=32)
    for i in range(2):  # defect-free images without masks: the split ``free``
        cv2.imwrite(str((ds / "good").mkdir(exist_ok=True) or ds / "good" / f"ok{i}.png"), np.full((32, 32), 90, np.uint8))
    methods = [{"name": "box", "type": "sam_prompt", "model": "tiny_prompt_sam", "checkpoint": str(tiny_sam_file),
                "prompt": "box-all"}]
    path = _config(tmp_path, ds, methods)
    raw = yaml.safe_load(path.read_text())
    raw["datasets"][0].pop("extra_eval")
    raw["datasets"][0]["tasks"] = [{"train": "train", "test": "free"}]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="no masks"):
        run_experiment(load_config(path), tmp_path / "runs", progress=False, device="cpu")
    assert not (tmp_path / "runs" / "prompts" / "syn-free").exists()
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs2"), "--device", "cpu"]) == 2


def test_dry_run_lists_the_sam_checkpoint_and_the_light_weights(tmp_path, monkeypatch):
    from defectbench.bench.needs import check_config

    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    ds = make_dataset(tmp_path / "ds", 2, 2, 0, size=32)
    methods = [{"name": "h", "type": "sam_prompt", "model": "vit_h", "prompt": "box-per-region",
                "prompts_from": {"model": "litenet", "weights": "sd900"}}]
    path = _config(tmp_path, ds, methods)
    raw = yaml.safe_load(path.read_text())
    raw["datasets"][0].pop("extra_eval")
    path.write_text(yaml.safe_dump(raw))
    missing = check_config(load_config(path), path, loader=classed_loader)
    names = [m.name for m in missing]
    assert names == ["sam_vit_h_4b8939.pth"], names  # the shipped litenet weights are there
    assert "weights fetch" in missing[0].fix


def _hashes(tmp_path, ds, light_train):
    from defectbench.bench.config import parse_config
    from defectbench.bench.jobs import expand_jobs

    base = {"type": "sam_prompt", "model": "vit_b"}
    methods = [{"name": "light", "type": "sod", "model": "litenet", "train": light_train},
               {"name": "other", "type": "sod", "model": "litenet", "train": {"epochs": 1}},
               {"name": "box", **base, "prompt": "box-all"},
               {"name": "hyb", **base, "prompt": "box-per-region", "prompts_from": {"method": "light"}},
               {"name": "hyb-lite", **base, "prompt": "box-all", "prompts_from": {"model": "litenet", "weights": "sd900"}}]
    cfg = parse_config({"experiment": "fp", "seeds": [0, 1], "methods": methods,
                        "datasets": [{"name": f"folder:{ds}", "id": "syn"}]})
    return {j.id: j for j in expand_jobs(cfg)}


def test_a_hybrid_fingerprint_holds_its_source_method_spec(tmp_path):
    ds = make_dataset(tmp_path / "ds", 2, 3, 0, size=40)
    a, b = _hashes(tmp_path, ds, {"epochs": 1}), _hashes(tmp_path, ds, {"epochs": 2})
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k].spec_hash() != b[k].spec_hash()}
    assert changed == {"syn-test/light/seed0", "syn-test/light/seed1", "syn-test/hyb/seed0"}
    hyb = a["syn-test/hyb/seed0"]
    assert hyb.source is not None and hyb.source.id == "syn-test/light/seed0"  # the hybrid's seed
    assert hyb.spec()["prompts_from"] == a["syn-test/light/seed0"].spec()
    assert "prompts_from" not in a["syn-test/box/seed0"].spec() and a["syn-test/hyb-lite/seed0"].source is None


def test_a_source_method_change_reruns_the_hybrid_row(tmp_path, tiny_sam_file, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    ds = make_dataset(tmp_path / "ds", 2, 3, 0, size=40)
    good = make_maps(ds, tmp_path / "maps" / "good", "perfect")
    poor = make_maps(ds, tmp_path / "maps" / "poor", "poor", seed=3)
    base = {"type": "sam_prompt", "model": "tiny_prompt_sam", "checkpoint": str(tiny_sam_file)}

    def run(light: str, **kw):
        methods = [{"name": "light", "type": "maps", "path": light},
                   {"name": "box", **base, "prompt": "box-all"},
                   {"name": "hyb", **base, "prompt": "box-per-region", "prompts_from": {"method": "light"}}]
        return run_experiment(load_config(_config(tmp_path, ds, methods)), tmp_path / "runs", progress=False,
                              device="cpu", dataset_loader=classed_loader, **kw)

    def hyb_maps():
        return {p.name: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                for p in sorted((tmp_path / "runs/prompts/syn-test/hyb/seed0/maps").glob("*.png"))}

    assert "syn-test/hyb/seed0" in run(str(good)).done
    first = hyb_maps()
    # only the source is recomputed with its new folder: the hybrid, made from the old maps, is stale now
    assert run(str(poor), only=["*/light/*"], rerun_changed=True).done == ["syn-test/light/seed0"]
    with pytest.raises(ConfigError, match=r"1 finished job\(s\) .*first: syn-test/hyb/seed0"):
        run(str(poor))
    summary = run(str(poor), rerun_changed=True)
    assert summary.done == ["syn-test/hyb/seed0"]  # the prompt row without a source is not recomputed
    assert hyb_maps().keys() == first.keys() and any((hyb_maps()[k] != first[k]).any() for k in first)
    with ResultsStore(tmp_path / "runs/prompts/results.sqlite", readonly=True) as store:
        spec = json.loads(store.conn.execute("SELECT spec FROM jobs WHERE job_id = 'syn-test/hyb/seed0'").fetchone()[0])
    assert spec["prompts_from"]["method"]["options"]["path"] == str(poor)


def test_automatic_and_prompt_rows_share_one_encoder_pass_per_image(tmp_path, tiny_sam_file, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    ds = make_dataset(tmp_path / "ds", 2, 3, 0, size=40)
    ck = str(tiny_sam_file)
    methods = [{"name": "auto", "type": "sam", "model": "tiny_prompt_sam", "checkpoint": ck, "select": "oracle-best",
                "amg": {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}},
               {"name": "box", "type": "sam_prompt", "model": "tiny_prompt_sam", "checkpoint": ck, "prompt": "box-all"}]
    summary = run_experiment(load_config(_config(tmp_path, ds, methods)), tmp_path / "runs", progress=False,
                             device="cpu", dataset_loader=classed_loader)
    assert {"syn-test/auto/seed0", "syn-test/box/seed0"} <= set(summary.done), summary.failed
    with ResultsStore(tmp_path / "runs/prompts/results.sqlite", readonly=True) as store:
        auto, box = (store.job(f"syn-test/{m}/seed0").info for m in ("auto", "box"))
    assert auto["sam"]["this_run"]["encoder_calls"] == 3 and auto["sam"]["this_run"]["cached_embeddings"] == 0
    prompted = box["prompted"]["sam"]["this_run"]
    assert prompted["encoder_calls"] == 0 and prompted["cached_embeddings"] == 3  # the automatic job's embeddings
