"""CPD-R: official parameter count, output conventions, holistic attention, two-branch backbone weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency.cpd import CPD, HolisticAttention, gaussian_kernel, min_max_norm

from tests.methods.saliency.model_checks import check_forward_shapes, train_and_eval_outputs, unused_parameters

# Reference, not a result: sum(p.numel() for p in CPD_ResNet().parameters()) of the official code
# (github.com/wuzhe71/CPD, model/CPD_ResNet_models.py at commit e7373b4; its ImageNet download in
# initialize_weights skipped), run outside this repository. It includes the trainable 31 x 31 Gaussian of
# the holistic attention (961 parameters) and both copies of layer3/layer4.
OFFICIAL_PARAMS = 47_851_075


@pytest.fixture(scope="module")
def model() -> CPD:
    torch.manual_seed(0)
    return create_model("cpd", pretrained=False)


def test_parameter_count_matches_official(model: CPD) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert model.HA.gaussian_kernel.requires_grad and model.HA.gaussian_kernel.numel() == 31 * 31


def test_default_loss_is_bce(model: CPD) -> None:
    assert model.default_loss == "bce"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: CPD, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=2)  # detection, attention


def test_eval_output_is_the_detection_map(model: CPD) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_gaussian_kernel_is_cpds_gkern() -> None:
    st = pytest.importorskip("scipy.stats")
    # the official gkern(31, 4), written out with scipy as in CPD's HolisticAttention.py
    interval = (2 * 4 + 1.0) / 31
    x = np.linspace(-4 - interval / 2.0, 4 + interval / 2.0, 32)
    k1 = np.diff(st.norm.cdf(x))
    ref = np.sqrt(np.outer(k1, k1))
    ref /= ref.sum()
    np.testing.assert_allclose(gaussian_kernel(31, 4.0).numpy(), ref, rtol=1e-5, atol=1e-9)


def test_min_max_norm_per_map() -> None:
    x = torch.tensor([[[[1.0, 3.0], [5.0, 9.0]]], [[[-2.0, -2.0], [0.0, 2.0]]]])
    out = min_max_norm(x)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    torch.testing.assert_close(out[1, 0], torch.tensor([[0.0, 0.0], [0.5, 1.0]]))


def test_holistic_attention_enlarges_the_attended_region() -> None:
    ha = HolisticAttention()
    feats = torch.ones(1, 4, 40, 40)
    att = torch.zeros(1, 1, 40, 40)
    att[..., 20, 20] = 1.0
    with torch.no_grad():
        out = ha(att, feats)
        assert torch.equal(ha(torch.zeros_like(att), feats), torch.zeros_like(feats))
    assert out[0, 0, 20, 20].item() == pytest.approx(1.0)
    assert 0 < out[0, 0, 20, 25].item() < 1  # a neighbour is kept partly: the attention was spread
    assert out[0, 0, 0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(out[0, 0], out[0, 3])


def test_every_parameter_is_used_by_the_training_loss(model: CPD) -> None:
    assert unused_parameters(model) == []


def test_pretrained_weights_go_into_both_branches(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-50 ImageNet weights not found"):
        create_model("cpd")
    torch.manual_seed(3)
    ref = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "r50.pth"
    torch.save(ref, path)
    net = create_model("cpd", pretrained=True, backbone_weights=str(path))
    r = net.resnet
    torch.testing.assert_close(r.conv1.weight, ref["conv1.weight"])
    torch.testing.assert_close(r.layer2[3].conv3.weight, ref["layer2.3.conv3.weight"])
    for layer3 in (r.layer3_1, r.layer3_2):
        torch.testing.assert_close(layer3[5].conv2.weight, ref["layer3.5.conv2.weight"])
    for layer4 in (r.layer4_1, r.layer4_2):
        torch.testing.assert_close(layer4[0].downsample[1].running_mean, ref["layer4.0.downsample.1.running_mean"])
    assert r.layer4_1[0].conv1.weight.data_ptr() != r.layer4_2[0].conv1.weight.data_ptr()  # two copies
