"""benchmarks/matrix_estimate.py: its list-scheduling arithmetic and its per-job costs (no FLOP counting here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from defectbench.bench import expand_jobs, parse_config

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("matrix_estimate", ROOT / "benchmarks" / "matrix_estimate.py")
est = importlib.util.module_from_spec(spec)
sys.modules["matrix_estimate"] = est  # dataclasses look their module up
spec.loader.exec_module(est)


def _c(job_id, seconds, kind="sod", waits_for=None):
    return est.JobCost(job_id, kind, seconds, waits_for=waits_for)


def test_makespan_list_scheduling():
    costs = [_c("a", 4), _c("b", 3), _c("c", 2), _c("d", 1)]
    assert est.makespan(costs, 1) == 10
    assert est.makespan(costs, 2) == 5  # a | b, then c on b's device (3 -> 5), d on a's (4 -> 5)
    assert est.makespan(costs, 8) == 4
    # a SAM selection waits for its leader even when a device is free; a speed job waits for every other job
    sam = [_c("lead", 5, "sam"), _c("sel", 1, "sam", waits_for="lead"), _c("x", 1), _c("speed", 2, "speed")]
    assert est.makespan(sam, 4) == 5 + 1 + 2
    assert est.makespan([], 3) == 0


def test_job_costs_count_sam_proposals_once_per_task():
    sam = {"type": "sam", "model": "vit_h"}
    raw = {"experiment": "e", "seeds": [0], "datasets": [{"name": "sd900"}],
           "methods": [{"name": "o", "select": "oracle-combine", **sam}, {"name": "p", "select": "prior", **sam},
                       {"name": "l", "select": "learned", **sam},
                       {"name": "n", "type": "sod", "model": "litenet", "train": {"epochs": 10, "size": 224}}]}
    jobs = expand_jobs(parse_config(raw))
    flops = {"sam:vit_h": {"encoder": 4e12, "decoder_batch": 0.0, "params": 1e6},
             "sod:litenet@224": {"forward": 1e9, "params": 1e6}}
    a = {**est.ASSUMED, "sam_tflops": 1.0, "amg_post_s_per_batch": 0.0, "job_overhead_s": 0.0, "score_s_per_image": 0.0,
         "train_tflops": 1.0, "infer_tflops": 1.0, "loader_images_per_s": 1e12}
    costs = {c.job_id: c for c in est.job_costs(jobs, flops, a)}
    assert costs["sd900-test/o/seed0"].parts["proposals"] == pytest.approx(360 * 4.0)  # test images, 4 s each
    assert costs["sd900-test/p/seed0"].parts["proposals"] == 0  # cached by the oracle job
    assert costs["sd900-test/l/seed0"].parts["proposals"] == pytest.approx(540 * 4.0)  # the train split is new
    assert costs["sd900-test/p/seed0"].waits_for == "sd900-test/o/seed0"
    net = costs["sd900-test/n/seed0"].parts
    assert net["train"] == pytest.approx(3 * 1e9 * 0.9 * 540 * 10 / 1e12)
    assert net["predict"] == pytest.approx(1e9 * 360 / 1e12)
    assert costs["sd900-test/n/seed0"].disk["checkpoints"] == 1e6 * 16
