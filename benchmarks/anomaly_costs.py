"""The CPU cost of an experiment's anomaly rows, read from its job folders and results store (nothing is rerun).

For every finished ``anomaly`` job: the images it fitted on, patches and memory bank (PatchCore) or positions
(PaDiM), the fitted file's size, fit / calibration / prediction wall time, and the batch-1 FPS its speed job
measured; then the anomaly metrics of every method of the experiment. Markdown tables, for benchmarks/anomaly.md.

    .venv/bin/python benchmarks/anomaly_costs.py runs/anomaly
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    """Print the cost table and the anomaly-metric table of an experiment folder."""
    from defectbench.bench.store import STORE_NAME, ResultsStore

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("experiment", type=Path)
    args = p.parse_args()
    with ResultsStore(args.experiment / STORE_NAME, readonly=True) as store:
        jobs = [j for j in store.jobs() if j.status == "done"]
        speed = {r.method: r for r in store.speed_rows()}
    print("| method | fit images | patches | bank / positions | fitted file (MB) | fit (s) | calibrate (s, "
          "images) | predict (ms / image) | FPS, batch 1 | device |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for j in jobs:
        if j.method_type != "anomaly" or j.kind != "eval":
            continue
        run = json.loads((args.experiment / j.job_id / "run.json").read_text())
        m, t = run["info"]["method"], run["timings"]
        n_pred = sum(run["images"].values())
        fitted = (args.experiment / j.job_id / run["info"]["fitted"]).stat().st_size / 1e6
        bank = "×".join(map(str, m["bank"])) if "bank" in m else f"{m['positions']} × {m['dims']}-d Gaussians"
        rec = speed.get(j.method)
        fps, device = (f"{rec.fps:.2f}", rec.device_desc) if rec else ("–", "")
        print(f"| {j.label} | {m['fit_images']} | {m.get('patches', '')} | {bank} | {fitted:.1f} | {t.get('fit_s', 0):.0f} | "
              f"{t.get('calibrate_s', 0):.0f} ({m['rule']['calibration_images']}) | {1000 * t['predict_s'] / n_pred:.0f} | "
              f"{fps} | {device} |")
    print()
    print("| method | type | defect images | defect-free images | image AUROC | pixel AUROC | AUPRO |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for j in jobs:
        a = j.info.get("anomaly") if j.kind == "eval" else None
        if a:
            print(f"| {j.label} | {j.method_type} | {a['n_anomalous']} | {a['n_normal']} | {a['image_AUROC']:.3f} | "
                  f"{a['pixel_AUROC']:.3f} | {a['AUPRO']:.3f} |")


if __name__ == "__main__":
    main()
