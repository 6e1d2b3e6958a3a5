"""The runner: jobs scored from maps, roles and splits on every row, no recomputation, failures isolated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defectbench.bench import ResultsStore, load_config, run_experiment
from defectbench.bench.executors import EXECUTORS, JobSkipped, check_no_training_images
from defectbench.bench.families.sod import checkpoint_training_ids
from defectbench.bench.status import experiment_status
from defectbench.data import load_dataset
from defectbench.data.imageio import read_gray8
from defectbench.errors import ConfigError, DataError
from defectbench.metrics import aggregate, score_image
from tests.bench.synthetic import classed_loader, write_config


def _run(cfg_path: Path, runs: Path, **kw):
    return run_experiment(load_config(cfg_path), runs, progress=False, **kw)


def test_maps_jobs_scores_and_roles(tmp_path, synth):
    cfg = write_config(tmp_path / "c.yaml", synth["dataset"], {"good": synth["good"], "leaky": synth["leaky"]},
                       extra=["free"])
    summary = _run(cfg, tmp_path / "runs", dataset_loader=classed_loader)
    assert sorted(summary.done) == ["syn-test/good/seed0", "syn-test/leaky/seed0"] and not summary.failed
    exp = tmp_path / "runs" / "synth"
    with ResultsStore(exp / "results.sqlite", readonly=True) as store:
        rows = store.image_rows(["syn-test/good/seed0"])
        meta = store.meta()
        job = store.job("syn-test/good/seed0")
    roles = {(r.role, r.split) for r in rows}
    assert roles == {("test", "test"), ("extra", "free"), ("train", "train")}
    assert sum(r.role == "test" for r in rows) == 6 and sum(r.role == "extra" for r in rows) == 3
    assert sum(r.role == "train" for r in rows) == 6
    assert {r.defect_class for r in rows if r.role == "extra"} == {"Free"}
    # per-image scores equal scoring the map files directly
    ds = classed_loader(f"folder:{synth['dataset']}")
    for r in rows[:4]:
        pred, _ = read_gray8(synth["good"] / f"{r.image_id}.png")
        ref = score_image(pred, ds[r.image_id].mask())
        assert r.scalar("S_alpha") == ref.S_alpha and r.scalar("weighted_F") == ref.weighted_F
        assert r.pred_area == pytest.approx(float((pred >= 128).mean()))
    # run metadata: versions, commit, config hash, device, timings
    assert job.versions.get("numpy") and job.device == "cpu" and meta["config_hash"] == load_config(cfg).config_hash()
    run_json = json.loads((exp / "syn-test/good/seed0/run.json").read_text())
    assert run_json["images"] == {"test": 6, "extra": 3, "train": 6}
    test_scores = [score_image(read_gray8(synth["good"] / f"{s.id}.png")[0], s.mask()) for s in ds.split("test")]
    assert run_json["summary"]["test"]["max_F"] == pytest.approx(aggregate(test_scores)["max_F"], abs=1e-6)
    lines = (exp / "syn-test/good/seed0/metrics.csv").read_text().splitlines()
    assert lines[0].startswith("image,split,role,class,S_alpha") and len(lines) == 1 + 15


def test_finished_jobs_are_never_recomputed(tmp_path, synth):
    cfg = write_config(tmp_path / "c.yaml", synth["dataset"], {"good": synth["good"], "poor": synth["poor"]})
    _run(cfg, tmp_path / "runs")
    csv = tmp_path / "runs/synth/syn-test/good/seed0/metrics.csv"
    stamp = csv.stat().st_mtime_ns
    again = _run(cfg, tmp_path / "runs")
    assert again.done == [] and sorted(again.already_done) == ["syn-test/good/seed0", "syn-test/poor/seed0"]
    assert csv.stat().st_mtime_ns == stamp
    # a changed setting is refused, then recomputed on request
    write_config(cfg, synth["dataset"], {"good": synth["poor"], "poor": synth["poor"]})
    with pytest.raises(ConfigError, match="syn-test/good/seed0.*--rerun-changed"):
        _run(cfg, tmp_path / "runs")
    redo = _run(cfg, tmp_path / "runs", rerun_changed=True)
    assert redo.done == ["syn-test/good/seed0"] and redo.already_done == ["syn-test/poor/seed0"]
    assert len(_run(cfg, tmp_path / "runs").already_done) == 2


def test_one_failure_does_not_stop_the_others(tmp_path, synth):
    broken = tmp_path / "partial"
    broken.mkdir()
    missing_stem = sorted(p.stem for p in (synth["dataset"] / "test" / "images").iterdir())[0]
    for p in sorted(synth["good"].glob("*.png")):
        if p.stem != missing_stem:
            (broken / p.name).write_bytes(p.read_bytes())
    maps = {"absent": tmp_path / "nope", "partial": broken, "good": synth["good"]}
    cfg = write_config(tmp_path / "c.yaml", synth["dataset"], maps)
    summary = _run(cfg, tmp_path / "runs")
    assert summary.done == ["syn-test/good/seed0"]
    assert "maps folder of method absent not found" in summary.failed["syn-test/absent/seed0"]
    assert f"no map for 1 of the 9 images of test split 'test' (first: {missing_stem})" in summary.failed["syn-test/partial/seed0"]
    st = experiment_status(tmp_path / "runs" / "synth")
    assert st.counts()["failed"] == 2 and st.counts()["done"] == 1 and not st.active
    assert all("\n" not in (j.error or "") for j in st.jobs)


def test_missing_dataset_fails_its_jobs_only(tmp_path, synth):
    cfg = load_config(write_config(tmp_path / "c.yaml", synth["dataset"], {"good": synth["good"]}))
    raw = dict(cfg.raw)
    raw["datasets"] = [*raw["datasets"], {"name": "sd900", "tasks": [{"train": "train", "test": "test"}]}]
    from defectbench.bench import parse_config

    summary = run_experiment(parse_config(raw), tmp_path / "runs", data_root=str(tmp_path / "empty"), progress=False)
    assert summary.done == ["syn-test/good/seed0"]
    assert "SD-saliency-900 not found" in summary.failed["sd900-test/good/seed0"]


def test_skipped_and_crashing_executors_are_recorded(tmp_path, synth, monkeypatch):
    def skip(job, ctx):
        raise JobSkipped("/ckpt/sam_vit_h_4b8939.pth: checkpoint not found; download it from https://x")

    def crash(job, ctx):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(EXECUTORS, "sam", skip)
    monkeypatch.setitem(EXECUTORS, "sod", crash)
    cfg = load_config(write_config(tmp_path / "c.yaml", synth["dataset"], {"good": synth["good"]}))
    raw = dict(cfg.raw)
    raw["methods"] = [*raw["methods"], {"name": "sam-h", "type": "sam", "model": "vit_h", "select": "oracle-combine"},
                      {"name": "net", "type": "sod", "model": "litenet"}]
    from defectbench.bench import parse_config

    summary = run_experiment(parse_config(raw), tmp_path / "runs", progress=False, device="cpu")
    assert "sam_vit_h_4b8939.pth" in summary.skipped["syn-test/sam-h/seed0"]
    assert summary.failed["syn-test/net/seed0"] == "ZeroDivisionError: boom"
    assert "ZeroDivisionError" in (tmp_path / "runs/synth/syn-test/net/seed0/error.txt").read_text()
    assert summary.done == ["syn-test/good/seed0"]


def test_training_images_are_never_scored(synth):
    ds = load_dataset(f"folder:{synth['dataset']}")
    from defectbench.bench.config import TaskSpec
    from defectbench.bench.executors import eval_items

    task = TaskSpec("syn", ds.name, "train", "test")
    items = eval_items(ds, task)
    assert {it.role for it in items} == {"test"}
    check_no_training_images(items, {s.id for s in ds.split("train")}, "x")
    with pytest.raises(DataError, match="trained on 1 of the images"):
        check_no_training_images(items, {items[0].sample.id}, "x")
    ids, desc = checkpoint_training_ids({"dataset": ds.name, "split": "train"}, ds)
    assert ids == {s.id for s in ds.split("train")} and "train" in desc
    assert checkpoint_training_ids({}, ds)[0] is None
    assert checkpoint_training_ids({"dataset": "mt", "split": "1to1-train"}, ds)[0] == set()


def test_status_reports_interrupted_jobs(tmp_path, synth):
    cfg = write_config(tmp_path / "c.yaml", synth["dataset"], {"good": synth["good"], "poor": synth["poor"]})
    _run(cfg, tmp_path / "runs")
    exp = tmp_path / "runs" / "synth"
    with ResultsStore(exp / "results.sqlite") as store:  # as a killed runner leaves it
        store.conn.execute("UPDATE jobs SET status='running', started=1 WHERE job_id='syn-test/poor/seed0'")
        store.conn.commit()
    st = experiment_status(exp)
    assert st.states["syn-test/poor/seed0"] == "interrupted"
    rows, cols, cells = st.matrix()
    assert rows == ["good", "poor"] and cols == ["syn-test"]
    assert cells[("poor", "syn-test")] == {"interrupted": 1} and cells[("good", "syn-test")] == {"done": 1}
    assert np.isclose(st.seconds_spent, sum(j.seconds for j in st.jobs if j.job_id != "syn-test/poor/seed0"))


def test_unfinished_job_with_new_settings_starts_clean(tmp_path, synth):
    cfg = write_config(tmp_path / "c.yaml", synth["dataset"], {"m": tmp_path / "missing"})
    assert _run(cfg, tmp_path / "runs").failed
    leftover = tmp_path / "runs/synth/syn-test/m/seed0/train/last.pt"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"from an attempt with other settings")
    write_config(cfg, synth["dataset"], {"m": synth["good"]})
    assert _run(cfg, tmp_path / "runs").done == ["syn-test/m/seed0"]
    assert not leftover.exists()
