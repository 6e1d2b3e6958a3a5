"""The labelled-images and corruption axes of an experiment: config, job matrix, training rule, store, report."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import yaml

from defectbench.bench import ResultsStore, expand_jobs, load_config, run_experiment
from defectbench.bench.config import parse_config
from defectbench.errors import ConfigError
from tests.bench.synthetic import classed_loader, make_dataset


def _raw(task: dict, methods: list | None = None, name: str = "sd900") -> dict:
    return {"experiment": "ax", "seeds": [0, 1, 2], "datasets": [{"name": name, "tasks": [task]}],
            "methods": methods or [{"name": "lite", "type": "sod", "model": "litenet"},
                                   {"name": "shipped", "type": "sod", "model": "litenet", "checkpoint": "shipped:{name}"},
                                   {"name": "outside", "type": "maps", "path": "maps/{dataset}"}]}


def test_the_matrix_has_one_job_per_size_and_seed_for_trained_methods_only():
    axis = {"sizes": [32, 8, "all"], "single_seed_above": 16, "steps": 50}
    jobs = expand_jobs(parse_config(_raw({"train": "train", "test": "test", "labels": axis,
                                          "corruptions": ["jpeg-10", "saltpepper-20"]})))
    ids = [j.id for j in jobs]
    assert ids[:6] == ["sd900-test/outside/seed0", "sd900-test/lite@8/seed0", "sd900-test/lite@8/seed1",
                       "sd900-test/lite@8/seed2", "sd900-test/lite@32/seed0", "sd900-test/lite@all/seed0"]
    assert "sd900-test/shipped/seed0" in ids and not any("shipped@" in i for i in ids)
    # corrupted tasks: the full-data models only; maps made elsewhere never saw the corrupted images
    assert [i for i in ids if "~jpeg-10" in i] == ["sd900-test~jpeg-10/lite@all/seed0", "sd900-test~jpeg-10/shipped/seed0"]
    spec = next(j for j in jobs if j.id == "sd900-test/lite@8/seed1").spec()
    assert spec["labels"] == {"n": 8, "steps": 50, "min_epochs": 8, "val_min": 100} and spec["seed"] == 1
    assert next(j for j in jobs if "~saltpepper-20" in j.id).spec()["task"]["corruption"] == "saltpepper-20"


def test_tasks_without_axes_keep_their_fingerprints():
    """Adding the axes changed nothing for old configs: the spec of a plain job is what older versions hashed."""
    from defectbench.bench.config import spec_hash

    (job, *_) = [j for j in expand_jobs(parse_config(_raw({"train": "train", "test": "test"}))) if j.method.name == "lite"]
    old = {"kind": "eval", "method": {"name": "lite", "type": "sod", "options": {"model": "litenet"}}, "seed": 0,
           "task": {"dataset_id": "sd900", "dataset": "sd900", "train": "train", "test": "test", "extra": []}}
    assert job.spec_hash() == spec_hash(old) and job.id == "sd900-test/lite/seed0"


@pytest.mark.parametrize("labels, message", [
    ([0, 8], "0 is not a number of labelled images"), ([-4], "-4 is not a number"), ([2.5], "2.5 is not a number"),
    (["many"], "'many' is not a number"), ([541], "541 labelled images asked of sd900/train, which has 540"),
    ([8, 8], "listed twice"), ({"sizes": [8], "steps": 0}, "'steps' must be a whole number >= 1"),
    ({"sizes": [8], "epochs": 3}, "unknown key 'epochs'"), ("8", "must be a list of image counts"),
])
def test_bad_label_counts_are_one_line(labels, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_raw({"train": "train", "test": "test", "labels": labels}))


def test_mt_sizes_are_checked_against_its_split():
    with pytest.raises(ConfigError, match="270 labelled images asked of mt/1to1-train, which has 196"):
        parse_config(_raw({"train": "1to1-train", "test": "1to1-test", "labels": [8, 270]}, name="mt"))


@pytest.mark.parametrize("corruptions, message", [(["fog-3"], "unknown corruption 'fog-3'"),
                                                  (["saltpepper-90"], "severity 90 does not exist"),
                                                  (["jpeg-10", "jpeg-10"], "listed twice"), ("jpeg-10", "non-empty list")])
def test_bad_corruptions_are_one_line(corruptions, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_raw({"train": "train", "test": "test", "corruptions": corruptions}))


def test_cli_refuses_a_bad_size_before_any_work(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(_raw({"train": "train", "test": "test", "labels": [8, 0]})))
    proc = subprocess.run([sys.executable, "-m", "defectbench", "run", str(cfg), "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "labels: 0 is not a number of labelled images" in proc.stderr and not (tmp_path / "runs" / "ax").exists()


def test_a_size_beyond_a_split_without_a_shipped_list_stops_the_run_before_any_job(tmp_path):
    ds = make_dataset(tmp_path / "ds", 6, 4)
    raw = {"experiment": "big", "datasets": [{"name": f"folder:{ds}", "id": "syn",
                                              "tasks": [{"train": "train", "test": "test", "labels": [4, 7]}]}],
           "methods": [{"name": "lite", "type": "sod", "model": "litenet", "train": {"pretrained": False}}]}
    with pytest.raises(ConfigError, match="7 labelled images asked of folder:.* which has 6; use at most 6"):
        run_experiment(parse_config(raw), tmp_path / "runs", progress=False, device="cpu")
    with ResultsStore(tmp_path / "runs/big/results.sqlite", readonly=True) as store:
        assert {j.status for j in store.jobs()} == {"pending"}


def test_labels_and_corruptions_end_to_end(tmp_path):
    """A tiny litenet on 4 and all 12 labelled images, a corruption, the store's columns and the report's parts."""
    ds = make_dataset(tmp_path / "ds", 12, 4, size=64)
    train = {"size": 64, "batch": 4, "pretrained": False, "threads": 1}
    raw = {"experiment": "axes", "seeds": [0, 1],
           "datasets": [{"name": f"folder:{ds}", "id": "syn", "tasks": [{
               "train": "train", "test": "test", "corruptions": ["saltpepper-20"],
               "labels": {"sizes": [4, "all"], "steps": 6, "min_epochs": 2, "val_min": 10, "single_seed_above": 4}}]}],
           "methods": [{"name": "lite", "type": "sod", "model": "litenet", "model_args": {"width": 16}, "train": train}]}
    (tmp_path / "axes.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "axes.yaml")
    summary = run_experiment(cfg, tmp_path / "runs", progress=False, device="cpu", dataset_loader=classed_loader)
    assert summary.done == ["syn-test/lite@4/seed0", "syn-test/lite@4/seed1", "syn-test/lite@all/seed0",
                            "syn-test~saltpepper-20/lite@all/seed0"], summary.failed
    exp = tmp_path / "runs/axes"

    # 4 labels: one step per epoch, so max(ceil(6 / 1), 2) = 6 epochs, no validation; the subset is the split rule's
    from defectbench.train.labels import labelled_subset

    run4 = json.loads((exp / "syn-test/lite@4/seed1/run.json").read_text())
    assert run4["info"]["labels"] == {"labels": 4, "n_train": 4, "n_val": 0, "val_fraction": 0.0, "epochs": 6,
                                      "steps": 6, "rule": run4["info"]["labels"]["rule"]}
    trained = json.loads((exp / "syn-test/lite@4/seed1/train/run.json").read_text())
    expected = [s.id for s in labelled_subset(classed_loader(f"folder:{ds}").split("train"), 4, 1)]
    assert trained["data"]["train_ids"] == expected and len(trained["history"]) == 6
    assert {i.split("_")[0] for i in expected} == {"Ab", "Cd"}  # both classes among 4 images
    seed0 = json.loads((exp / "syn-test/lite@4/seed0/train/run.json").read_text())["data"]["train_ids"]
    assert seed0 != expected
    # all 12 >= val_min 10: a 10 % stratified hold-out (one per class), 10 training images, 2 steps per epoch
    plan = json.loads((exp / "syn-test/lite@all/seed0/run.json").read_text())["info"]["labels"]
    assert (plan["labels"], plan["n_train"], plan["n_val"], plan["epochs"]) == (12, 10, 2, 3)

    # the corrupted job reused the clean job's training and scored the corrupted copies, written once
    bad = exp / "syn-test~saltpepper-20/lite@all/seed0"
    assert not (bad / "train").exists()
    assert json.loads((bad / "run.json").read_text())["info"]["checkpoint"] == "syn-test/lite@all/seed0/train/best.pt"
    assert sorted(p.name for p in (exp / "corrupted/syn/test/saltpepper-20").iterdir()) == sorted(
        p.name for p in (ds / "test/images").iterdir())
    with ResultsStore(exp / "results.sqlite", readonly=True) as store:
        got = {(j.job_id, j.task, j.labels, j.corruption) for j in store.jobs()}
        bad_rows = store.image_rows(["syn-test~saltpepper-20/lite@all/seed0"])
    assert ("syn-test~saltpepper-20/lite@all/seed0", "syn-test", "all", "saltpepper-20") in got
    assert ("syn-test/lite@4/seed0", "syn-test", "4", None) in got
    assert all("corrupted" in r.image_path for r in bad_rows) and all("/masks/" in r.mask_path for r in bad_rows)

    # the report: the labels table, labels needed, the robustness table and the learning-curve figure
    from defectbench.report import build_tables, load_results, write_report

    results = load_results(exp)
    assert [m.label for m in results.methods["syn-test"]] == ["lite"]  # the all-labels row in the main table
    tables = {t.key: t for t in build_tables(results)["syn-test"]}
    lab = tables["labels_syn-test"]
    assert [r.cells["labels"].text for r in lab.rows if r.group == "lite"] == ["4", "12 (all)"]
    assert [r.cells["seeds"].text for r in lab.rows if r.group == "lite"] == ["0,1", "0"]
    four = load_results(exp).label_runs["syn-test"]["lite"]["4"]
    assert lab.rows[0].cells["S_alpha"].value == pytest.approx(four.stat("S_alpha").mean)
    assert lab.rows[0].cells["S_alpha"].std is not None
    rob = tables["robustness_syn-test"]
    assert [r.cells["corruption"].text for r in rob.rows] == ["clean", "saltpepper-20"]
    clean, noisy = rob.rows[0].cells["S_alpha"].value, rob.rows[1].cells["S_alpha"].value
    assert rob.rows[1].cells["d_S_alpha"].text == f"{noisy - clean:+.3f}"
    assert "labels_needed_syn-test" not in tables  # no SAM row here and no paper table for a folder dataset
    index = write_report(exp)
    assert (exp / "report/figures/labels_syn-test.png").stat().st_size > 5000
    assert "labels_syn-test.png" in index.read_text()


def test_old_stores_without_the_axis_columns_stay_readable(tmp_path):
    from defectbench.bench.store import STORE_NAME

    path = tmp_path / STORE_NAME
    cfg = parse_config(_raw({"train": "train", "test": "test"}))
    with ResultsStore(path) as store:
        store.sync_jobs(expand_jobs(cfg))
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE jobs DROP COLUMN labels")
    con.execute("ALTER TABLE jobs DROP COLUMN corruption")
    con.commit()
    con.close()
    with ResultsStore(path, readonly=True) as store:
        assert {(j.labels, j.corruption) for j in store.jobs()} == {(None, None)}
    with ResultsStore(path) as store:  # opened for writing: the columns come back, empty
        assert {"labels", "corruption"} <= {r[1] for r in store.conn.execute("PRAGMA table_info(jobs)")}
        assert len(store.jobs()) == 5  # lite x 3 seeds, shipped, outside
