"""``defectbench speed`` and a small ``defectbench run`` end to end on the GPU."""

from __future__ import annotations

import json

import pytest

from tests.gpu.common import DEVICE, ON_GPU, record_timing, sd900_root

pytestmark = pytest.mark.gpu

RUN_CONFIG = """\
experiment: gpu-smoke
device: {device}
seeds: [0]
datasets:
  - name: sd900
    tasks:
      - {{train: train, test: test}}
methods:
  - name: litenet-gpu
    type: sod
    model: litenet
    model_args: {{width: 16}}
    train: {{epochs: 1, batch: 8, size: 128, val_fraction: 0, pretrained: false{limit}}}
  - name: litenet-shipped
    type: sod
    model: litenet
    checkpoint: "shipped:sd900"
"""


def test_speed_on_the_device(tmp_path, capsys) -> None:
    from defectbench.cli import main

    out = tmp_path / "speed.json"
    rc = main(["speed", "litenet", "--device", DEVICE, "--image-size", "320", "--max-seconds", "3", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rows = json.loads(out.read_text())
    rows = rows if isinstance(rows, list) else rows.get("rows", rows.get("records", [rows]))
    fps = [float(r["fps"]) for r in rows if isinstance(r, dict) and "fps" in r]
    assert fps and all(f > 0 for f in fps)
    record_timing("speed", model="litenet", image_size=320, fps=round(max(fps), 1))


def test_small_run_end_to_end(tmp_path, capsys) -> None:
    from defectbench.cli import main

    root = sd900_root()
    config = tmp_path / "gpu.yaml"
    config.write_text(RUN_CONFIG.format(device=DEVICE, limit="" if ON_GPU else ", limit: 16"))
    rc = main(["run", str(config), "--runs-dir", str(tmp_path / "runs"), "--data-root", str(root)])
    printed = capsys.readouterr()
    assert rc == 0, printed.out[-2000:] + printed.err[-2000:]
    maps = sorted((tmp_path / "runs" / "gpu-smoke").glob("sd900-test/*/seed0/maps"))
    assert len(maps) == 2, maps
    assert all(len(list(m.glob("*.png"))) == 360 for m in maps)
