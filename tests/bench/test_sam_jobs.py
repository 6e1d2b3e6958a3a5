"""Real `sam` jobs on a reduced SAM architecture (official modules, tiny widths, random weights in the official
file format): oracle selections are scored on the test split only, GT-free ones on extra splits too; a missing
checkpoint skips the job with the file to get."""

from __future__ import annotations

from functools import partial

import pytest
import yaml

from defectbench.bench import ResultsStore, load_config, run_experiment
from tests.bench.synthetic import classed_loader, make_dataset
from tests.methods.sam.helpers import build_tiny_sam

AMG = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture
def tiny_sam_file(tmp_path):
    """Register a tiny SAM (``tiny_job_sam``) and write random weights as its checkpoint file."""
    from defectbench.methods.sam.checkpoints import save_random_checkpoint
    from defectbench.methods.sam.registry import ModelSpec, add_sam_model, remove_sam_model


    add_sam_model(ModelSpec("tiny_job_sam", "sam", "tiny SAM", "tiny_job_sam.pth", "(test only)", None, None, 0.0,
                            partial(build_tiny_sam, 2)))
    try:
        yield save_random_checkpoint("tiny_job_sam", tmp_path / "ck" / "tiny_job_sam.pth")
    finally:
        remove_sam_model("tiny_job_sam")


def test_sam_jobs_oracle_and_gt_free(tmp_path, tiny_sam_file, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "cache"))
    ds = make_dataset(tmp_path / "ds", 2, 3, 2, size=40)
    cfg = {"experiment": "sam", "datasets": [{"name": f"folder:{ds}", "id": "syn", "extra_eval": ["free"]}],
           "methods": [{"name": "o", "type": "sam", "model": "tiny_job_sam", "select": "oracle-combine",
                        "checkpoint": str(tiny_sam_file), "amg": AMG},
                       {"name": "p", "type": "sam", "model": "tiny_job_sam", "select": "prior",
                        "checkpoint": str(tiny_sam_file), "amg": AMG},
                       {"name": "absent", "type": "sam", "model": "tiny_job_sam", "select": "prior", "amg": AMG}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    summary = run_experiment(load_config(path), tmp_path / "runs", progress=False, device="cpu",
                             dataset_loader=classed_loader)
    assert sorted(summary.done) == ["syn-test/o/seed0", "syn-test/p/seed0"], summary.failed
    assert "tiny_job_sam.pth" in summary.skipped["syn-test/absent/seed0"]
    with ResultsStore(tmp_path / "runs/sam/results.sqlite", readonly=True) as store:
        oracle = store.image_rows(["syn-test/o/seed0"])
        prior = store.image_rows(["syn-test/p/seed0"])
        job = store.job("syn-test/o/seed0")
    assert {r.role for r in oracle} == {"test"} and len(oracle) == 3
    assert {(r.role, r.split) for r in prior} == {("test", "test"), ("extra", "free")} and len(prior) == 5
    assert job.uses_gt and "oracle" in job.label and job.info["sam"]["oracle"] is True
    assert (tmp_path / "runs/sam/syn-test/p/seed0/maps").is_dir()
    # a second run recomputes nothing
    again = run_experiment(load_config(path), tmp_path / "runs", progress=False, device="cpu",
                           dataset_loader=classed_loader)
    assert sorted(again.already_done) == ["syn-test/o/seed0", "syn-test/p/seed0"] and not again.done
