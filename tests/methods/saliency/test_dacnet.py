"""DACNet: official parameter count (Table 7's 98.4 M), output conventions, shared multi-scale encoder, weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.dacnet import DACNet
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in DACNet(3, 1).parameters()) of the official code
# (github.com/zxforchid/DACNet, model/DACNet.py at commit d9dd91f; resnet34(pretrained=True) replaced by
# weights=None), run outside this repository. Table 7 of Song et al. gives 98.4 M.
OFFICIAL_PARAMS = 98_390_663


@pytest.fixture(scope="module")
def model() -> DACNet:
    torch.manual_seed(0)
    return create_model("dacnet", pretrained=False)


def test_parameter_count_matches_official(model: DACNet) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS


def test_default_loss_is_hybrid(model: DACNet) -> None:
    assert model.default_loss == "hybrid"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: DACNet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=7)  # d1 .. d6, bridge


def test_eval_output_is_d1(model: DACNet) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[6], main)


def test_shared_encoder_depths_and_strides(model: DACNet) -> None:
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        full = model.backbone(x, depth=6)
        quarter = model.backbone(torch.nn.functional.max_pool2d(x, 4, 4, ceil_mode=True), depth=4)
    assert [f.shape[1:] for f in full] == [(64, 64, 96), (128, 32, 48), (256, 16, 24), (512, 8, 12), (512, 4, 6), (512, 2, 3)]
    assert quarter[-1].shape == full[-1].shape  # all three scales meet at 1/32 of the input


def test_every_parameter_is_used_by_the_training_loss(model: DACNet) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: DACNet) -> None:
    check_state_dict_round_trip(model, lambda: create_model("dacnet", pretrained=False), (64, 64))


def test_resnet34_weights_go_into_the_shared_encoder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-34 ImageNet weights not found"):
        create_model("dacnet")
    torch.manual_seed(2)
    ref = torchvision.models.resnet34(weights=None).state_dict()
    path = tmp_path / "r34.pth"
    torch.save(ref, path)
    net = create_model("dacnet", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.backbone.encoder1[0].conv1.weight, ref["layer1.0.conv1.weight"])
    torch.testing.assert_close(net.backbone.encoder4[2].bn2.running_var, ref["layer4.2.bn2.running_var"])
    torch.testing.assert_close(net.backbone.encoder3[0].downsample[0].weight, ref["layer3.0.downsample.0.weight"])
