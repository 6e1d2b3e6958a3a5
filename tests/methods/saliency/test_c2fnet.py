"""C2FNet: official parameter count, output conventions, ACFM / DGCM / MSCA, structure loss, Res2Net weights."""

from __future__ import annotations

import pytest
import torch

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import c2fnet as _c2fnet  # noqa: F401  (registers "c2fnet")
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.c2fnet import ACFM, DGCM, MSCA, C2FNet
from defectbench.methods.saliency.losses import create_loss, structure_loss
from defectbench.methods.saliency.res2net import Res2NetV1b
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in C2FNet().parameters()) of the official code
# (github.com/thograce/C2FNet, lib/C2FNet.py at commit 712bae7; its Res2Net weight loading skipped), run outside
# this repository. It includes the Res2Net's ImageNet classifier resnet.fc (2048 x 1000 + 1000), which the forward
# pass never uses and which we leave out; Table 7 of Song et al. gives 26.4 M. With the official weights copied into
# ours, the output matched the official forward exactly (max diff 0.0).
OFFICIAL_PARAMS = 28_411_217
OFFICIAL_UNUSED_CLASSIFIER = 2048 * 1000 + 1000


@pytest.fixture(scope="module")
def model() -> C2FNet:
    torch.manual_seed(0)
    return create_model("c2fnet", pretrained=False)


def test_parameter_count_is_official_without_the_unused_classifier(model: C2FNet) -> None:
    n = sum(p.numel() for p in model.parameters())
    assert n == OFFICIAL_PARAMS - OFFICIAL_UNUSED_CLASSIFIER == 26_362_217
    assert round(n / 1e6, 1) == 26.4  # Table 7
    assert model.resnet.fc is None


def test_default_loss_is_the_structure_loss(model: C2FNet) -> None:
    assert model.default_loss == "structure_sum"
    torch.manual_seed(2)
    target = (torch.rand(2, 1, 32, 32) > 0.7).float()
    logits = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(create_loss("structure_sum")([logits], target), structure_loss(logits, target))


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: C2FNet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=1)


def test_eval_output_is_the_train_output(model: C2FNet) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)


def test_msca_weights_are_sigmoid_of_local_plus_global() -> None:
    torch.manual_seed(1)
    msca = MSCA(16).eval()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        a = msca(x)
        expected = torch.sigmoid(msca.local_att(x) + msca.global_att(x))
        msca.local_att[4].weight.zero_()  # local branch -> 0: the weights become constant over space
        constant = msca(x)
    torch.testing.assert_close(a, expected)
    assert a.shape == x.shape and 0 < a.min() and a.max() < 1
    torch.testing.assert_close(constant, constant[:, :, :1, :1].expand_as(constant))


def test_acfm_blends_the_two_levels() -> None:
    torch.manual_seed(3)
    acfm = ACFM(16).eval()
    x, y = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        acfm.msca.global_att[5].bias.fill_(100.0)  # attention saturates at 1: only x passes
        torch.testing.assert_close(acfm(x, y), acfm.conv(x))
        acfm.msca.global_att[5].bias.fill_(-100.0)  # attention 0: only the upsampled y passes
        up = torch.nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(acfm(x, y), acfm.conv(up))


def test_dgcm_keeps_resolution() -> None:
    with torch.no_grad():
        assert DGCM(16).eval()(torch.randn(1, 16, 8, 12)).shape == (1, 16, 8, 12)


def test_every_parameter_is_used_by_the_training_loss(model: C2FNet) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: C2FNet) -> None:
    check_state_dict_round_trip(model, lambda: create_model("c2fnet", pretrained=False), (64, 64))


def test_pretrained_res2net_weights_go_into_the_backbone(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="Res2Net-50 v1b ImageNet weights not found.*res2net50_v1b_26w_4s-3cf99910"):
        create_model("c2fnet")
    torch.manual_seed(3)
    ref = Res2NetV1b().state_dict()  # the official file's layout, classifier included
    path = tmp_path / "r2n.pth"
    torch.save(ref, path)
    net = create_model("c2fnet", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.resnet.conv1[3].weight, ref["conv1.3.weight"])
    torch.testing.assert_close(net.resnet.layer3[5].convs[2].weight, ref["layer3.5.convs.2.weight"])
    torch.testing.assert_close(net.resnet.layer2[0].downsample[2].running_var, ref["layer2.0.downsample.2.running_var"])
