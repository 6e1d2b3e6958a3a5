"""CorrNet: official parameter count, output conventions, correlation module, VGG-16 weights in stages 1-3."""

from __future__ import annotations

import pytest
import torch

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.corrnet import CorrelationModule, CorrNet
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in CorrelationModel_VGG().parameters()) of the official code
# (github.com/MathLee/CorrNet, model/CorrNet_models.py at commit 13135a6; its VGG-16 file loading skipped), run
# outside this repository. Its lightweight VGG is 3,216,704 of it.
OFFICIAL_PARAMS = 4_086_166


@pytest.fixture(scope="module")
def model() -> CorrNet:
    torch.manual_seed(0)
    return create_model("corrnet", pretrained=False)


def test_parameter_count_matches_official(model: CorrNet) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.backbone.parameters()) == 3_216_704


def test_default_loss_is_bce_iou(model: CorrNet) -> None:
    assert model.default_loss == "bce_iou"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: CorrNet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=4)  # s1, s2, s3, coarse


def test_eval_output_is_s1(model: CorrNet) -> None:
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        main = model(x)
        model.train()
        for m in model.modules():  # BN and the heads' Dropout2d in inference mode: same function both passes
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout2d)):
                m.eval()
        outs = model(x)
    model.eval()
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[3], main)


def test_correlation_module_is_size_agnostic_and_uses_both_inputs() -> None:
    torch.manual_seed(1)
    corr = CorrelationModule(16).eval()
    exemplar, query = torch.randn(2, 16, 3, 5), torch.randn(2, 16, 6, 10)
    with torch.no_grad():
        out = corr(exemplar, query)
        assert out.shape == (2, 1, 6, 10)
        assert not torch.allclose(corr(exemplar * 2, query), out)
        assert not torch.allclose(corr(exemplar, query * 2), out)


def test_every_parameter_is_used_by_the_training_loss(model: CorrNet) -> None:
    assert unused_parameters(model) == []  # the official code leaves its Corr45.conv2 unused; ours applies it


def test_state_dict_round_trips_bit_exactly(model: CorrNet) -> None:
    check_state_dict_round_trip(model, lambda: create_model("corrnet", pretrained=False), (64, 64))


def test_imagenet_weights_go_into_the_first_seven_convs(vgg16_file, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="VGG-16 ImageNet weights not found"):
        create_model("corrnet")
    path, ref = vgg16_file
    torch.manual_seed(3)
    net = create_model("corrnet", pretrained=True, backbone_weights=str(path))
    convs = [m for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.kernel_size == (3, 3)]
    torchvision_indices = (0, 2, 5, 7, 10, 12, 14)  # conv1_1 .. conv3_3 in torchvision's features
    for conv, idx in zip(convs[:7], torchvision_indices, strict=True):
        torch.testing.assert_close(conv.weight, ref[f"features.{idx}.weight"])
        torch.testing.assert_close(conv.bias, ref[f"features.{idx}.bias"])


def test_bce_iou_loss_is_corrnets_formula() -> None:
    from defectbench.methods.saliency.losses import create_loss

    torch.manual_seed(4)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    outs = [torch.randn(2, 1, 16, 16) for _ in range(4)]
    expected = 0.0
    for o in outs:  # BCEWithLogits + pytorch_iou.IOU on the sigmoid, per image then batch mean
        p = torch.sigmoid(o)
        inter = (p * target).sum(dim=(1, 2, 3))
        iou = (1 - inter / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) - inter)).mean()
        expected += torch.nn.functional.binary_cross_entropy_with_logits(o, target) + iou
    assert create_loss("bce_iou")(outs, target).item() == pytest.approx(expected.item(), rel=1e-5)
