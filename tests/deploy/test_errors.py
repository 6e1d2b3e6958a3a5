"""Bad input gives one clear DefectbenchError line: unknown model, corrupt checkpoint, a size the model cannot take,
a file exported by another defectbench version, for another size, foreign or truncated, the wrong engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from defectbench.deploy import ExportedPredictor, export_checkpoint, load_predictor, read_metadata
from defectbench.deploy.export import METADATA_KEY, check_size
from defectbench.errors import CheckpointError, DefectbenchError
from defectbench.methods.saliency.checkpoint import shipped_weights_path
from defectbench.methods.saliency.checkpoint import read_checkpoint, save_checkpoint


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, DefectbenchError)
    return message


def _rewrite_onnx_metadata(src: Path, dst: Path, **changes) -> Path:
    """Copy an ONNX export with some metadata fields changed (``None`` drops the metadata altogether)."""
    import onnx

    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    if changes != {"drop": None}:
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps({**json.loads(meta[METADATA_KEY]), **changes})
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("size", [100, 0, -32, 16, 8192])
def test_size_the_model_cannot_take(size) -> None:
    with pytest.raises(DefectbenchError) as exc:
        check_size(size, "litenet")
    assert f"input size {size} cannot be taken by 'litenet'" in _one_line(exc) and "multiple of 32" in str(exc.value)


def test_export_rejects_bad_size_before_exporting(tmp_path) -> None:
    with pytest.raises(DefectbenchError) as exc:
        export_checkpoint(shipped_weights_path("litenet", "sd900"), tmp_path, "onnx", size=300)
    assert "input size 300" in _one_line(exc) and not list(tmp_path.iterdir())


def test_unknown_model_and_corrupt_checkpoint(tmp_path) -> None:
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(model="nosuchnet", weights="sd900", engine="onnxruntime", cache_dir=tmp_path)
    assert "nosuchnet" in _one_line(exc)
    ckpt = read_checkpoint(shipped_weights_path("litenet", "sd900"))
    save_checkpoint(tmp_path / "foreign.pt", {**ckpt, "model": "nosuchnet"})
    with pytest.raises(CheckpointError) as exc:
        export_checkpoint(tmp_path / "foreign.pt", tmp_path / "out", "onnx")
    assert "cannot build model 'nosuchnet'" in _one_line(exc)
    good = shipped_weights_path("litenet", "sd900").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 3])
    for engine in ("onnxruntime", "openvino"):
        with pytest.raises(CheckpointError) as exc:
            load_predictor(tmp_path / "cut.pt", engine, cache_dir=tmp_path / "cache")
        assert "not a readable checkpoint" in _one_line(exc)
    with pytest.raises(CheckpointError):
        export_checkpoint(tmp_path / "cut.pt", tmp_path / "out", "openvino")
    with pytest.raises(DefectbenchError) as exc:
        export_checkpoint(shipped_weights_path("litenet", "sd900"), tmp_path, "tflite")
    assert "unknown export format 'tflite'" in _one_line(exc)


def test_other_version_size_model_and_foreign_files(litenet_exports, tmp_path) -> None:
    onnx_file = litenet_exports["onnx"]
    old = _rewrite_onnx_metadata(onnx_file, tmp_path / "old.onnx", defectbench_version="0.0.1")
    with pytest.raises(DefectbenchError) as exc:
        ExportedPredictor(old, "onnxruntime")
    assert "exported by defectbench 0.0.1" in _one_line(exc) and "export it again" in str(exc.value)
    newer = _rewrite_onnx_metadata(onnx_file, tmp_path / "newer.onnx", format_version=99)
    with pytest.raises(DefectbenchError) as exc:
        read_metadata(newer)
    assert "newer defectbench" in _one_line(exc)
    foreign = _rewrite_onnx_metadata(onnx_file, tmp_path / "foreign.onnx", drop=None)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(foreign, "onnxruntime")
    assert "not exported by defectbench" in _one_line(exc)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(onnx_file, "onnxruntime", size=256)
    assert "exported for input size 320, not 256" in _one_line(exc)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(onnx_file, "openvino", model="edrnet")
    assert "holds model 'litenet', not 'edrnet'" in _one_line(exc)
    (tmp_path / "cut.onnx").write_bytes(onnx_file.read_bytes()[:5000])
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(tmp_path / "cut.onnx", "onnxruntime")
    assert "not a readable ONNX file" in _one_line(exc)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(onnx_file, "torch")
    assert "--engine onnxruntime or openvino" in _one_line(exc)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(onnx_file, "tensorrt")
    assert "unknown engine 'tensorrt'" in _one_line(exc)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(tmp_path / "missing.onnx", "onnxruntime")
    assert "not found" in _one_line(exc)


def test_openvino_ir_of_another_version_or_without_weights(litenet_exports, tmp_path) -> None:
    xml = litenet_exports["openvino-dynamic"]
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(xml, "onnxruntime")
    assert "onnxruntime runs .onnx files" in _one_line(exc)
    text = xml.read_text()
    version = read_metadata(xml)["defectbench_version"]
    needle = f"&quot;defectbench_version&quot;: &quot;{version}&quot;"
    assert needle in text  # the metadata is readable JSON inside the IR's rt_info
    (tmp_path / "old.xml").write_text(text.replace(needle, needle.replace(version, "0.0.1")))
    shutil.copy(xml.with_suffix(".bin"), tmp_path / "old.bin")
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(tmp_path / "old.xml", "openvino")
    assert "exported by defectbench 0.0.1" in _one_line(exc)
    (tmp_path / "lonely.xml").write_text(text)
    with pytest.raises(DefectbenchError) as exc:
        load_predictor(tmp_path / "lonely.xml", "openvino")
    assert "lonely.bin is missing" in _one_line(exc)


def test_model_that_cannot_take_the_size_is_reported(tmp_path) -> None:
    """A model whose forward fails at the asked size gives one line naming the model and the size."""
    from defectbench.deploy.export import export_model

    class FixedSize(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1].reshape(x.shape[0], 1, 64, 64)

    info = {"model": "fixednet", "input_size": 96, "mean": [0.5] * 3, "std": [0.5] * 3}
    with pytest.raises(DefectbenchError) as exc:
        export_model(FixedSize(), info, tmp_path, "onnx")
    assert "model 'fixednet' cannot take input size 96" in _one_line(exc)
