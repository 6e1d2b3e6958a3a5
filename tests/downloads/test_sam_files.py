"""SAM checkpoints: a file whose SHA-256 is not the official one is refused (both hashes named) unless the user says it
is their own (``--allow-unofficial``, ``allow_unofficial: true``); files in torch hub's cache are found."""

from __future__ import annotations

import json

import pytest

from defectbench.bench.families.sam import parse_options
from defectbench.cli import main
from defectbench.errors import ConfigError
from defectbench.methods.sam import checkpoints as ck
from tests.bench.synthetic import make_dataset


def test_sam_predict_refuses_an_unofficial_file_unless_allowed(tmp_path, capsys, folders, monkeypatch):
    from defectbench.methods.sam.registry import MODELS, ModelSpec
    from tests.methods.sam.helpers import tiny_sam

    # a reduced official SAM architecture with a published digest, and a file of it with other (random) weights
    monkeypatch.setitem(MODELS, "pinned_tiny", ModelSpec("pinned_tiny", "sam", "pinned tiny SAM", "pinned_tiny.pth",
                                                         "(test model)", None, "0" * 64, 0.0, lambda: tiny_sam(128)))
    path = ck.save_random_checkpoint("pinned_tiny", tmp_path / "own.pth", seed=1)
    ds = make_dataset(tmp_path / "ds", 1, 1, size=32)
    argv = ["sam", "predict", "--model", "pinned_tiny", "--checkpoint", str(path), "--dataset", f"folder:{ds}",
            "--limit", "1", "--points-per-side", "2", "--cache-dir", str(tmp_path / "cache"), "--select", "prior",
            "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"its sha256 is {ck.file_sha256(path)}, the official file's is {'0' * 64}" in err
    assert "--allow-unofficial" in err and not (tmp_path / "out").exists()  # refused before any work
    assert main([*argv, "--allow-unofficial"]) == 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["checkpoint"]["official"] is False and run["checkpoint"]["sha256"] == ck.file_sha256(path)


def test_the_experiment_option_is_a_boolean():
    entry = {"name": "m", "type": "sam", "model": "mobile_sam", "select": "prior"}
    assert parse_options(entry, "m").allow_unofficial is False
    assert parse_options({**entry, "allow_unofficial": True}, "m").allow_unofficial is True
    with pytest.raises(ConfigError, match="'allow_unofficial' must be true or false"):
        parse_options({**entry, "allow_unofficial": "yes"}, "m")


def test_a_checkpoint_in_torch_hubs_cache_is_found(folders, monkeypatch):
    folders["hub"].mkdir(parents=True)
    path = ck.save_random_checkpoint("mobile_sam", folders["hub"] / "mobile_sam.pt")
    assert ck.locate("mobile_sam") == path
    rows = {r["model"]: r for r in ck.status_rows(verify=True, cache_root=folders["cache"])}
    assert rows["mobile_sam"]["path"] == str(path) and rows["mobile_sam"]["status"] == "sha256 differs"
    path.unlink()
    with pytest.raises(ck.CheckpointError) as err:
        ck.locate("mobile_sam")
    msg = str(err.value)
    assert str(folders["checkpoints"] / "mobile_sam.pt") in msg and "defectbench weights fetch mobile_sam" in msg
