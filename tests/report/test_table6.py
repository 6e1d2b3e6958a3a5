"""The report of a run on MT 7:3 is the paper's Table 6: our SAM, ICON, EDRNet and CSEPNet rows beside its rows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from defectbench.bench import load_config, run_experiment
from defectbench.bench.executors import EXECUTORS, Produced, eval_items
from defectbench.data import load_dataset
from tests.conftest import DATA, needs_mt, write_png


def _maps(out: Path, samples, quality: float, seed: int) -> Path:
    """Blurred, noisy copies of the ground truth (``quality`` in (0, 1]: higher is closer)."""
    rng = np.random.default_rng(seed)
    for s in samples:
        gt = s.mask().astype(np.float32)
        noisy = quality * cv2.GaussianBlur(gt, (7, 7), 2) + (1 - quality) * rng.random(gt.shape, dtype=np.float32)
        write_png(out / f"{s.id}.png", np.clip(noisy * 255, 0, 255).astype(np.uint8))
    return out


@needs_mt
def test_mt_7to3_report_is_table6_with_the_papers_four_rows(tmp_path) -> None:
    ds = load_dataset("mt", DATA)
    test = ds.split("7to3-test")
    folders = {name: _maps(tmp_path / name, test, q, i) for i, (name, q) in
               enumerate([("icon", 0.9), ("edrnet", 0.85), ("csepnet", 0.8), ("sam", 0.5)])}
    cfg = {"experiment": "t6", "datasets": [{"name": "mt", "tasks": [{"train": "7to3-train", "test": "7to3-test"}]}],
           "methods": [{"name": n, "label": label, "type": "sod", "model": n} for n, label in
                       (("icon", "ICON"), ("edrnet", "EDRNet"), ("csepnet", "CSEPNet"))]
           + [{"name": "sam", "label": "SAM ViT-H", "type": "sam", "model": "vit_h", "select": "oracle-combine"}]}
    path = tmp_path / "t6.yaml"
    path.write_text(yaml.safe_dump(cfg))

    def fake(job, ctx):  # maps served from the folders above instead of training / running SAM
        folder = folders[job.method.name]
        return Produced(folder, eval_items(ctx.dataset(job.task), job.task), {}, {})

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(EXECUTORS, "sod", fake)
        mp.setitem(EXECUTORS, "sam", fake)
        summary = run_experiment(load_config(path), tmp_path / "runs", data_root=str(DATA), progress=False, device="cpu")
    assert len(summary.done) == 4, summary.failed
    from defectbench.report import write_report

    index = write_report(tmp_path / "runs" / "t6", figures=False)
    md = (index.parent / "tables.md").read_text() if (index.parent / "tables.md").exists() else index.read_text()
    block = md[md.index("the paper's Table 6"):]
    block = block[:block.index("\n#", 1)] if "\n#" in block[1:] else block
    for label in ("ICON", "EDRNet", "CSEPNet", "SAM ViT-H"):
        assert label in block  # ours
    for row in ("| ICON | NS (PAMI)", "| EDRNet | IS (TIM)", "| CSEPNet | IS (Meas)", "| SAM | - (arXiv)"):
        assert row in block.replace("  ", " "), row  # the paper's
    assert "0.896" in block  # the paper's ICON S-measure on MT 7:3
