"""Backbones: the EfficientNet-Lite weight mapping is proven against an independent reference forward pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from defectbench.errors import CheckpointError
from defectbench.methods.saliency.backbones import (
    LITE_MEAN,
    LITE_STD,
    build_efficientnet_lite,
    build_resnet,
    efficientnet_lite_weights_path,
    load_state_dict_file,
    map_lite_state_dict,
)

# strides of the seven stages of every EfficientNet(-Lite): the first block of a stage carries it
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def _tf_same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (the extra pixel goes right/bottom)."""
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def _bn(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"], sd[f"{prefix}.weight"],
                        sd[f"{prefix}.bias"], training=False, eps=1e-3)


def reference_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite classifier written directly on the package's own key names (efficientnet_lite_pytorch
    layout, TF 'SAME' padding, ReLU6, BN eps 1e-3), independent of timm."""
    x = F.relu6(_bn(F.conv2d(_tf_same_pad(x, 3, 2), sd["_conv_stem.weight"], stride=2), sd, "_bn0"))
    n_blocks = len({k.split(".")[1] for k in sd if k.startswith("_blocks.")})
    stage, prev_out = -1, None
    for i in range(n_blocks):
        p = f"_blocks.{i}"
        dw = sd[f"{p}._depthwise_conv.weight"]
        proj = sd[f"{p}._project_conv.weight"]
        cin = sd[f"{p}._expand_conv.weight"].shape[1] if f"{p}._expand_conv.weight" in sd else dw.shape[0]
        first_of_stage = prev_out is None or proj.shape[0] != prev_out or cin != proj.shape[0]
        if first_of_stage:
            stage += 1
        stride = STAGE_STRIDES[stage] if first_of_stage else 1
        h = x
        if f"{p}._expand_conv.weight" in sd:
            h = F.relu6(_bn(F.conv2d(h, sd[f"{p}._expand_conv.weight"]), sd, f"{p}._bn0"))
        k = dw.shape[-1]
        h = F.relu6(_bn(F.conv2d(_tf_same_pad(h, k, stride), dw, stride=stride, groups=dw.shape[0]), sd, f"{p}._bn1"))
        h = _bn(F.conv2d(h, proj), sd, f"{p}._bn2")
        if stride == 1 and cin == proj.shape[0]:
            h = h + x
        x, prev_out = h, proj.shape[0]
    x = F.relu6(_bn(F.conv2d(x, sd["_conv_head.weight"]), sd, "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def _fixed_input(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_mapped_timm_model_equals_reference_forward(variant: int) -> None:
    sd = load_state_dict_file(efficientnet_lite_weights_path(variant))
    model = build_efficientnet_lite(variant, padding="same").eval()
    x = _fixed_input(224)
    with torch.no_grad():
        ours, ref = model(x), reference_forward(sd, x)
    assert ours.shape == (2, 1000)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(ours.argmax(1), ref.argmax(1))


def test_mapping_checks_every_tensor() -> None:
    model = build_efficientnet_lite(0, pretrained=False)
    sd = load_state_dict_file(efficientnet_lite_weights_path(0))
    mapped = map_lite_state_dict(sd, model)
    assert set(mapped) == set(model.state_dict())
    # renaming is one-to-one: every mapped tensor is a distinct tensor of the source file
    assert len({id(v) for v in mapped.values()}) == len(mapped)


def test_wrong_variant_and_wrong_shape_give_clear_errors() -> None:
    lite0 = build_efficientnet_lite(0, pretrained=False)
    sd1 = load_state_dict_file(efficientnet_lite_weights_path(1))
    with pytest.raises(CheckpointError, match="blocks"):
        map_lite_state_dict(sd1, lite0, source="lite1.pth")
    sd0 = dict(load_state_dict_file(efficientnet_lite_weights_path(0)))
    sd0["_blocks.3._project_conv.weight"] = torch.zeros(41, 144, 1, 1)
    with pytest.raises(CheckpointError, match=r"_blocks\.3\._project_conv\.weight has shape \(41, 144, 1, 1\)"):
        map_lite_state_dict(sd0, lite0, source="bad.pth")


@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_imagenet_weights_classify_a_cat(padding: str) -> None:
    """The mapped weights are real ImageNet weights: scikit-image's cat photo is top-1 a cat class (281-285)."""
    data = pytest.importorskip("skimage.data")
    import cv2

    img = cv2.resize(data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = torch.from_numpy((img - np.array(LITE_MEAN, np.float32)) / np.array(LITE_STD, np.float32)).permute(2, 0, 1)[None]
    model = build_efficientnet_lite(0, padding=padding).eval()
    with torch.no_grad():
        top = int(model(x).argmax(1))
    assert 281 <= top <= 285


def test_features_only_channels_and_strides() -> None:
    feats = build_efficientnet_lite(0, features_only=True, out_indices=(1, 2, 3, 4))
    with torch.no_grad():
        outs = feats(torch.zeros(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == [24, 40, 112, 320]
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_resnet_missing_and_mismatched_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="--no-pretrained"):
        build_resnet(34, pretrained=True)
    import torchvision

    state = torchvision.models.resnet34(weights=None).state_dict()
    state["fc.weight"] = torch.zeros(10, 512)
    path = tmp_path / "resnet34-b627a593.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"wrong-shaped.*fc\.weight"):
        build_resnet(34, pretrained=True, weights_path=path)
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        build_resnet(34, pretrained=True, weights_path=tmp_path / "corrupt.pth")
