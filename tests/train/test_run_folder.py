"""A training's output folder: locked against a second training, left clean by a training that fails early."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from defectbench.locks import LOCK_NAME, runner_active
from defectbench.errors import CheckpointError, ConfigError
from defectbench.train import TrainConfig, train_model
from defectbench.train.trainer import RunFolderBusy, claimed_run_folder


def _cmd(data: Path, out: Path, seed: int, epochs: int) -> list[str]:
    return [sys.executable, "-m", "defectbench.cli", "train", "--model", "litenet", "--model-args", '{"width": 16}',
            "--no-pretrained", "--dataset", "sd900", "--limit", "8", "--val-fraction", "0.25", "--epochs", str(epochs),
            "--batch", "4", "--size", "64", "--seed", str(seed), "--threads", "1", "--data-root", str(data),
            "--out", str(out), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def test_second_training_into_a_busy_folder_fails_at_once(tmp_path, sd900_root) -> None:
    out = tmp_path / "same"
    first = subprocess.Popen(_cmd(sd900_root, out, seed=0, epochs=50), env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not runner_active(out) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert runner_active(out), "the first training never took the folder's lock"
        t0 = time.time()
        second = subprocess.run(_cmd(sd900_root, out, seed=1, epochs=3), env=_env(), capture_output=True, text=True,
                                timeout=120)
        assert first.poll() is None, "the first training ended before the second one was tried"
        err = [line for line in second.stderr.strip().splitlines() if not line.startswith("note: --no-pretrained")]
        assert second.returncode == 2 and len(err) == 1 and "Traceback" not in second.stderr
        assert str(out) in err[0] and "another training" in err[0]
        assert time.time() - t0 < 60  # refused without waiting for the first one
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # nothing of the second training's made it into the folder
    log = (out / "train.log").read_text() if (out / "train.log").exists() else ""
    assert "seed 1" not in log and log.count("training /") <= 1
    if (out / "run.json").exists():
        assert json.loads((out / "run.json").read_text())["config"]["seed"] == 0


def test_lock_is_exclusive_within_one_process_and_released_after(tmp_path) -> None:
    with claimed_run_folder(tmp_path / "a"):
        assert runner_active(tmp_path / "a")
        with pytest.raises(RunFolderBusy, match=r"a: another training .* choose another --out"):
            with claimed_run_folder(tmp_path / "a"):
                pass
        assert (tmp_path / "a").is_dir()  # the refused call removed nothing
        (tmp_path / "a" / "last.pt").write_bytes(b"x")  # stands for a saved epoch
    assert not runner_active(tmp_path / "a")


def _failing_config(root: Path, tmp_path: Path) -> TrainConfig:
    """A config that fails inside the run folder before any epoch (its init_from checkpoint is missing)."""
    return TrainConfig.for_model("litenet", dict(model_kwargs={"width": 16}, pretrained=False, epochs=1, batch=4,
                                                 size=64, limit=8, data_root=str(root), threads=1,
                                                 init_from=str(tmp_path / "missing.pt")))


def test_failed_training_removes_the_folder_it_created(tmp_path, sd900_root) -> None:
    out = tmp_path / "new" / "run"
    with pytest.raises(CheckpointError, match="missing.pt"):
        train_model(_failing_config(sd900_root, tmp_path), out_dir=out, progress=False)
    assert not out.exists()
    assert (tmp_path / "new").is_dir()  # the parent is left alone (only the run folder is the run's)


def test_failed_training_keeps_folders_it_did_not_create_and_earlier_results(tmp_path, sd900_root) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError):
        train_model(_failing_config(sd900_root, tmp_path), out_dir=mine, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # its lock file went, nothing else
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError):
        train_model(_failing_config(sd900_root, tmp_path), out_dir=empty, progress=False)
    assert empty.is_dir() and not any(empty.iterdir())
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "last.pt").write_bytes(b"an earlier run")
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_model(_failing_config(sd900_root, tmp_path), out_dir=earlier, progress=False)
    assert (earlier / "last.pt").read_bytes() == b"an earlier run"


def test_output_path_through_a_file_is_a_clear_error(tmp_path, sd900_root) -> None:
    (tmp_path / "afile").write_text("x")
    cfg = _failing_config(sd900_root, tmp_path)
    with pytest.raises(ConfigError, match=r"afile/x: cannot create the output folder"):
        train_model(cfg, out_dir=tmp_path / "afile" / "x", progress=False)
    with pytest.raises(ConfigError, match=r"afile: exists and is not a folder"):
        train_model(cfg, out_dir=tmp_path / "afile", progress=False)
    assert (tmp_path / "afile").read_text() == "x"
    assert LOCK_NAME not in os.listdir(tmp_path)
