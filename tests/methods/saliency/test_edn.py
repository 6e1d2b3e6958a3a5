"""EDN: official parameter count, output conventions, frozen backbone BN, receptive conv, backbone weights."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.edn import EDN, ReceptiveConv
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in EDN(arch="resnet50", pretrained=None).parameters()) of the
# official code (github.com/yuhuan-wu/EDN, models/model.py at commit 59c4e56), run outside this repository. Its
# ResNet-50 has frozen BN (buffers), so the backbone counts only its convolutions: 23,454,912.
OFFICIAL_PARAMS = 42_845_381


@pytest.fixture(scope="module")
def model() -> EDN:
    torch.manual_seed(0)
    return create_model("edn", pretrained=False)


def test_parameter_count_matches_official(model: EDN) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.backbone.parameters()) == 23_454_912


def test_default_loss_is_bce_dice(model: EDN) -> None:
    assert model.default_loss == "bce_dice"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: EDN, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=5)


def test_eval_output_is_the_finest_head(model: EDN) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_backbone_batchnorm_is_frozen(model: EDN) -> None:
    bns = [m for m in model.backbone.modules() if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d))]
    assert len(bns) == 53 and all(isinstance(m, FrozenBatchNorm2d) for m in bns)
    before = model.backbone.layer1[0].bn1.running_mean.clone()
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert torch.equal(model.backbone.layer1[0].bn1.running_mean, before)
    assert isinstance(model.conv6[0].bn1, torch.nn.BatchNorm2d)  # the extra stages train their BN


def test_receptive_conv_is_residual_with_cumulative_branches() -> None:
    torch.manual_seed(1)
    block = ReceptiveConv(32, base_width=32, dilations=(1, 2, 4, 8)).eval()
    assert block.width == 16 and [c.dilation for c in block.convs] == [(1, 1), (2, 2), (4, 4), (8, 8)]
    with torch.no_grad():
        block.bn3.weight.zero_()
        block.bn3.bias.zero_()
        x = torch.randn(1, 32, 12, 12)
        torch.testing.assert_close(block(x), torch.relu(x))  # zero residual branch: relu(x + 0)


def test_every_parameter_is_used_by_the_training_loss(model: EDN) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: EDN) -> None:
    check_state_dict_round_trip(model, lambda: create_model("edn", pretrained=False), (64, 64))


def test_pretrained_weights_go_into_the_frozen_backbone(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-50 ImageNet weights not found"):
        create_model("edn")
    torch.manual_seed(2)
    ref = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    ref = ref.state_dict()
    path = tmp_path / "r50.pth"
    torch.save(ref, path)
    net = create_model("edn", pretrained=True, backbone_weights=str(path))
    b = net.backbone
    torch.testing.assert_close(b.conv1.weight, ref["conv1.weight"])
    torch.testing.assert_close(b.layer4[2].conv3.weight, ref["layer4.2.conv3.weight"])
    torch.testing.assert_close(b.layer3[0].downsample[1].running_var, ref["layer3.0.downsample.1.running_var"])
    torch.testing.assert_close(b.bn1.running_mean, ref["bn1.running_mean"])


def test_bce_dice_loss_is_edns_formula() -> None:
    from defectbench.methods.saliency.losses import create_loss

    torch.manual_seed(4)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    outs = [torch.randn(2, 1, 16, 16) for _ in range(5)]
    expected = 0.0
    for o in outs:  # EDN's BCEDiceLoss on probabilities, Dice over the whole batch (eps 1e-5)
        p = torch.sigmoid(o)
        dice = (2 * (p * target).sum() + 1e-5) / (p.sum() + target.sum() + 1e-5)
        expected += torch.nn.functional.binary_cross_entropy(p, target) + 1 - dice
    assert create_loss("bce_dice")(outs, target).item() == pytest.approx(expected.item(), rel=1e-5)
