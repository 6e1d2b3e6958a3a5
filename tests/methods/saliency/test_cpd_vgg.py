"""CPD-VGG: official parameter count (Table 7's 29.2 M), output conventions, two-branch VGG-16 weights."""

from __future__ import annotations

import pytest
import torch

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.cpd import CPDVGG
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in CPD_VGG().parameters()) of the official code
# (github.com/wuzhe71/CPD, model/CPD_models.py at commit e7373b4; its VGG-16 file loading skipped), run outside
# this repository. Its two-branch VGG-16 is 27,693,888 of it; Table 7 of Song et al. gives CPD 29.2 M.
OFFICIAL_PARAMS = 29_232_771


@pytest.fixture(scope="module")
def model() -> CPDVGG:
    torch.manual_seed(0)
    return create_model("cpd_vgg", pretrained=False)


def test_parameter_count_matches_official(model: CPDVGG) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.vgg.parameters()) == 27_693_888


def test_default_loss_is_bce(model: CPDVGG) -> None:
    assert model.default_loss == "bce"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: CPDVGG, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=2)  # detection, attention


def test_eval_output_is_the_detection_map(model: CPDVGG) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_vgg_pools_by_averaging_and_decoders_have_no_batchnorm(model: CPDVGG) -> None:
    pools = [m for m in model.vgg.modules() if isinstance(m, (torch.nn.AvgPool2d, torch.nn.MaxPool2d))]
    assert len(pools) == 6 and all(isinstance(p, torch.nn.AvgPool2d) for p in pools)  # 2 shared + 2 per branch
    for part in (model.rfb3_1, model.agg2):
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in part.modules())
    assert model.rfb5_2.conv_cat.bias.abs().sum() == 0 and 0.005 < model.rfb5_2.conv_cat.weight.std() < 0.015


def test_every_parameter_is_used_by_the_training_loss(model: CPDVGG) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: CPDVGG) -> None:
    check_state_dict_round_trip(model, lambda: create_model("cpd_vgg", pretrained=False), (64, 64))


def test_vgg16_weights_go_into_both_branches(vgg16_file, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="VGG-16 ImageNet weights not found"):
        create_model("cpd_vgg")
    path, ref = vgg16_file
    net = create_model("cpd_vgg", pretrained=True, backbone_weights=str(path))
    v = net.vgg
    torch.testing.assert_close(v.conv1[0].weight, ref["features.0.weight"])
    torch.testing.assert_close(v.conv3[-2].bias, ref["features.14.bias"])  # conv3_3
    for conv4 in (v.conv4_1, v.conv4_2):
        torch.testing.assert_close(conv4[1].weight, ref["features.17.weight"])  # conv4_1
    for conv5 in (v.conv5_1, v.conv5_2):
        torch.testing.assert_close(conv5[-2].weight, ref["features.28.weight"])  # conv5_3
    assert v.conv5_1[-2].weight.data_ptr() != v.conv5_2[-2].weight.data_ptr()  # two copies
