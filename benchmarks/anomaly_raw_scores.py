"""What reading the 8-bit maps costs the anomaly rows: their anomaly metrics from raw scores beside the stored ones.

The report scores every method's 8-bit map (for the anomaly methods: raw scores through the score-to-map rule, which
sets every score below the calibration images' median to 0, then rounded to 256 levels). This script reloads each
fitted anomaly model of an experiment (``fit/anomaly.safetensors``; nothing is refitted), recomputes the raw score
maps of the images its job scored, quantises them to 65,536 levels between their overall minimum and maximum, and
computes image AUROC, pixel AUROC and AUPRO with the same code; it prints both.

    .venv/bin/python benchmarks/anomaly_raw_scores.py runs/anomaly [--data-root DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LEVELS = 65536


def main() -> None:
    """Print, per anomaly job, the stored (8-bit map) metrics and the raw-score ones."""
    from defectbench.bench.store import STORE_NAME, ResultsStore
    from defectbench.data import load_dataset
    from defectbench.methods.anomaly import AnomalyMethod
    from defectbench.metrics.anomaly import ANOMALY_METRICS, AnomalyAccumulator

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("experiment", type=Path)
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    with ResultsStore(args.experiment / STORE_NAME, readonly=True) as store:
        jobs = [j for j in store.jobs() if j.status == "done" and j.method_type == "anomaly" and j.kind == "eval"]
        ids = {j.job_id: [r.image_id for r in store.image_rows([j.job_id], with_scores=False)] for j in jobs}
    print("| method | maps | " + " | ".join(ANOMALY_METRICS) + " |")
    print("| --- | --- |" + " ---: |" * len(ANOMALY_METRICS))
    for j in jobs:
        run = json.loads((args.experiment / j.job_id / "run.json").read_text())
        dataset = load_dataset(j.dataset_name, args.data_root)
        method = AnomalyMethod.load(args.experiment / j.job_id / run["info"]["fitted"])
        samples = [dataset[i] for i in ids[j.job_id]]
        raw = [method.scores([s.image()])[0] for s in samples]
        lo, hi = min(float(m.min()) for m in raw), max(float(m.max()) for m in raw)
        acc = AnomalyAccumulator(levels=LEVELS)
        for m, s in zip(raw, samples, strict=True):
            acc.add(np.rint((m - lo) / (hi - lo) * (LEVELS - 1)).astype(np.int64), s.mask())
        got, stored = acc.result(), run["info"]["anomaly"]
        print(f"| {j.label} | 8-bit (stored) | " + " | ".join(f"{stored[k]:.3f}" for k in ANOMALY_METRICS) + " |")
        print(f"| {j.label} | raw scores | " + " | ".join(f"{got[k]:.3f}" for k in ANOMALY_METRICS) + " |")


if __name__ == "__main__":
    main()
