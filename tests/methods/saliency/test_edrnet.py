"""EDRNet: official parameter count, output conventions, CBAM encoder, residual refinement, weights loading."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.edrnet import CBAMBasicBlock, EDRNet, channel_shuffle

from tests.methods.saliency.model_checks import check_forward_shapes, train_and_eval_outputs, unused_parameters

# Reference, not a result: sum(p.numel() for p in EDRNet(in_channels=3).parameters()) of the official code
# (github.com/SongGuorong/EDRNet, model/EDRNet.py + model/resattention.py at commit a921833), run outside
# this repository. The paper we reproduce lists EDRNet at 39.3 M parameters (Table 7).
OFFICIAL_PARAMS = 39_308_097


@pytest.fixture(scope="module")
def model() -> EDRNet:
    torch.manual_seed(0)
    return create_model("edrnet", pretrained=False)


def test_parameter_count_matches_official(model: EDRNet) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS


def test_default_loss_is_hybrid(model: EDRNet) -> None:
    assert model.default_loss == "hybrid"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: EDRNet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=7)  # refined, sal0..sal4, bridge


def test_eval_output_is_the_refined_train_output(model: EDRNet) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)


def test_refinement_adds_a_residual_to_the_finest_side_output() -> None:
    torch.manual_seed(1)
    net = EDRNet(pretrained=False)
    torch.nn.init.zeros_(net.refine.out.weight)
    net.train()
    with torch.no_grad():
        outs = net(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(outs[0], outs[1])  # zero residual: refined == sal0


def test_encoder_is_cbam_resnet34(model: EDRNet) -> None:
    stages = [model.encoder1, model.encoder2, model.encoder3, model.encoder4]
    assert [len(s) for s in stages] == [3, 4, 6, 3]
    blocks = [b for s in stages for b in s]
    assert all(isinstance(b, CBAMBasicBlock) for b in blocks)
    # official initialisation: the spatial gate's BN scale starts at zero, the channel MLP biases at zero
    assert all(b.cbam.spatial_gate.bn.weight.abs().sum() == 0 for b in blocks)
    assert all(b.cbam.channel_gate.fc1.bias.abs().sum() == 0 for b in blocks)
    assert blocks[0].cbam.channel_gate.fc1.out_features == 64 // 16


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_every_parameter_is_used_by_the_training_loss(model: EDRNet) -> None:
    assert unused_parameters(model) == []


def test_pretrained_weights_go_into_the_encoder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-34 ImageNet weights not found"):
        create_model("edrnet")
    torch.manual_seed(2)
    ref = torchvision.models.resnet34(weights=None).state_dict()
    path = tmp_path / "r34.pth"
    torch.save(ref, path)
    net = create_model("edrnet", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.encoder1[0].conv1.weight, ref["layer1.0.conv1.weight"])
    torch.testing.assert_close(net.encoder4[2].bn2.running_var, ref["layer4.2.bn2.running_var"])
    torch.testing.assert_close(net.encoder2[0].downsample[0].weight, ref["layer2.0.downsample.0.weight"])
