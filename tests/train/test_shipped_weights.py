"""The litenet weights shipped in the package load with no download and reproduce the benchmark table's
per-image numbers (``benchmarks/results/litenet_<dataset>_test.csv``, written by ``defectbench eval --csv``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from defectbench.cli import main
from defectbench.methods.saliency.checkpoint import load_trained, shipped_weights_path
from defectbench.methods.saliency.predictor import SaliencyPredictor

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
# dataset name -> (test split, a few test ids spread over the classes)
CASES = {
    "sd900": ("test", ["In_61", "In_100", "Pa_161", "Pa_200", "Sc_261", "Sc_300"]),
    "mt": ("1to1-test", None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_weights_load_small_and_fp16(name: str) -> None:
    path = shipped_weights_path("litenet", name)
    assert path.stat().st_size < 8 * 2**20
    model, info = load_trained(path, expected_model="litenet")
    assert info["meta"]["dataset"] == name and info["meta"]["half"] is True
    assert info["input_size"] % 32 == 0
    assert not model.training


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_weights_reproduce_table_rows(name: str, sd900_root) -> None:
    from defectbench.data import load_dataset
    from defectbench.metrics import score_image

    split, ids = CASES[name]
    table = {row["id"]: row for row in csv.DictReader(open(RESULTS / f"litenet_{name}_test.csv"))}
    ds = load_dataset(name, sd900_root)
    test_ids = [s.id for s in ds.split(split)]
    assert set(table) == set(test_ids), "the CSV must hold exactly the test split"
    ids = ids or test_ids[:: max(1, len(test_ids) // 6)][:6]
    predictor = SaliencyPredictor.from_shipped("litenet", name)
    samples = [ds[i] for i in ids]
    maps = predictor.predict_batch([s.image() for s in samples])
    for s, prob in zip(samples, maps):
        scores = score_image(np.rint(prob * 255).astype(np.uint8), s.mask()).scalars()
        for key in ("S_alpha", "MAE", "weighted_F"):
            assert scores[key] == pytest.approx(float(table[s.id][key]), abs=2e-3), (s.id, key)


def test_cli_predicts_with_shipped_weights(tmp_path, sd900_root) -> None:
    src = sd900_root / "SD-saliency-900" / "Source Images"
    (tmp_path / "in").mkdir()
    for stem in ("Sc_261", "In_61"):
        (tmp_path / "in" / f"{stem}.bmp").write_bytes((src / f"{stem}.bmp").read_bytes())
    rc = main(["predict", "--model", "litenet", "--weights", "sd900", "--input", str(tmp_path / "in"),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["In_61.png", "Sc_261.png"]
