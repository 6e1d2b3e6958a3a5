"""Metric speed: PySODMetrics (single process) vs. defectbench on the 900 SD-saliency-900 images.

Both read the same PNG files from disk (ground truth and a deterministic degraded copy of it) and compute
the five metrics of the paper plus the adaptive/mean variants and the curves. The numbers must agree to 1e-6.

    .venv/bin/python benchmarks/metrics_speed.py [--data-root ../shared/datasets] [--repeat 1]

The last line is ``speedup: X`` = reference time / defectbench time with its default workers (the CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np


def degrade(gt8: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic imperfect prediction: blurred, shifted, noisy."""
    rng = np.random.default_rng(seed)
    soft = cv2.GaussianBlur(gt8, (0, 0), 3.0).astype(np.float32)
    soft = np.roll(soft, int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2)))
    soft += rng.normal(0, 20, soft.shape).astype(np.float32)
    return np.clip(soft, 0, 255).astype(np.uint8)


def run_reference(pairs: list[tuple[Path, Path]]) -> tuple[float, dict]:
    """Score with PySODMetrics, single process, reading files with OpenCV as its examples do."""
    warnings.simplefilter("ignore")
    import py_sod_metrics as M

    s, mae, em, wf, fm = M.Smeasure(), M.MAE(), M.Emeasure(), M.WeightedFmeasure(), M.Fmeasure()
    t0 = time.perf_counter()
    for pred_path, gt_path in pairs:
        pred = cv2.imread(str(pred_path), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        for m in (s, mae, em, wf, fm):
            m.step(pred, gt)
    e, f = em.get_results()["em"], fm.get_results()["fm"]
    out = {
        "S_alpha": s.get_results()["sm"], "MAE": mae.get_results()["mae"], "max_E": e["curve"].max(),
        "mean_E": e["curve"].mean(), "adp_E": e["adp"], "weighted_F": wf.get_results()["wfm"],
        "max_F": f["curve"].max(), "mean_F": f["curve"].mean(), "adp_F": f["adp"],
    }
    return time.perf_counter() - t0, out


def run_ours(pred_dir: Path, gt_dir: Path, workers: int | None) -> tuple[float, dict]:
    """Score with defectbench's folder evaluator."""
    from defectbench.evaluate import evaluate_folders

    t0 = time.perf_counter()
    res = evaluate_folders(pred_dir, gt_dir, workers=workers)
    return time.perf_counter() - t0, res.summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=os.environ.get("DEFECTBENCH_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")))
    ap.add_argument("--repeat", type=int, default=1, help="repeat each timing and keep the best")
    args = ap.parse_args()
    gt_dir = Path(args.data_root) / "SD-saliency-900" / "Ground truth"
    gts = sorted(gt_dir.glob("*.png"))
    if len(gts) != 900:
        print(f"expected 900 masks in {gt_dir}, found {len(gts)}", file=sys.stderr)
        return 2
    from defectbench.evaluate import default_workers

    with tempfile.TemporaryDirectory() as tmp:
        pred_dir = Path(tmp)
        for i, g in enumerate(gts):
            cv2.imwrite(str(pred_dir / g.name), degrade(cv2.imread(str(g), cv2.IMREAD_GRAYSCALE), i))
        pairs = [(pred_dir / g.name, g) for g in gts]
        ref_t, ref = min((run_reference(pairs) for _ in range(args.repeat)), key=lambda r: r[0])
        one_t, one = min((run_ours(pred_dir, gt_dir, 1) for _ in range(args.repeat)), key=lambda r: r[0])
        workers = default_workers()
        par_t, par = min((run_ours(pred_dir, gt_dir, None) for _ in range(args.repeat)), key=lambda r: r[0])
    worst = max(max(abs(one[k] - v), abs(par[k] - v)) for k, v in ref.items())
    print(f"images: {len(gts)} (SD-saliency-900, 200x200), CPU cores usable: {workers}")
    print(f"{'':28s}{'seconds':>10s}{'ms/image':>10s}")
    print(f"{'PySODMetrics 1.6, 1 process':28s}{ref_t:10.2f}{ref_t / len(gts) * 1e3:10.2f}")
    print(f"{'defectbench, 1 process':28s}{one_t:10.2f}{one_t / len(gts) * 1e3:10.2f}   speedup {ref_t / one_t:.2f}")
    print(f"{f'defectbench, {workers} workers':28s}{par_t:10.2f}{par_t / len(gts) * 1e3:10.2f}   speedup {ref_t / par_t:.2f}")
    print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in par.items() if k != "n"))
    print(f"largest difference to the reference over the 9 dataset numbers: {worst:.2e}")
    if worst > 1e-6:
        print("MISMATCH: numbers differ from the reference by more than 1e-6", file=sys.stderr)
        return 1
    print(f"speedup: {ref_t / par_t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
