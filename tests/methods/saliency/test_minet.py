"""MINet-VGG16: official parameter count, output conventions, interaction modules, CEL loss, VGG-16-BN weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency import minet as _minet  # noqa: F401  (registers "minet")
from defectbench.methods.saliency.losses import create_loss
from defectbench.methods.saliency.minet import SIM, MINet, TwoLevelInteraction
from defectbench.methods.saliency.vgg import (
    build_vgg16_bn,
    vgg16_bn_features,
    vgg16_bn_stages,
)
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in MINet_VGG16().parameters()) of the official code
# (github.com/lartpang/MINet, code/network/MINet.py at commit 0f4ecf7; its ImageNet download skipped), run outside
# this repository. MINet_Res50 has 162,378,305. Table 7 of Song et al. prints 46.6 M beside 190.6 MB; the official
# MINet_VGG16 state dict is 190.5 MB. With the official weights copied into ours by position, the output matched the
# official forward exactly (max diff 0.0).
OFFICIAL_PARAMS = 47_562_737
VGG16_BN_FEATURE_PARAMS = 14_723_136  # torchvision vgg16_bn().features up to conv5_3 (the last max-pool has none)


@pytest.fixture(scope="module")
def model() -> MINet:
    torch.manual_seed(0)
    return create_model("minet", pretrained=False)


def test_parameter_count_matches_official(model: MINet) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.encoder.parameters()) == VGG16_BN_FEATURE_PARAMS


def test_default_loss_is_bce_plus_cel(model: MINet) -> None:
    assert model.default_loss == "bce_cel"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: MINet, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=1)


def test_eval_output_is_the_train_output(model: MINet) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)


def test_encoder_stages_end_at_conv1_2_to_conv5_3() -> None:
    stages = vgg16_bn_stages(vgg16_bn_features())
    x = torch.randn(1, 3, 64, 96)
    shapes = []
    for stage in stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
        assert isinstance(stage[-1], torch.nn.ReLU)
    assert shapes == [(64, 64, 96), (128, 32, 48), (256, 16, 24), (512, 8, 12), (512, 4, 6)]
    narrow = vgg16_bn_stages(vgg16_bn_features(16))
    assert [stage[-3].out_channels for stage in narrow] == [16, 32, 64, 128, 128]


def test_narrow_configuration_keeps_the_code_path() -> None:
    small = MINet(pretrained=False, width=16, backbone_width=16)
    assert [u.identity.out_channels for u in small.trans.units] == [8, 16, 16, 16, 16]
    assert small.trans.units[1].h2h_0.out_channels == 16  # AIM inner width: the smallest input width
    with pytest.raises(ValueError, match="ImageNet weights exist only for the full VGG-16-BN"):
        MINet(pretrained=True, backbone_width=16)


def test_interaction_units_keep_their_resolution() -> None:
    high, low = torch.randn(1, 16, 8, 12), torch.randn(1, 32, 4, 6)
    with torch.no_grad():
        assert TwoLevelInteraction(16, 32, 8, keep="high").eval()(high, low).shape == (1, 8, 8, 12)
        assert TwoLevelInteraction(16, 32, 8, keep="low").eval()(high, low).shape == (1, 8, 4, 6)
    with pytest.raises(ValueError, match="keep"):
        TwoLevelInteraction(16, 32, 8, keep="middle")


def test_sim_is_residual() -> None:
    torch.manual_seed(1)
    sim = SIM(8, 4).eval()
    with torch.no_grad():
        sim.bnh_2.weight.zero_()  # the refinement branch outputs relu(0 + bias 0) = 0: SIM becomes the identity
        x = torch.randn(1, 8, 6, 10)
        torch.testing.assert_close(sim(x), x)


def test_loss_is_bce_plus_batch_cel() -> None:
    torch.manual_seed(2)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    logits = torch.randn(2, 1, 16, 16)
    p = torch.sigmoid(logits)
    # MINet's CEL (code/loss/CEL.py): sums over the whole batch
    cel = ((p - p * target).sum() + (target - p * target).sum()) / (p.sum() + target.sum() + 1e-6)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target) + cel
    torch.testing.assert_close(create_loss("bce_cel")([logits], target), expected)


def test_every_parameter_is_used_by_the_training_loss(model: MINet) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: MINet) -> None:
    check_state_dict_round_trip(model, lambda: create_model("minet", pretrained=False), (64, 64))


def test_pretrained_vgg16_bn_weights_go_into_the_encoder(tmp_path, monkeypatch, stand_in_official) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="VGG-16-BN ImageNet weights not found.*vgg16_bn-6c64b313.pth"):
        create_model("minet")
    torch.manual_seed(3)
    # the feature tensors of torchvision's VGG-16-BN state dict are all the encoder needs (the 120 M-parameter
    # classifier is not used)
    ref = {k: v for k, v in torchvision.models.vgg16_bn(weights=None).state_dict().items() if k.startswith("features.")}
    ref["features.1.running_mean"].uniform_(-1, 1)
    path = tmp_path / "vgg16_bn-6c64b313.pth"
    torch.save(ref, path)
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="not the official vgg16_bn-6c64b313.pth: its sha256 is .* the official "
                                              "file's is 6c64b3138f2f"):
        create_model("minet")  # a random file under the official name is refused
    stand_in_official("vgg16_bn", path)
    net = create_model("minet")  # found by its official name in $DEFECTBENCH_CHECKPOINTS
    torch.testing.assert_close(net.encoder[0][0].weight, ref["features.0.weight"])
    torch.testing.assert_close(net.encoder[0][1].running_mean, ref["features.1.running_mean"])
    torch.testing.assert_close(net.encoder[4][7].weight, ref["features.40.weight"])  # conv5_3
    del ref["features.40.weight"]
    bad = tmp_path / "bad.pth"
    torch.save(ref, bad)
    with pytest.raises(CheckpointError, match="not a VGG-16-BN ImageNet state dict.*features.40.weight"):
        build_vgg16_bn(pretrained=True, weights_path=bad)
