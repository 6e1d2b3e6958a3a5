"""CSEPNet: official parameter count (Table 7's 18.8 M), output conventions, contrast unit, VGG-16-BN weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.csepnet import CSFI, Contrast, CSEPNet
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in CSEPNet_VGG16().parameters()) of the official code
# (github.com/showmaker369/CSEPNet, CSEPNet-main/code/network/CSEPNet.py at commit 959261f; vgg16_bn built with
# pretrained=False), run outside this repository. Its VGG-16-BN stages are 14,723,136 of it; Table 7 gives 18.8 M.
OFFICIAL_PARAMS = 18_775_142


@pytest.fixture(scope="module")
def model() -> CSEPNet:
    torch.manual_seed(0)
    return create_model("csepnet", pretrained=False)


def test_parameter_count_matches_official(model: CSEPNet) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.backbone.parameters()) == 14_723_136


def test_default_loss_is_cel_hybrid(model: CSEPNet) -> None:
    assert model.default_loss == "cel_hybrid"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: CSEPNet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=5)


def test_eval_output_is_s1(model: CSEPNet) -> None:
    outs, main = train_and_eval_outputs(model)  # s1 does not pass through the side decoders' dropout
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_contrast_unit_leaves_flat_regions_to_bias_and_doubles_at_most() -> None:
    unit = Contrast(3).eval()
    with torch.no_grad():
        unit.conv_1.bias.fill_(-50.0)  # sigmoid(~-50) ~ 0 on a flat map: x + x * 0
        flat = torch.full((1, 3, 8, 8), 2.0)
        torch.testing.assert_close(unit(flat), flat)
        unit.conv_1.bias.fill_(50.0)
        torch.testing.assert_close(unit(flat), 2 * flat)


def test_csfi_keeps_shape() -> None:
    block = CSFI(16, 8).eval()
    with torch.no_grad():
        assert block(torch.randn(2, 16, 8, 12)).shape == (2, 16, 8, 12)


def test_every_parameter_is_used_by_the_training_loss(model: CSEPNet) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: CSEPNet) -> None:
    check_state_dict_round_trip(model, lambda: create_model("csepnet", pretrained=False), (64, 64))


def test_vgg16_bn_weights_go_into_the_backbone(tmp_path, vgg16_bn_file, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="VGG-16-BN ImageNet weights not found"):
        create_model("csepnet")
    path, ref = vgg16_bn_file  # torchvision's published file predates BN's num_batches_tracked counters
    net = create_model("csepnet", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.backbone[0][0].weight, ref["features.0.weight"])
    torch.testing.assert_close(net.backbone[2][1].weight, ref["features.14.weight"])  # stage 3 = features[13:23]
    torch.testing.assert_close(net.backbone[4][-2].running_var, ref["features.41.running_var"])
    bad = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), bad)
    with pytest.raises(CheckpointError, match="not a VGG-16-BN ImageNet state dict"):
        create_model("csepnet", pretrained=True, backbone_weights=str(bad))


def test_cel_hybrid_loss_is_csepnets_formula() -> None:
    from defectbench.methods.saliency import losses as L

    torch.manual_seed(4)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    outs = [torch.randn(2, 1, 16, 16) for _ in range(5)]
    expected = 0.0
    for o in outs:  # CEL (whole batch, eps 1e-6) + BCE + IoU + (1 - SSIM), as CSEPNet's cal_hybridloss
        p = torch.sigmoid(o)
        inter = p * target
        cel = ((p - inter).sum() + (target - inter).sum()) / (p.sum() + target.sum() + 1e-6)
        expected += cel + L.bce_loss(o, target) + L.iou_loss(o, target) + 1 - L.ssim(p, target)
    assert L.create_loss("cel_hybrid")(outs, target).item() == pytest.approx(expected.item(), rel=1e-5)
    perfect = target * 40 - 20
    assert L.cel_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
