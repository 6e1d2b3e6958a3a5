"""``defectbench export``: shipped weights to OpenVINO at another size, fp16 weights, and one-line errors."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from defectbench.cli import export as export_verb
from defectbench.errors import DefectbenchError


def run(argv: list[str]) -> int:
    """Parse and run the ``export`` verb as ``defectbench`` does (errors propagate as DefectbenchError)."""
    parser = argparse.ArgumentParser(prog="defectbench")
    export_verb.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["export", *argv])
    return args.func(args)


def test_export_shipped_weights_to_openvino_at_another_size(tmp_path, engines_installed, capsys) -> None:
    from defectbench.deploy import load_predictor, read_metadata

    assert run(["--model", "litenet", "--weights", "sd900", "--format", "openvino", "--size", "64",
                "--out", str(tmp_path)]) == 0
    path = tmp_path / "litenet-sd900-64.xml"
    assert path.is_file() and path.with_suffix(".bin").stat().st_size > 10 * 2**20  # fp32 weights, not fp16
    assert str(path) in capsys.readouterr().out
    meta = read_metadata(path)
    assert (meta["input_size"], meta["trained_input_size"], meta["dynamic_batch"]) == (64, 320, False)
    image = np.random.default_rng(0).integers(0, 256, (90, 130), dtype=np.uint8)
    exported = load_predictor(path, "openvino", threads=2)
    reference = load_predictor(model="litenet", weights="sd900", engine="torch", size=64)
    assert reference.size == exported.size == 64
    got, want = exported.predict(image), reference.predict(image)
    assert got.shape == (90, 130) and np.abs(got - want).max() < 1e-4


def test_export_pt_weights_and_errors(tmp_path) -> None:
    from defectbench.methods.saliency.checkpoint import load_trained

    assert run(["--model", "litenet", "--weights", "mt", "--format", "pt", "--fp32", "--out", str(tmp_path / "w.pt")]) == 0
    _, info = load_trained(tmp_path / "w.pt", expected_model="litenet")
    assert info["meta"]["half"] is False and info["meta"]["dataset"] == "mt"
    with pytest.raises(DefectbenchError, match="--weights needs --model"):
        run(["--weights", "sd900", "--out", str(tmp_path)])
    with pytest.raises(DefectbenchError, match="input size 100 cannot be taken"):
        run(["--model", "litenet", "--weights", "sd900", "--size", "100", "--out", str(tmp_path)])
    with pytest.raises(DefectbenchError, match="no shipped weights 'sd900' for model 'nosuchnet'"):
        run(["--model", "nosuchnet", "--weights", "sd900", "--out", str(tmp_path)])
    with pytest.raises(DefectbenchError, match=r"written as \*\.xml"):
        run(["--model", "litenet", "--weights", "sd900", "--format", "openvino", "--out", str(tmp_path / "x.onnx")])
