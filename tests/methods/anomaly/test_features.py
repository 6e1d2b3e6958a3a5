"""Backbones of the anomaly methods: local weights only, a clear line when a file is missing, exact features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectbench.errors import CheckpointError
from defectbench.methods.anomaly.features import WIDE_RESNET_FILE, backbone_weights, build_backbone


def test_missing_wide_resnet_file_names_it_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        backbone_weights("wide_resnet50_2")
    text = str(err.value)
    assert WIDE_RESNET_FILE[0] in text and "defectbench weights fetch" in text and "\n" not in text
    with pytest.raises(CheckpointError, match=r"nope\.pth: wide_resnet50_2 weights file \(backbone_weights\) not found"):
        backbone_weights("wide_resnet50_2", tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="unknown anomaly backbone 'resnet18'"):
        backbone_weights("resnet18")


def test_wide_resnet_file_is_found_in_the_checkpoints_folder_and_checked(tmp_path, monkeypatch, stand_in_official):
    (tmp_path / WIDE_RESNET_FILE[0]).write_bytes(b"x")
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="not the official wide_resnet50_2-95faca4d.pth"):
        backbone_weights("wide_resnet50_2")
    stand_in_official("wide_resnet50_2", tmp_path / WIDE_RESNET_FILE[0])
    assert backbone_weights("wide_resnet50_2") == tmp_path / WIDE_RESNET_FILE[0]


def test_torchvision_wide_resnet_state_dict_fits_timms_features_model():
    """torchvision's official keys and shapes (meta tensors: no memory) fit what _load_wide_resnet loads into."""
    import torchvision

    from defectbench.methods.saliency.backbones import state_dict_mismatch

    with torch.device("meta"):
        official = torchvision.models.wide_resnet50_2().state_dict()
    net = build_backbone("wide_resnet50_2", (2, 3), pretrained=False).net
    own = net.state_dict()
    dropped = {k for k in official if k not in own}
    assert dropped and all(k.startswith(("layer4.", "fc.")) for k in dropped)
    assert state_dict_mismatch(own, {k: v for k, v in official.items() if k in own}) is None


def test_lite_features_are_cut_after_the_last_stage_used_without_changing_them():
    from defectbench.methods.saliency.backbones import build_efficientnet_lite

    cut = build_backbone("efficientnet_lite0", (1, 2, 3))
    full = build_efficientnet_lite(0, features_only=True, out_indices=(1, 2, 3)).eval()
    assert len(cut.net.blocks) < len(full.blocks)
    image = np.random.default_rng(0).integers(0, 256, (70, 90), dtype=np.uint8)
    from defectbench.methods.saliency.predictor import prepare_batch

    with torch.inference_mode():
        expected = full(prepare_batch([image], 96, cut.mean, cut.std))
    got = cut.features([image], 96)
    assert [g.shape[1] for g in got] == cut.channels == [24, 40, 112] and cut.strides == [4, 8, 16]
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
