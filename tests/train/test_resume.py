"""A training run killed with SIGKILL after an epoch checkpoint and resumed ends bit-for-bit equal to an
uninterrupted run; resuming with other options, or reusing a run folder without --resume, is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from defectbench.errors import ConfigError
from defectbench.train import TrainConfig, train_model

EPOCHS = 3


def _cmd(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "defectbench.cli", "train", "--model", "litenet", "--model-args", '{"width": 16}',
           "--dataset", "sd900", "--split", "train", "--limit", "12", "--val-fraction", "0.25",
           "--epochs", str(EPOCHS), "--warmup-epochs", "0", "--lr", "0.01", "--batch", "4", "--size", "64", "--seed", "3", "--threads", "1",
           "--data-root", str(data), "--out", str(out), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, sd900_root) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cmd(sd900_root, straight), check=True, env=_env(), capture_output=True, timeout=600)

    proc = subprocess.Popen(_cmd(sd900_root, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "train.log"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and f"epoch 1/{EPOCHS}" in log.read_text():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted = torch.load(killed / "last.pt", weights_only=True)["train_state"]["epoch"]
    assert 1 <= interrupted < EPOCHS

    # resuming needs only the run folder: the options come from its run.json
    resume = [sys.executable, "-m", "defectbench.cli", "train", "--model", "litenet", "--out", str(killed),
              "--resume", "--no-progress"]
    subprocess.run(resume, check=True, env=_env(), capture_output=True, timeout=600)
    assert "resuming" in log.read_text()
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(killed / "last.pt", weights_only=True)
    assert a["train_state"]["epoch"] == b["train_state"]["epoch"] == EPOCHS
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    hist_a = [(h["loss"], h["val_S_alpha"]) for h in a["train_state"]["history"]]
    hist_b = [(h["loss"], h["val_S_alpha"]) for h in b["train_state"]["history"]]
    assert hist_a == hist_b
    # the run actually trained: weights moved away from the seeded initialisation and the loss fell
    assert hist_a[-1][0] < hist_a[0][0]


def test_resume_refuses_other_options_and_fresh_runs_refuse_old_folders(tmp_path, sd900_root) -> None:
    cfg = TrainConfig.for_model("litenet", dict(model_kwargs={"width": 16}, epochs=1, batch=4, size=64, limit=8,
                                                val_fraction=0.25, data_root=str(sd900_root), threads=1))
    train_model(cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_model(cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"--resume with different options \(lr"):
        train_model(cfg.replace(lr=0.5), out_dir=tmp_path, resume=True, progress=False)
    # resuming a finished run does nothing and reports the stored result
    result = train_model(cfg, out_dir=tmp_path, resume=True, progress=False)
    assert result.epochs_done == 1 and result.best_epoch == 1


def test_init_from_starts_with_the_checkpoint_weights_and_refuses_other_splits(tmp_path, sd900_root) -> None:
    base = dict(model_kwargs={"width": 16}, epochs=1, batch=4, size=64, limit=8, val_fraction=0.25,
                data_root=str(sd900_root), threads=1)
    first = train_model(TrainConfig.for_model("litenet", base), out_dir=tmp_path / "a", progress=False)
    # a fine-tune at another size with a vanishing learning rate (no weight decay) keeps every trained weight
    still = {"lr": 1e-12, "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0}
    tuned = TrainConfig.for_model("litenet", {**base, **still, "size": 96, "init_from": str(first.best_checkpoint)})
    second = train_model(tuned, out_dir=tmp_path / "b", progress=False)
    a = torch.load(first.best_checkpoint, weights_only=True)["state_dict"]
    b = torch.load(second.last_checkpoint, weights_only=True)["state_dict"]
    fresh = TrainConfig.for_model("litenet", {**base, **still, "seed": 5})
    c = torch.load(train_model(fresh, out_dir=tmp_path / "c", progress=False).last_checkpoint, weights_only=True)["state_dict"]
    weights = [k for k in a if k.endswith(".weight") and a[k].dim() == 4]
    assert weights and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-9) for k in weights)
    assert not all(torch.allclose(a[k], c[k], rtol=0, atol=1e-6) for k in weights)
    with pytest.raises(ConfigError, match="could leak test images"):
        train_model(tuned.replace(split="test"), out_dir=tmp_path / "d", progress=False)
