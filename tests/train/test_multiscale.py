"""Multi-scale training (``train_sizes``): which sizes the batches get, that the model really sees them, that
validation and the checkpoint stay at ``size``, and that bad sizes are refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from defectbench.errors import ConfigError
from defectbench.train import TrainConfig, train_model
from defectbench.train.data import batch_size_at


def test_batch_size_is_a_pure_function_covering_every_size() -> None:
    drawn = [batch_size_at((64, 96, 128), 224, 0, epoch, step) for epoch in range(3) for step in range(20)]
    assert set(drawn) == {64, 96, 128}
    again = [batch_size_at((64, 96, 128), 224, 0, epoch, step) for epoch in range(3) for step in range(20)]
    assert drawn == again
    other_seed = [batch_size_at((64, 96, 128), 224, 1, epoch, step) for epoch in range(3) for step in range(20)]
    assert drawn != other_seed
    assert batch_size_at(None, 224, 0, 5, 3) == 224
    assert batch_size_at((), 224, 0, 5, 3) == 224


@pytest.mark.parametrize("sizes", [(), (100,), (64, 0), (64, True), (64, 96.0), "64"])
def test_bad_sizes_are_refused(sizes) -> None:
    with pytest.raises(ConfigError, match="train_sizes"):
        TrainConfig.for_model("litenet", {"train_sizes": sizes})


def test_sizes_round_trip_through_the_config_dict() -> None:
    cfg = TrainConfig.for_model("litenet", {"train_sizes": [64, 96], "size": 64})
    assert cfg.train_sizes == (64, 96)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.train_sizes == (64, 96) and again.to_dict() == cfg.to_dict()


def test_training_batches_take_the_drawn_sizes_validation_stays_at_size(tmp_path, sd900_root, monkeypatch) -> None:
    from defectbench.train import trainer

    seen: list[int] = []
    build = trainer._build

    def recording_build(cfg):
        model = build(cfg)
        model.register_forward_pre_hook(lambda m, args: seen.append(int(args[0].shape[-1])))
        return model

    monkeypatch.setattr(trainer, "_build", recording_build)
    cfg = TrainConfig.for_model("litenet", dict(model_kwargs={"width": 16}, epochs=3, batch=2, size=64,
                                                train_sizes=(64, 96), limit=10, val_fraction=0.2, warmup_epochs=0,
                                                data_root=str(sd900_root), threads=1))
    result = train_model(cfg, out_dir=tmp_path / "run", progress=False)
    steps = [batch_size_at(cfg.train_sizes, 64, 0, e, b) for e in range(3) for b in range(4)]
    assert set(steps) == {64, 96}  # 8 training images, batch 2: 4 steps per epoch
    # training forwards in order, each validation pass (2 images at 64, one batch) after its epoch's 4 steps
    expected = []
    for e in range(3):
        expected += steps[4 * e:4 * e + 4] + [64]
    assert seen == expected
    ckpt = torch.load(result.best_checkpoint, weights_only=True)
    assert ckpt["input_size"] == 64
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["train_sizes"] == [64, 96]


def test_cli_flag_rejects_sizes_not_multiple_of_32(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "defectbench", "train", "--model", "litenet", "--train-sizes", "64,100",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "64,100" in proc.stderr and "multiples of 32" in proc.stderr and "Traceback" not in proc.stderr
