"""Real `sod` jobs: a tiny litenet trained by the runner, then reused as a checkpoint; leaks are refused."""

from __future__ import annotations

import json

import torch
import yaml

from defectbench.bench import ResultsStore, load_config, run_experiment


def _config(path, dataset, method: dict, name: str, **extra):
    path.write_text(yaml.safe_dump({"experiment": name, "datasets": [{"name": f"folder:{dataset}", "id": "syn"}],
                                    "methods": [method], **extra}))
    return load_config(path)


def _rows(exp):
    with ResultsStore(exp / "results.sqlite", readonly=True) as store:
        return {r.image_id: (r.role, r.split, r.scalar("S_alpha"), r.scalar("MAE")) for r in store.image_rows()}


def test_train_predict_score_then_checkpoint_reuse(tmp_path, synth):
    train = {"epochs": 1, "batch": 4, "size": 64, "pretrained": False, "val_fraction": 0}
    cfg = _config(tmp_path / "a.yaml", synth["dataset"], {"name": "lite", "type": "sod", "model": "litenet",
                                                         "train": train}, "trained",
                  speed={"device": "cpu", "image_size": 64, "max_seconds": 0.2})
    summary = run_experiment(cfg, tmp_path / "runs", progress=False, device="cpu")
    assert summary.done == ["syn-test/lite/seed0", "speed/sod-litenet"], summary.failed
    with ResultsStore(tmp_path / "runs/trained/results.sqlite", readonly=True) as store:
        (speed,) = store.speed_rows()
    assert speed.model == "litenet" and speed.image_size == 64 and speed.fps > 0 and 2 < speed.params_m < 10
    job_dir = tmp_path / "runs/trained/syn-test/lite/seed0"
    test_ids = sorted(p.stem for p in (synth["dataset"] / "test" / "images").iterdir())
    assert sorted(p.stem for p in (job_dir / "maps").iterdir()) == test_ids  # no training image is predicted
    rows = _rows(tmp_path / "runs/trained")
    assert sorted(rows) == test_ids and {v[:2] for v in rows.values()} == {("test", "test")}
    info = json.loads((job_dir / "run.json").read_text())["info"]
    assert info["training"].startswith("trained here on folder:") and info["checkpoint"].endswith("train/best.pt")
    assert json.loads((job_dir / "run.json").read_text())["timings"]["train_s"] > 0

    # the same weights as a checkpoint method give the same scores
    best = job_dir / "train" / "best.pt"
    cfg2 = _config(tmp_path / "b.yaml", synth["dataset"], {"name": "ck", "type": "sod", "model": "litenet",
                                                          "checkpoint": str(best)}, "reused")
    assert run_experiment(cfg2, tmp_path / "runs", progress=False, device="cpu").done == ["syn-test/ck/seed0"]
    assert _rows(tmp_path / "runs/reused") == rows

    # a checkpoint that records training on the test split is refused
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    ckpt["meta"]["split"] = "test"
    ckpt["meta"]["config"]["split"] = "test"
    leaky = tmp_path / "leaky.pt"
    torch.save(ckpt, leaky)
    cfg3 = _config(tmp_path / "c.yaml", synth["dataset"], {"name": "leak", "type": "sod", "model": "litenet",
                                                          "checkpoint": str(leaky)}, "leaky")
    out = run_experiment(cfg3, tmp_path / "runs", progress=False, device="cpu")
    assert "was trained on 9 of the images to score" in out.failed["syn-test/leak/seed0"]

    # a missing checkpoint fails with the file named
    cfg4 = _config(tmp_path / "d.yaml", synth["dataset"], {"name": "gone", "type": "sod", "model": "litenet",
                                                          "checkpoint": str(tmp_path / "nope.pt")}, "gone")
    out = run_experiment(cfg4, tmp_path / "runs", progress=False, device="cpu")
    assert f"{tmp_path / 'nope.pt'}: checkpoint of method gone not found" == out.failed["syn-test/gone/seed0"]
