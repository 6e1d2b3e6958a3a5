"""A small finished experiment for the report tests: classes, a defect-free split, seeds, SAM-like and outside maps.

Methods (all scored from synthetic maps, so every number can be recomputed independently from the files):

* ``net`` — type ``sod`` with seeds 0 and 1 (a fake executor serves maps ``net0`` / ``net1`` instead of training);
* ``sam-oracle`` — type ``sam`` with the oracle selection (fake executor, maps ``sam``; not run on ``free``);
* ``theirs`` — type ``maps``: a folder covering the whole dataset, perfect on the training split (a leak);
* ``sam-auto`` — type ``sam`` with a GT-free selection, skipped for lack of a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from defectbench.bench import ResultsStore, SpeedRecord, load_config, run_experiment
from defectbench.bench.executors import EXECUTORS, JobSkipped, Produced, eval_items
from tests.bench.synthetic import classed_loader, make_dataset, make_maps


def _fake(job, ctx):
    folder = Path(str(job.method.options["model_args"]["maps"]).format(seed=job.seed))
    dataset = ctx.dataset(job.task)
    items = eval_items(dataset, job.task, include_extra=not job.method.uses_gt)
    return Produced(folder, items, {"predict_s": 0.0}, {"training": "trained here on the fake"})


@pytest.fixture(scope="package")
def experiment(tmp_path_factory) -> dict:
    """Run the experiment and write its report once; return the paths the tests need."""
    root = tmp_path_factory.mktemp("report")
    ds = make_dataset(root / "ds", 8, 10, 4, size=56, seed=5)
    maps = {
        "net0": make_maps(ds, root / "maps" / "net0", "good", seed=10),
        "net1": make_maps(ds, root / "maps" / "net1", "good", seed=11),
        "sam": make_maps(ds, root / "maps" / "sam", "poor", seed=12),
        "theirs": make_maps(ds, root / "maps" / "theirs", "perfect", seed=13, test_quality="good"),
    }
    cfg = {
        "experiment": "rep",
        "datasets": [{"name": f"folder:{ds}", "id": "syn", "tasks": [{"train": "train", "test": "test"}],
                      "extra_eval": ["free"]}],
        "methods": [
            {"name": "net", "type": "sod", "model": "cpd", "seeds": [0, 1],
             "model_args": {"maps": str(root / "maps" / "net{seed}")}},
            {"name": "sam-oracle", "type": "sam", "model": "vit_h", "select": "oracle-combine", "label": "SAM ViT-H"},
            {"name": "theirs", "type": "maps", "path": str(maps["theirs"])},
            {"name": "sam-auto", "type": "sam", "model": "vit_h", "select": "prior"},
        ],
    }
    path = root / "rep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(EXECUTORS, "sod", _fake)

        def fake_sam(job, ctx):
            if not job.method.uses_gt:
                raise JobSkipped("/ck/sam_vit_h_4b8939.pth: checkpoint not found; download it")
            folder = maps["sam"]
            dataset = ctx.dataset(job.task)
            return Produced(folder, eval_items(dataset, job.task, include_extra=not job.method.uses_gt), {}, {})

        mp.setitem(EXECUTORS, "sam", fake_sam)
        summary = run_experiment(load_config(path), root / "runs", progress=False, device="cpu",
                                 dataset_loader=classed_loader)
    assert len(summary.done) == 4 and list(summary.skipped) == ["syn-test/sam-auto/seed0"], summary.failed
    exp = root / "runs" / "rep"
    with ResultsStore(exp / "results.sqlite") as store:
        store.put_speed(SpeedRecord("speed/sod-cpd_vgg", "net", "cpd_vgg", "forward", "cpu", "Test CPU (2 cores)", 352, 29.23,
                                    116.9, 3.5, 4, 1.2, 0.0))
        store.put_speed(SpeedRecord("speed/sam-vit_h", "sam-vit_h", "vit_h", "encoder", "cpu", "Test CPU (2 cores)",
                                    1024, 641.1, 2564.4, 0.02, 1, 50.0, 0.0))
    from defectbench.report import write_report

    index = write_report(exp)
    return {"root": root, "dataset": ds, "maps": maps, "exp": exp, "index": index, "report": index.parent}
