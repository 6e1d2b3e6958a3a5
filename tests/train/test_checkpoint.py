"""Checkpoints round-trip exactly; corrupt, foreign and wrong-model files give one clear error line."""

from __future__ import annotations

import torch

import pytest

from defectbench.cli import main
from defectbench.errors import CheckpointError
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD
from defectbench.methods.saliency.checkpoint import build_model, load_trained, make_checkpoint, read_checkpoint, save_checkpoint


def _saved(tmp_path, half: bool = False, **kwargs):
    torch.manual_seed(1)
    model = build_model("litenet", kwargs, pretrained=False).eval()
    for p in model.parameters():  # move every weight off its init so that a silent non-load would show
        p.data.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / ("half.pt" if half else "model.pt")
    save_checkpoint(path, make_checkpoint(model, "litenet", kwargs, 64, IMAGENET_MEAN, IMAGENET_STD,
                                          meta={"note": "x"}, half=half))
    return model, path


def test_round_trip_is_exact(tmp_path) -> None:
    model, path = _saved(tmp_path, width=32)
    loaded, info = load_trained(path, expected_model="litenet")
    assert info["model"] == "litenet" and info["model_kwargs"] == {"width": 32} and info["input_size"] == 64
    assert info["meta"] == {"note": "x"} and list(info["mean"]) == list(IMAGENET_MEAN)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not loaded.training


def test_half_precision_file_is_smaller_and_close(tmp_path) -> None:
    model, path = _saved(tmp_path)
    _, half_path = _saved(tmp_path, half=True)
    assert half_path.stat().st_size < 0.6 * path.stat().st_size
    loaded, _ = load_trained(half_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref, got = torch.sigmoid(model(x)), torch.sigmoid(loaded(x))
    assert (ref - got).abs().max() < 0.02


def test_bad_files_give_clear_errors(tmp_path) -> None:
    _, path = _saved(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt: not a readable checkpoint"):
        read_checkpoint(truncated)
    bare = tmp_path / "bare.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bare)
    with pytest.raises(CheckpointError, match="not a defectbench saliency checkpoint"):
        read_checkpoint(bare)
    with pytest.raises(CheckpointError, match="holds model 'litenet', not 'edrnet'"):
        read_checkpoint(path, expected_model="edrnet")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_kwargs"] = {"width": 32}  # weights of width 48 under a width-32 claim
    with pytest.raises(CheckpointError, match="weights do not fit model 'litenet'"):
        load_trained(ckpt)


def test_cli_prints_one_line_for_bad_checkpoints(tmp_path, capsys) -> None:
    import cv2
    import numpy as np

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((8, 8), np.uint8))  # an image, so the checkpoint is read
    (tmp_path / "broken.pt").write_bytes(b"\x80\x02garbage")
    rc = main(["predict", "--checkpoint", str(tmp_path / "broken.pt"), "--input", str(tmp_path / "imgs"),
               "--out", str(tmp_path / "maps")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("defectbench: error: ") and "broken.pt" in err[0]
    _, path = _saved(tmp_path)
    rc = main(["predict", "--checkpoint", str(path), "--model", "cpd", "--input", str(tmp_path / "imgs"),
               "--out", str(tmp_path / "maps")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "holds model 'litenet', not 'cpd'" in err[0]
