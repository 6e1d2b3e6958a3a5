"""ICON: official parameter counts of its variants, output conventions, ICE and EM routing, encoder weights."""

from __future__ import annotations

import io
import re

import pytest
import timm
import torch
from torchvision.models.vgg import cfgs as VGG_CFGS
from torchvision.models.vgg import make_layers

from defectbench.errors import CheckpointError, ConfigError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency import icon as icon_module
from defectbench.methods.saliency.icon import ICE, ICON, EMRouting2d, valid_input_size
from defectbench.methods.saliency.losses import create_loss
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in ICON(cfg, name).parameters()) of the official code
# (github.com/mczhuge/ICON, main/model/icon at commit 69c05b2; cfg.snapshot=None, weight-file loading skipped),
# run in /tmp outside this repository. ICON-V matches the defect paper's Table 7 (19.2 M).
OFFICIAL_PARAMS = {"icon": 19_167_579, "icon_r": 33_088_859, "icon_p": 65_676_507}
# modules the official model builds but never calls: 2 ICE x conv_mask (64 + 1) and PWV.fuse1 (4,160 + 36,928 + 128)
UNUSED_OFFICIAL_PARAMS = 2 * 65 + 41_216


@pytest.fixture(scope="module")
def model() -> ICON:
    torch.manual_seed(0)
    return create_model("icon", pretrained=False)


@pytest.mark.parametrize("name", ["icon", "icon_r"])
def test_parameter_count_matches_official(name: str, model: ICON) -> None:
    net = model if name == "icon" else create_model(name, pretrained=False)
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_PARAMS[name] - UNUSED_OFFICIAL_PARAMS


def test_default_loss_is_bce_plus_smoothed_iou(model: ICON) -> None:
    assert model.default_loss == "bce_iou_smooth"
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1.0
    logits = torch.zeros(1, 1, 8, 8)
    # BCE of zero logits is ln 2; IoU: inter 16, union 0.5 * 64 + 32 = 64 -> 1 - 17 / 49
    expected = 5 * (0.6931472 + 1 - 17 / 49)
    assert create_loss("bce_iou_smooth")([logits] * 5, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: ICON, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=5)  # pred4, pred1, pred2, pred3, pose


def test_eval_output_is_pred4(model: ICON) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_every_parameter_is_used_by_the_training_loss(model: ICON) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trip_is_bit_exact(model: ICON) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(7)
    other = create_model("icon", pretrained=False)
    other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = torch.randn(1, 3, 64, 96)
    model.eval()
    other.eval()
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


def test_invalid_input_size_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"ICON cannot take input size \(352, 350\).*multiples of 32"):
        valid_input_size((352, 350))
    for name in ("icon", "icon_r", "icon_p"):
        with pytest.raises(ConfigError, match="multiples of 32"):
            getattr(icon_module, name).valid_input_size(100)
    valid_input_size(352)


def test_ice_without_neighbours_uses_the_level_itself() -> None:
    torch.manual_seed(1)
    ice = ICE(16).eval()
    x = torch.randn(1, 16, 8, 8)
    coarse = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(ice(x), ice(x, x, x))
        resized = torch.nn.functional.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)
        torch.testing.assert_close(ice(x, in2=coarse), ice(x, resized, x))  # the neighbour, not in1, is fused


def test_em_routing_keeps_a_non_square_grid() -> None:
    torch.manual_seed(2)
    routing = EMRouting2d(8, 8, 16, kernel=3, stride=2, padding=1)
    a, pose = routing(torch.rand(2, 8, 6, 10), torch.randn(2, 128, 6, 10))
    assert a.shape == (2, 8, 3, 5) and pose.shape == (2, 128, 3, 5)
    assert torch.isfinite(pose).all() and ((a > 0) & (a < 1)).all()


def test_vgg16_bn_weights_come_from_a_local_file(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match=r"VGG-16-BN ImageNet weights not found.*vgg16_bn-6c64b313\.pth"):
        create_model("icon")
    torch.manual_seed(4)
    # the convolutional part of torchvision's vgg16_bn (the classifier, 120 M parameters, is not read)
    ref = {f"features.{k}": v for k, v in make_layers(VGG_CFGS["D"], batch_norm=True).state_dict().items()}
    ref["features.41.running_var"].uniform_(0.5, 2.0)
    path = tmp_path / "vgg16_bn.pth"
    torch.save(ref, path)
    net = create_model("icon", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.encoder.conv1[0].weight, ref["features.0.weight"])
    torch.testing.assert_close(net.encoder.conv5[8].running_var, ref["features.41.running_var"])
    plain = {f"features.{k}": v for k, v in make_layers(VGG_CFGS["D"], batch_norm=False).state_dict().items()}
    torch.save(plain, path)  # plain VGG-16: no BatchNorm
    with pytest.raises(CheckpointError, match="not a VGG-16-BN ImageNet state dict"):
        create_model("icon", pretrained=True, backbone_weights=str(path))


def _official_pvt_name(key: str) -> str:
    """timm's PVTv2 key -> the official release's (the inverse of timm's ``checkpoint_filter_fn``)."""
    key = key.replace("patch_embed.", "patch_embed1.").replace("dwconv.", "dwconv.dwconv.")
    key = re.sub(r"stages\.(\d)\.downsample", lambda m: f"patch_embed{int(m.group(1)) + 1}", key)
    key = re.sub(r"stages\.(\d)\.blocks\.(\d+)", lambda m: f"block{int(m.group(1)) + 1}.{m.group(2)}", key)
    return re.sub(r"stages\.(\d)\.norm", lambda m: f"norm{int(m.group(1)) + 1}", key)


def test_pvt_variant_count_and_weights_from_the_official_release_layout(tmp_path) -> None:
    torch.manual_seed(5)
    ref = timm.create_model("pvt_v2_b4", num_classes=1000).state_dict()
    path = tmp_path / "pvt_v2_b4.pth"
    torch.save({_official_pvt_name(k): v for k, v in ref.items()}, path)
    net = create_model("icon_p", pretrained=True, backbone_weights=str(path))
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_PARAMS["icon_p"] - UNUSED_OFFICIAL_PARAMS
    enc = net.encoder.net
    torch.testing.assert_close(enc.stages[2].blocks[17].attn.q.weight, ref["stages.2.blocks.17.attn.q.weight"])
    torch.testing.assert_close(enc.stages[1].downsample.proj.weight, ref["stages.1.downsample.proj.weight"])
    torch.testing.assert_close(enc.stages[3].norm.bias, ref["stages.3.norm.bias"])
