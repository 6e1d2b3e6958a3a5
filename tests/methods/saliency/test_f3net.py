"""F3Net: official parameter count, output conventions, cascaded feedback decoder, backbone weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.f3net import CFM, Decoder, F3Net

from tests.methods.saliency.model_checks import check_forward_shapes, train_and_eval_outputs, unused_parameters

# Reference, not a result: sum(p.numel() for p in F3Net(cfg).parameters()) of the official code
# (github.com/weijun88/F3Net, src/net.py at commit eecace3; cfg.snapshot=None and its ResNet-50 weight
# loading skipped), run outside this repository. The ResNet-50 trunk without classifier is 23,508,032 of it.
OFFICIAL_PARAMS = 25_536_710


@pytest.fixture(scope="module")
def model() -> F3Net:
    torch.manual_seed(0)
    return create_model("f3net", pretrained=False)


def test_parameter_count_matches_official(model: F3Net) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.bkbone.parameters()) == 23_508_032


def test_default_loss_is_structure(model: F3Net) -> None:
    assert model.default_loss == "structure"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: F3Net, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=6)  # pred2, pred1, out2r..out5r


def test_eval_output_is_the_second_decoders_prediction(model: F3Net) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_decoder_feedback_is_added_to_every_level() -> None:
    torch.manual_seed(1)
    dec = Decoder().eval()
    feats = [torch.randn(1, 64, s, s) for s in (16, 8, 4, 2)]
    with torch.no_grad():
        plain = dec(*feats)
        zero_fb = dec(*feats, feedback=torch.zeros(1, 64, 16, 16))
        fb = dec(*feats, feedback=torch.ones(1, 64, 16, 16))
    for a, b in zip(plain, zero_fb, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(fb[3], feats[3] + 1)  # the deepest level returns its input plus feedback
    assert not torch.allclose(fb[4], plain[4])
    assert [t.shape[-1] for t in fb] == [16, 8, 4, 2, 16]


def test_cfm_resizes_the_deeper_feature() -> None:
    cfm = CFM().eval()
    with torch.no_grad():
        h, v = cfm(torch.randn(1, 64, 8, 12), torch.randn(1, 64, 4, 6))
    assert h.shape == v.shape == (1, 64, 8, 12)


def test_head_initialisation_is_f3nets(model: F3Net) -> None:
    for name in ("linearp1", "linearp2", "linearr2", "linearr5"):
        assert getattr(model, name).bias.abs().sum() == 0
    assert model.squeeze5[0].bias.abs().sum() == 0


def test_every_parameter_is_used_by_the_training_loss(model: F3Net) -> None:
    assert unused_parameters(model) == []


def test_pretrained_weights_go_into_the_backbone(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-50 ImageNet weights not found"):
        create_model("f3net")
    torch.manual_seed(2)
    ref = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "r50.pth"
    torch.save(ref, path)
    net = create_model("f3net", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.bkbone.conv1.weight, ref["conv1.weight"])
    torch.testing.assert_close(net.bkbone.layer4[2].conv3.weight, ref["layer4.2.conv3.weight"])
    torch.testing.assert_close(net.bkbone.layer1[0].downsample[1].running_var, ref["layer1.0.downsample.1.running_var"])
