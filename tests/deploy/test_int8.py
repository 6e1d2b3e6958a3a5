"""INT8 post-training quantisation of OpenVINO exports (NNCF): a really quantised, self-describing IR whose maps
follow the fp32 export's, one clear line for every misuse, and (slow) accuracy on the real test split."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from defectbench.cli import main
from defectbench.deploy import ExportedPredictor, export_model, read_metadata
from defectbench.errors import ExportError
from defectbench.methods.saliency.checkpoint import build_model
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def fp32_ir(tmp_path_factory, engines_installed):
    """A small random litenet (width 16, input 64) exported as fp32 OpenVINO IR."""
    pytest.importorskip("nncf", reason="nncf not installed: the int8 extra (pip install '.[int8]') is absent")
    torch.manual_seed(0)
    model = build_model("litenet", {"width": 16}, pretrained=False).eval()
    info = {"model": "litenet", "model_kwargs": {"width": 16}, "input_size": 64, "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD, "meta": {"dataset": "sd900", "split": "train"}}
    return export_model(model, info, tmp_path_factory.mktemp("fp32") / "small.xml", "openvino")


def _images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((80, 96), 120, np.uint8) + rng.integers(0, 30, (80, 96), dtype=np.uint8)
        r, c = rng.integers(10, 60, 2)
        img[r:r + 12, c:c + 20] = rng.integers(0, 60)  # a dark defect-like patch
        out.append(img)
    return out


def test_quantized_ir_is_int8_and_follows_fp32(fp32_ir, tmp_path) -> None:
    import openvino as ov

    from defectbench.deploy.quantize import quantize_openvino

    path = quantize_openvino(fp32_ir, tmp_path, _images(12, 1), {"dataset": "synthetic", "split": "train"})
    assert path == tmp_path / "small-int8.xml" and path.with_suffix(".bin").is_file()
    ops = {op.get_type_name() for op in ov.Core().read_model(str(path)).get_ops()}
    assert "FakeQuantize" in ops  # really quantised, not a copy
    meta = read_metadata(path)
    assert meta["precision"] == "int8" and meta["input_size"] == 64
    assert meta["calibration"]["dataset"] == "synthetic" and meta["calibration"]["images"] == 12
    assert read_metadata(fp32_ir).get("precision", "fp32") == "fp32"
    fp32, int8 = ExportedPredictor(fp32_ir, "openvino"), ExportedPredictor(path, "openvino")
    assert int8.record()["precision"] == "int8" and int8.record()["calibration"]["images"] == 12
    test = _images(4, 2)
    a, b = fp32.predict_batch(test), int8.predict_batch(test)
    for m32, m8, img in zip(a, b, test):
        assert m8.shape == img.shape and m8.dtype == np.float32
        assert 0 < np.abs(m8 - m32).max() and np.abs(m8 - m32).mean() < 0.05


def test_calibration_picks_are_evenly_spaced_and_bounded() -> None:
    from defectbench.deploy.quantize import evenly_spaced

    assert evenly_spaced(10, 3) == [0, 4, 9]
    assert evenly_spaced(5, 300) == [0, 1, 2, 3, 4]
    picks = evenly_spaced(540, 300)
    assert len(picks) == 300 and picks[0] == 0 and picks[-1] == 539 and picks == sorted(set(picks))
    assert evenly_spaced(0, 300) == []


def test_misuse_is_one_clear_line(fp32_ir, tmp_path, monkeypatch) -> None:
    from defectbench.deploy.quantize import calibration_batches, quantize_openvino

    int8 = quantize_openvino(fp32_ir, tmp_path, _images(4, 3))
    with pytest.raises(ExportError, match="already quantised"):
        quantize_openvino(int8, tmp_path / "again", _images(4, 3))
    with pytest.raises(ExportError, match="would overwrite the fp32 export"):
        quantize_openvino(fp32_ir, fp32_ir, _images(4, 3))
    with pytest.raises(ExportError, match="written as \\*.xml"):
        quantize_openvino(fp32_ir, tmp_path / "x.onnx", _images(4, 3))
    with pytest.raises(ExportError, match="at least one image"):
        calibration_batches([], 64, IMAGENET_MEAN, IMAGENET_STD)
    assert len(calibration_batches(_images(10, 4), 64, IMAGENET_MEAN, IMAGENET_STD, limit=3)) == 3
    monkeypatch.setitem(sys.modules, "nncf", None)  # as if the int8 extra were absent
    with pytest.raises(ExportError, match=r"needs NNCF.*pip install 'defectbench\[int8\]'"):
        quantize_openvino(fp32_ir, tmp_path / "none", _images(2, 5))


def test_cli_refuses_int8_without_openvino_or_on_a_test_split(capsys) -> None:
    rc = main(["export", "--model", "litenet", "--weights", "sd900", "--format", "onnx", "--int8", "--out", "/tmp/x"])
    assert rc == 2 and "--int8 needs --format openvino" in capsys.readouterr().err
    rc = main(["export", "--model", "litenet", "--weights", "sd900", "--format", "openvino", "--int8",
               "--calibration-split", "test", "--out", "/tmp/x"])
    err = capsys.readouterr().err
    assert rc == 2 and "calibrating on a test split" in err and "Traceback" not in err


@pytest.mark.slow
def test_shipped_litenet_int8_keeps_s_measure_on_the_test_split(tmp_path, sd900_root, engines_installed) -> None:
    """The issue's bar: INT8 calibrated on the training split loses < 0.005 S-measure on the 360 test images."""
    pytest.importorskip("nncf")
    from defectbench.data import load_dataset
    from defectbench.data.imageio import saliency_to_uint8
    from defectbench.deploy.export import export_checkpoint
    from defectbench.deploy.quantize import quantize_openvino
    from defectbench.methods.saliency.checkpoint import shipped_weights_path
    from defectbench.metrics import aggregate, score_image

    ds = load_dataset("sd900", sd900_root)
    fp32 = export_checkpoint(shipped_weights_path("litenet", "sd900"), tmp_path, "openvino", tag="sd900")
    int8 = quantize_openvino(fp32, tmp_path, [s.image() for s in ds.split("train")])
    scores = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        p = ExportedPredictor(path, "openvino", threads=2)
        scores[name] = aggregate([score_image(saliency_to_uint8(p.predict(s.image())), s.mask()) for s in ds.split("test")])
    assert scores["fp32"]["S_alpha"] - scores["int8"]["S_alpha"] < 0.005, scores
