"""GCPANet: official parameter count, output conventions, attention modules, multi-level loss, backbone weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency import gcpanet as _gcpanet  # noqa: F401  (registers "gcpanet")
from defectbench.methods.saliency.gcpanet import GCPANet, SelfRefinement, modulate
from defectbench.methods.saliency.losses import GCPANET_OUTPUT_WEIGHTS, create_loss
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in GCPANet(cfg).parameters()) of the official code
# (github.com/JosephChenHub/GCPANet, net.py at commit 8ab0d6d; cfg.snapshot=None, its ResNet-50 file loading and
# weight_init skipped), run outside this repository; Table 7 of Song et al.: 67.1 M. With the official weights
# copied into ours by position, all four outputs matched the official forward exactly (max diff 0.0).
OFFICIAL_PARAMS = 67_056_196


@pytest.fixture(scope="module")
def model() -> GCPANet:
    torch.manual_seed(0)
    return create_model("gcpanet", pretrained=False)


def test_parameter_count_matches_official_and_table7(model: GCPANet) -> None:
    n = sum(p.numel() for p in model.parameters())
    assert n == OFFICIAL_PARAMS
    assert round(n / 1e6, 1) == 67.1
    assert sum(p.numel() for p in model.bkbone.parameters()) == 23_508_032


def test_default_loss_is_multilevel_bce(model: GCPANet) -> None:
    assert model.default_loss == "multilevel_bce"
    assert GCPANET_OUTPUT_WEIGHTS == (1.0, 0.8, 0.6, 0.4)


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: GCPANet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=4)  # out2, out3, out4, out5


def test_eval_output_is_the_finest_prediction(model: GCPANet) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_head_initialisation_is_gcpanets(model: GCPANet) -> None:
    for conv in (model.linear2, model.srm5.weight_bias, model.fam23.conv_left, model.ca45.excite):
        assert conv.bias.abs().sum() == 0
    # Kaiming normal, fan-in: std sqrt(2 / fan_in)
    w = model.fam34.fuse[0].weight
    assert abs(w.std().item() / (2.0 / (3 * 256 * 9)) ** 0.5 - 1) < 0.05


def test_modulate_and_self_refinement() -> None:
    f = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.5]]]])  # 1 x 2 x 1 x 2
    wb = torch.tensor([[[[2.0, 2.0]], [[-1.0, 1.0]], [[0.5, 0.5]], [[0.0, 4.0]]]])  # w: channels 0-1, b: 2-3
    torch.testing.assert_close(modulate(f, wb), torch.tensor([[[[2.5, 0.0]], [[-3.0, 4.5]]]]).clamp_min(0))
    torch.manual_seed(4)
    srm = SelfRefinement(8, 8).eval()
    with torch.no_grad():
        srm.weight_bias.weight.zero_()
        srm.weight_bias.bias.copy_(torch.cat([torch.ones(8), torch.zeros(8)]))  # w = 1, b = 0: identity on f
        x = torch.randn(1, 8, 6, 6)
        torch.testing.assert_close(srm(x), srm.project(x))


def test_multilevel_loss_weights_the_four_bces() -> None:
    torch.manual_seed(2)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    outs = [torch.randn(2, 1, 16, 16) for _ in range(4)]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(outs[0], target) + 0.8 * bce(outs[1], target) + 0.6 * bce(outs[2], target) + 0.4 * bce(outs[3], target)
    torch.testing.assert_close(create_loss("multilevel_bce")(outs, target), expected)


def test_every_parameter_is_used_by_the_training_loss(model: GCPANet) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: GCPANet) -> None:
    check_state_dict_round_trip(model, lambda: create_model("gcpanet", pretrained=False), (64, 64))


def test_backbone_gets_the_lower_learning_rate_group(model: GCPANet) -> None:
    from defectbench.train.optim import BACKBONE_PREFIXES

    names = [n for n, _ in model.named_parameters()]
    assert all(n.startswith(BACKBONE_PREFIXES) == n.startswith("bkbone.") for n in names)
    assert sum(n.startswith("bkbone.") for n in names) == 159  # conv1, bn1, 16 bottlenecks x 9, 4 shortcuts x 3


def test_pretrained_weights_go_into_the_backbone(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-50 ImageNet weights not found"):
        create_model("gcpanet")
    torch.manual_seed(3)
    ref = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "r50.pth"
    torch.save(ref, path)
    net = create_model("gcpanet", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.bkbone.conv1.weight, ref["conv1.weight"])
    torch.testing.assert_close(net.bkbone.layer2[1].conv3.weight, ref["layer2.1.conv3.weight"])
    torch.testing.assert_close(net.bkbone.layer4[0].downsample[1].running_mean, ref["layer4.0.downsample.1.running_mean"])
