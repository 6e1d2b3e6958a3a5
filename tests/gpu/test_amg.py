"""The fast automatic mask generator against the official one on the GPU, random official-architecture weights:
same masks (every mask kept: thresholds 0, NMS IoU 1.0), and both generators' seconds per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.gpu.common import DEVICE, ON_GPU, record_timing, sd900_root, timed

pytestmark = pytest.mark.gpu

MODELS = ["vit_b", "mobile_sam", "sam2.1_hiera_t"]


def _image() -> np.ndarray:
    from defectbench.data import read_image, to_rgb

    return to_rgb(read_image(sd900_root() / "SD-saliency-900" / "Source Images" / "Sc_261.bmp"))


@pytest.mark.parametrize("name", MODELS)
def test_fast_generator_equals_official_on_gpu(name: str) -> None:
    from defectbench.methods.sam.checkpoints import load_model
    from defectbench.methods.sam.generator import AmgParams, FastMaskGenerator, OfficialMaskGenerator
    from defectbench.methods.sam.proposals import best_match_iou
    from defectbench.methods.sam.registry import get_spec

    if not ON_GPU and name == "vit_b":
        pytest.skip("SAM ViT-B at 1024 px is minutes per image on a CPU (dry runs cover the other two)")
    image = _image()
    model, _ = load_model(name, None, DEVICE, random_seed=0)
    family = get_spec(name).family
    params = AmgParams.for_model(name, {"points_per_side": 32 if ON_GPU else 4, "pred_iou_thresh": 0.0,
                                        "stability_score_thresh": 0.0, "box_nms_thresh": 1.0})
    official = OfficialMaskGenerator(model, family, params)
    fast = FastMaskGenerator(model, family, params, keep_logits=False)
    with torch.no_grad():
        fast.generate(image)  # warm-up: cuDNN / cuBLAS handles, kernel selection
        official.generate(image)
        ours, t_ours = timed(lambda: fast.generate(image))
        ref, t_ref = timed(lambda: official.generate(image))
    assert len(ref) == len(ours) == 3 * params.points_per_side ** 2
    best = best_match_iou(ref, ours)
    record_timing("amg", model=name, masks=len(ref), official_s=round(t_ref, 3), fast_s=round(t_ours, 3),
                  speedup=round(t_ref / t_ours, 2), iou_mean=round(float(best.mean()), 5),
                  iou_min=round(float(best.min()), 5))
    assert best.min() >= 0.99, f"{name}: worst best-match IoU {best.min():.4f}"
    assert np.allclose(np.sort(ref.predicted_iou), np.sort(ours.predicted_iou), atol=1e-2)
