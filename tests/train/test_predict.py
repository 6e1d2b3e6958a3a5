"""Prediction writes one 8-bit map per image at the image's own size, equal to the predictor's output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from defectbench.cli import main
from defectbench.data.imageio import read_image
from defectbench.errors import DataError
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD
from defectbench.methods.saliency.predictor import SaliencyPredictor, predict_folder
from defectbench.methods.saliency.checkpoint import build_model, make_checkpoint, save_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("litenet", {"width": 16}, pretrained=False)
    path = tmp_path / "m.pt"
    save_checkpoint(path, make_checkpoint(model, "litenet", {"width": 16}, 64, IMAGENET_MEAN, IMAGENET_STD))
    return path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "gray_a.png"), rng.integers(0, 255, (50, 70), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgb_b.jpg"), rng.integers(0, 255, (33, 41, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "gray_c.bmp"), rng.integers(0, 255, (200, 200), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_maps_have_each_images_size_and_match_predictor(tmp_path, checkpoint, images) -> None:
    out = tmp_path / "maps"
    written = predict_folder(checkpoint, images, out, batch=2, progress=False)
    assert sorted(p.name for p in written) == ["gray_a.png", "gray_c.png", "rgb_b.png"]
    predictor = SaliencyPredictor.from_checkpoint(checkpoint)
    for src in ("gray_a.png", "rgb_b.jpg", "gray_c.bmp"):
        img = read_image(images / src)
        got = cv2.imread(str(out / f"{src.rsplit('.', 1)[0]}.png"), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and got.shape == img.shape[:2]
        expected = np.rint(predictor.predict(img) * 255).astype(np.int16)
        assert np.abs(got.astype(np.int16) - expected).max() <= 1


def test_duplicate_stems_and_empty_folders_are_errors(tmp_path, checkpoint, images) -> None:
    cv2.imwrite(str(images / "gray_a.jpg"), np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="share the stem 'gray_a'"):
        predict_folder(checkpoint, images, tmp_path / "maps", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        predict_folder(checkpoint, tmp_path / "empty", tmp_path / "maps", progress=False)


def test_cli_predict_and_shipped_weights_need_a_model(tmp_path, checkpoint, images, capsys) -> None:
    (images / "notes.txt").unlink()
    rc = main(["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--out", str(tmp_path / "m")])
    assert rc == 0 and len(list((tmp_path / "m").glob("*.png"))) == 3
    rc = main(["predict", "--weights", "sd900", "--input", str(images), "--out", str(tmp_path / "m2")])
    assert rc == 2 and "--weights needs --model" in capsys.readouterr().err
    rc = main(["predict", "--weights", "nope", "--model", "litenet", "--input", str(images), "--out", str(tmp_path / "m3")])
    assert rc == 2 and "no shipped weights 'nope'" in capsys.readouterr().err


def test_optimize_runs_an_exported_copy_with_the_eager_maps(checkpoint, tmp_path, monkeypatch) -> None:
    """``optimize=True`` is the fast CPU path: an exported copy on OpenVINO (else ONNX Runtime), same maps."""
    pytest.importorskip("onnxruntime", reason="the deploy extra (pip install '.[deploy]') is absent")
    from defectbench.deploy import engines

    eager = engines.load_predictor(checkpoint)
    fast = engines.load_predictor(checkpoint, optimize=True, cache_dir=tmp_path / "cache")
    assert eager.record()["engine"] == "torch"
    assert fast.record()["engine"] == engines.fastest_engine() != "torch"
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (50, 70), dtype=np.uint8), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)]
    for a, b in zip(eager.predict_batch(images), fast.predict_batch(images)):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4
    monkeypatch.setattr(engines, "FAST_ENGINES", ("no_such_engine_module",))
    with pytest.raises(engines.ExportError, match="pip install -e '.\\[deploy\\]'"):
        engines.load_predictor(checkpoint, optimize=True)
