"""Saliency losses on hand-computed values, against scikit-image's SSIM, and through the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from defectbench.errors import DefectbenchError
from defectbench.methods.saliency import losses as L

BIG = 30.0  # |logit| that makes sigmoid 0/1 to float32 precision


def _blob_target(b: int = 2, h: int = 48, w: int = 48) -> torch.Tensor:
    t = torch.zeros(b, 1, h, w)
    t[:, :, 10:30, 15:40] = 1.0
    t[1, :, 35:45, 5:12] = 1.0
    return t


def _perfect_logits(t: torch.Tensor) -> torch.Tensor:
    return (t * 2 - 1) * BIG


# ----------------------------------------------------------------------------------------- building blocks


def test_bce_of_zero_logits_is_ln2() -> None:
    t = _blob_target()
    assert L.bce_loss(torch.zeros_like(t), t).item() == pytest.approx(math.log(2), abs=1e-6)


def test_iou_loss_hand_computed_and_perfect() -> None:
    t = torch.zeros(1, 1, 4, 4)
    t[..., :2, :] = 1.0  # half foreground
    # p = 0.5 everywhere: inter = 4, union = 8 + 8 - 4 = 12 -> loss 1 - 1/3
    assert L.iou_loss(torch.zeros_like(t), t).item() == pytest.approx(2 / 3, abs=1e-6)
    assert L.iou_loss(_perfect_logits(_blob_target()), _blob_target()).item() == pytest.approx(0.0, abs=1e-5)
    assert L.iou_loss(-_perfect_logits(_blob_target()), _blob_target()).item() == pytest.approx(1.0, abs=1e-5)


def test_iou_loss_is_finite_for_empty_target_and_confident_background() -> None:
    t = torch.zeros(2, 1, 8, 8)
    loss = L.iou_loss(torch.full_like(t, -200.0), t)
    assert torch.isfinite(loss)


def test_gaussian_window_is_basnets() -> None:
    w = L.gaussian_window(11, 1.5)[0, 0]
    assert w.shape == (11, 11)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.argmax(w).item() == 5 * 11 + 5
    assert (w[5, 5] / w[5, 6]).item() == pytest.approx(math.exp(1 / (2 * 1.5**2)), rel=1e-5)
    assert torch.allclose(w, w.T)


def test_ssim_of_identical_maps_is_one_and_loss_zero() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 1, 32, 40)
    assert L.ssim(img, img).item() == pytest.approx(1.0, abs=1e-5)
    t = _blob_target()
    assert L.ssim_loss(_perfect_logits(t), t).item() == pytest.approx(0.0, abs=1e-5)


def test_ssim_map_matches_scikit_image_inside_the_border() -> None:
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    a = rng.random((40, 48))
    b = np.clip(a + 0.2 * rng.standard_normal((40, 48)), 0, 1)
    _, ref = skm.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
    ours = L.ssim_map(torch.tensor(a)[None, None], torch.tensor(b)[None, None])[0, 0].numpy()
    inner = (slice(5, -5), slice(5, -5))  # away from the 11 x 11 window's border (zero vs. reflect padding)
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-6)


def test_hybrid_loss_is_sum_of_parts_and_zero_when_perfect() -> None:
    torch.manual_seed(1)
    t = _blob_target()
    logits = torch.randn_like(t) * 2
    parts = L.bce_loss(logits, t) + L.ssim_loss(logits, t) + L.iou_loss(logits, t)
    assert L.hybrid_loss(logits, t).item() == pytest.approx(parts.item(), rel=1e-6)
    assert L.hybrid_loss(_perfect_logits(t), t).item() == pytest.approx(0.0, abs=1e-4)


def test_boundary_weights_hand_computed() -> None:
    assert torch.equal(L.boundary_weights(torch.zeros(1, 1, 40, 40)), torch.ones(1, 1, 40, 40))
    ones = torch.ones(1, 1, 31, 31)
    w = L.boundary_weights(ones)
    assert w[0, 0, 15, 15].item() == pytest.approx(1.0, abs=1e-6)  # the window sees only ones
    # the corner's 31 x 31 window (zero padded, padding counted) holds 16 x 16 ones
    assert w[0, 0, 0, 0].item() == pytest.approx(1 + 5 * (1 - 256 / 961), abs=1e-5)


def test_weighted_bce_with_unit_weights_is_bce_and_weights_emphasise_edges() -> None:
    torch.manual_seed(2)
    t = _blob_target()
    logits = torch.randn_like(t)
    assert L.weighted_bce_loss(logits, t, torch.ones_like(t)).item() == pytest.approx(L.bce_loss(logits, t).item(), rel=1e-6)
    # an error only on the blob's edge costs more with boundary weights than without
    edge_err = _perfect_logits(t)
    edge_err[:, :, 10, 15:40] = -BIG
    assert L.weighted_bce_loss(edge_err, t) > L.weighted_bce_loss(edge_err, t, torch.ones_like(t))


def test_weighted_iou_hand_computed_and_perfect() -> None:
    t = torch.zeros(1, 1, 4, 4)
    t[..., 0, 0] = 1.0
    w = torch.ones_like(t)
    # p = 0.5: inter = 0.5, union = sum(p + t) = 8 + 1 = 9 -> 1 - 1.5 / 9.5
    assert L.weighted_iou_loss(torch.zeros_like(t), t, w).item() == pytest.approx(1 - 1.5 / 9.5, abs=1e-6)
    big = _blob_target()
    assert L.weighted_iou_loss(_perfect_logits(big), big).item() == pytest.approx(0.0, abs=1e-5)


def test_structure_loss_is_weighted_bce_plus_weighted_iou() -> None:
    torch.manual_seed(3)
    t = _blob_target()
    logits = torch.randn_like(t)
    expected = L.weighted_bce_loss(logits, t) + L.weighted_iou_loss(logits, t)
    assert L.structure_loss(logits, t).item() == pytest.approx(expected.item(), rel=1e-6)
    assert L.structure_loss(_perfect_logits(t), t).item() == pytest.approx(0.0, abs=1e-4)


# ----------------------------------------------------------------------------------------- registry


def test_registry_names_and_unknown_loss() -> None:
    assert {"bce", "hybrid", "structure"} <= set(L.list_losses()) and L.list_losses() == sorted(L.list_losses())
    with pytest.raises(DefectbenchError, match="unknown loss 'dice'"):
        L.create_loss("dice")


def test_bce_and_hybrid_sum_over_all_outputs() -> None:
    torch.manual_seed(4)
    t = _blob_target()
    outs = [torch.randn_like(t) for _ in range(3)]
    bce = L.create_loss("bce")(outs, t)
    assert bce.item() == pytest.approx(sum(L.bce_loss(o, t).item() for o in outs), rel=1e-6)
    hyb = L.create_loss("hybrid")(outs, t)
    assert hyb.item() == pytest.approx(sum(L.hybrid_loss(o, t).item() for o in outs), rel=1e-5)
    # a single tensor and a B x H x W target are accepted
    assert L.create_loss("bce")(outs[0], t[:, 0]).item() == pytest.approx(L.bce_loss(outs[0], t).item(), rel=1e-6)


def test_structure_uses_f3net_output_weights() -> None:
    torch.manual_seed(5)
    t = _blob_target()
    outs = [torch.randn_like(t) for _ in range(6)]
    per = [L.structure_loss(o, t).item() for o in outs]
    # F3Net train.py: (loss1u + loss2u)/2 + loss2r/2 + loss3r/4 + loss4r/8 + loss5r/16
    expected = (per[0] + per[1]) / 2 + per[2] / 2 + per[3] / 4 + per[4] / 8 + per[5] / 16
    assert L.create_loss("structure")(outs, t).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="6 output weights but the model returned 2"):
        L.create_loss("structure")(outs[:2], t)
    custom = L.create_loss("structure", weights=[1.0, 0.0])(outs[:2], t)
    assert custom.item() == pytest.approx(per[0], rel=1e-5)


def test_target_shape_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="does not match"):
        L.create_loss("bce")([torch.zeros(1, 1, 8, 8)], torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("name", ["bce", "hybrid", "structure"])
def test_gradients_flow_and_descend(name: str) -> None:
    torch.manual_seed(6)
    t = _blob_target()
    n = 6 if name == "structure" else 2
    logits = [torch.randn_like(t).requires_grad_(True) for _ in range(n)]
    loss_fn = L.create_loss(name)
    loss = loss_fn(logits, t)
    loss.backward()
    for x in logits:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # one gradient step lowers the loss
    with torch.no_grad():
        stepped = [x - 5.0 * x.grad / x.grad.norm() for x in logits]
    assert loss_fn(stepped, t) < loss
