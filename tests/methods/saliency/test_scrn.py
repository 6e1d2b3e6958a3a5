"""SCRN: official parameter count, output conventions, cross refinement, edge labels, backbone weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency import scrn as _scrn  # noqa: F401  (registers "scrn")
from defectbench.methods.saliency.losses import create_loss, mask_edges
from defectbench.methods.saliency.scrn import SCRN, CrossRefinementUnit
from tests.methods.saliency.model_checks import (
    check_forward_shapes,
    check_state_dict_round_trip,
    train_and_eval_outputs,
    unused_parameters,
)

# Reference, not a result: sum(p.numel() for p in SCRN().parameters()) of the official code
# (github.com/wuzhe71/SCRN, model/ResNet_models.py at commit ee171ca; its ImageNet download in initialize_weights
# skipped), run outside this repository. Its ResNet-50 has no classifier (23,508,032 of it). With the official
# weights copied into ours by position, eval and train outputs matched the official forward exactly (max diff 0.0).
OFFICIAL_PARAMS = 25_226_498


@pytest.fixture(scope="module")
def model() -> SCRN:
    torch.manual_seed(0)
    return create_model("scrn", pretrained=False)


def test_parameter_count_matches_official(model: SCRN) -> None:
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    assert sum(p.numel() for p in model.resnet.parameters()) == 23_508_032


def test_default_loss_is_bce_on_saliency_and_edges(model: SCRN) -> None:
    assert model.default_loss == "bce_edge"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: SCRN, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=2)  # saliency, edge


def test_eval_output_is_the_saliency_map(model: SCRN) -> None:
    outs, main = train_and_eval_outputs(model)
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[1], main)


def test_decoder_initialisation_is_scrns(model: SCRN) -> None:
    weight = model.reduce_sal[3][0][0].weight
    assert abs(weight.std().item() - 0.01) < 0.001
    assert model.output_edge.output[1].bias is not None  # the final 1 x 1 conv keeps its bias


def test_cross_refinement_adds_residuals_and_multiplies_the_edge_stream() -> None:
    torch.manual_seed(1)
    unit = CrossRefinementUnit(8).eval()  # fresh BN statistics: every conv-BN maps 0 to 0
    sizes = (16, 8, 4, 2)
    sal = [torch.randn(1, 8, s, s) for s in sizes]
    edge = [torch.randn(1, 8, s, s) for s in sizes]
    with torch.no_grad():
        new_sal, new_edge = unit([torch.zeros_like(s) for s in sal], edge)
        both_sal, both_edge = unit(sal, edge)
    for e, out in zip(edge, new_edge, strict=True):  # zero saliency: the product vanishes, edges pass unchanged
        torch.testing.assert_close(out, e)
    assert all(not torch.equal(a, torch.zeros_like(a)) for a in new_sal)  # saliency still gets the edge residual
    assert [t.shape[-1] for t in both_sal] == [t.shape[-1] for t in both_edge] == list(sizes)
    assert not torch.allclose(both_edge[0], edge[0])


def _official_edges(mask: np.ndarray) -> np.ndarray:
    """SCRN's label_edge_prediction (utils/func.py) written out with numpy: Sobel of mask > 0.5, replicate pad."""
    m = np.pad((mask > 0.5).astype(np.float32), 1, mode="edge")
    fx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    h, w = mask.shape
    gx = np.zeros((h, w), np.float32)
    gy = np.zeros((h, w), np.float32)
    for dy in range(3):
        for dx in range(3):
            gx += fx[dy, dx] * m[dy:dy + h, dx:dx + w]
            gy += fx.T[dy, dx] * m[dy:dy + h, dx:dx + w]
    return (np.sqrt(gx * gx + gy * gy) > 1.5).astype(np.float32)


def test_edge_labels_are_scrns() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((2, 1, 24, 20), np.float32)
    masks[0, 0, 5:15, 4:12] = 1.0
    masks[1, 0] = rng.random((24, 20)) > 0.7
    masks[1, 0, 0, 0] = 0.6  # soft values are binarised at 0.5 first
    edges = mask_edges(torch.from_numpy(masks))
    for i in range(2):
        np.testing.assert_array_equal(edges[i, 0].numpy(), _official_edges(masks[i, 0]))
    assert edges[0, 0, 10, 8] == 0 and edges[0, 0, 5, 8] == 1 and edges[0, 0, 4, 8] == 1  # interior off, both sides on


def test_loss_is_saliency_bce_plus_edge_bce() -> None:
    torch.manual_seed(2)
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:10, 5:12] = 1.0
    sal, edge = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(sal, target) + bce(edge, mask_edges(target))
    torch.testing.assert_close(create_loss("bce_edge")([sal, edge], target), expected)
    with pytest.raises(ValueError, match="saliency, edge"):
        create_loss("bce_edge")([sal], target)


def test_every_parameter_is_used_by_the_training_loss(model: SCRN) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trips_bit_exactly(model: SCRN) -> None:
    check_state_dict_round_trip(model, lambda: create_model("scrn", pretrained=False), (64, 64))


def test_pretrained_weights_go_into_the_backbone(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="ResNet-50 ImageNet weights not found"):
        create_model("scrn")
    torch.manual_seed(3)
    ref = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "r50.pth"
    torch.save(ref, path)
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="ResNet-50 ImageNet weights not found"):
        create_model("scrn")  # the folder is searched for the official file name only
    net = create_model("scrn", pretrained=True, backbone_weights=str(path))
    torch.testing.assert_close(net.resnet.conv1.weight, ref["conv1.weight"])
    torch.testing.assert_close(net.resnet.layer3[4].conv2.weight, ref["layer3.4.conv2.weight"])
    torch.testing.assert_close(net.resnet.layer4[0].downsample[1].running_var, ref["layer4.0.downsample.1.running_var"])
