"""Our fast decoder and generator return the official masks (SAM, MobileSAM, SAM 2.1 architectures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectbench.methods.sam.fast_decoder import FastSamDecoder
from defectbench.methods.sam.generator import AmgParams, FastMaskGenerator, OfficialMaskGenerator, make_generator
from defectbench.methods.sam.proposals import best_match_iou
from defectbench.methods.sam.upsample import axis_matrices, upsample_logits, used_extent

from tests.conftest import MT, SD900, needs_mt, needs_sd900
from .helpers import tiny_sam


def _official_decode(sam, feats, coords):
    labels = torch.ones(len(coords), 1, dtype=torch.int)
    sparse, dense = sam.prompt_encoder(points=(coords[:, None], labels), boxes=None, masks=None)
    return sam.mask_decoder(image_embeddings=feats, image_pe=sam.prompt_encoder.get_dense_pe(),
                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True)


@pytest.fixture(scope="module")
def sam1024():
    """The published SAM decoder (64 x 64 embedding, 1024 input) with random, non-degenerate weights."""
    sam = tiny_sam(img_size=1024, embed_dim=16, depth=1, seed=1)
    with torch.no_grad():
        for p in sam.mask_decoder.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return sam


def test_fast_decoder_equals_official_decoder(sam1024):
    torch.manual_seed(0)
    feats = torch.randn(1, 256, 64, 64)
    coords = torch.rand(12, 2) * 1024
    with torch.no_grad():
        low, iou = _official_decode(sam1024, feats, coords)
        fd = FastSamDecoder(sam1024)
        ctx = fd.prepare(feats)
        dp = fd.decode(ctx, coords)
        ours = fd.upscale(ctx, dp)
        part = fd.upscale(ctx, dp, torch.tensor([3, 7]), rows=150, cols=97)
    assert torch.allclose(dp.iou, iou, atol=1e-5)
    assert low.abs().mean() > 0.05  # not a trivial comparison
    assert torch.allclose(ours, low, atol=1e-4)
    assert torch.allclose(part, low[[3, 7], :, :150, :97], atol=1e-4)


@pytest.mark.parametrize("hw", [(200, 200), (375, 265), (97, 300)])
def test_axis_operators_equal_sam_postprocessing(sam1024, hw):
    from segment_anything.utils.transforms import ResizeLongestSide

    torch.manual_seed(1)
    low = torch.randn(3, 1, 256, 256)
    input_size = ResizeLongestSide.get_preprocess_shape(*hw, 1024)
    ref = sam1024.postprocess_masks(low, input_size, hw)[:, 0]
    ay, ax = axis_matrices({"family": "sam", "img_size": 1024, "low_size": 256}, hw)
    rows, cols = used_extent(ay), used_extent(ax)
    assert rows <= -(-input_size[0] // 4) + 1 and cols <= -(-input_size[1] // 4) + 1
    ours = upsample_logits(low[:, 0, :rows, :cols], ay, ax)
    assert torch.allclose(ours, ref, atol=1e-5)
    sam2_ref = torch.nn.functional.interpolate(low, hw, mode="bilinear", align_corners=False)[:, 0]
    ay2, ax2 = axis_matrices({"family": "sam2", "img_size": 1024, "low_size": 256}, hw)
    assert torch.allclose(upsample_logits(low[:, 0], ay2, ax2), sam2_ref, atol=1e-5)


def _compare(official, fast, min_iou=0.99):
    assert len(official) == len(fast) > 0
    best = best_match_iou(official, fast)
    assert best.min() >= min_iou and best.mean() >= 0.999
    assert np.allclose(np.sort(official.predicted_iou), np.sort(fast.predicted_iou), atol=1e-4)
    assert np.allclose(np.sort(official.stability_score), np.sort(fast.stability_score), atol=1e-2)
    assert np.array_equal(np.unique(official.points, axis=0), np.unique(fast.points, axis=0))


def _image(path_glob: str):
    from defectbench.data import read_image, to_rgb

    return to_rgb(read_image(sorted(path_glob)[0]))


@needs_sd900
def test_fast_generator_equals_official_on_sd900():
    image = _image(list((SD900 / "Source Images").glob("Sc_7*.bmp")))
    sam = tiny_sam(img_size=128, sharpen=100.0)
    loose = AmgParams(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    a = OfficialMaskGenerator(sam, "sam", loose).generate(image)
    b = FastMaskGenerator(sam, "sam", loose).generate(image)
    assert len(a) == 3 * 36  # every mask kept: the comparison covers all of them
    _compare(a, b)
    # filters active: a predicted-IoU threshold between the values, stability and NMS
    mid = float(np.median(a.predicted_iou))
    strict = AmgParams(points_per_side=6, pred_iou_thresh=mid, stability_score_thresh=0.5, box_nms_thresh=0.7)
    a2 = OfficialMaskGenerator(sam, "sam", strict).generate(image)
    b2 = FastMaskGenerator(sam, "sam", strict).generate(image)
    assert 0 < len(a2) < len(a)
    _compare(a2, b2)


@needs_mt
def test_fast_generator_equals_official_with_crops_and_small_region_removal(monkeypatch):
    """A non-square MT image (padding in SAM's input), a crop layer, and small-region removal.

    Random weights give scattered masks whose boxes always touch a crop's inner edge, so SAM's edge filter
    would drop every crop mask; it is switched off in both generators to compare the crop machinery itself.
    """
    import segment_anything.automatic_mask_generator as official_amg
    import segment_anything.utils.amg as amg_utils

    def never_near_edge(boxes, *args, **kwargs):
        return torch.zeros(len(boxes), dtype=torch.bool)

    monkeypatch.setattr(official_amg, "is_box_near_crop_edge", never_near_edge)
    monkeypatch.setattr(amg_utils, "is_box_near_crop_edge", never_near_edge)
    image = _image(list((MT / "MT_Blowhole" / "Imgs").glob("*.jpg")))
    assert image.shape[0] != image.shape[1]
    sam = tiny_sam(img_size=128, sharpen=100.0, shrink=30.0)
    params = AmgParams(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.3, box_nms_thresh=0.8,
                       crop_n_layers=1, crop_nms_thresh=0.9, min_mask_region_area=30)
    a = OfficialMaskGenerator(sam, "sam", params).generate(image)
    b = FastMaskGenerator(sam, "sam", params).generate(image)
    assert len({tuple(c) for c in a.crop_boxes}) == 5  # the full image and its four crops all contribute
    _compare(a, b)


def test_fast_generator_equals_official_for_mobile_sam_and_sam2():
    from sam2.build_sam import build_sam2

    from defectbench.methods.sam.mobilesam import build_mobile_sam

    rng = np.random.default_rng(0)
    image = (rng.random((90, 120, 3)) * 255).astype(np.uint8)
    params = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    torch.manual_seed(0)
    mobile = build_mobile_sam(img_size=256).eval()
    _compare(OfficialMaskGenerator(mobile, "sam", params).generate(image),
             FastMaskGenerator(mobile, "sam", params).generate(image))
    sam2 = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                      hydra_overrides_extra=["++model.image_size=256"])
    _compare(OfficialMaskGenerator(sam2, "sam2", params).generate(image),
             FastMaskGenerator(sam2, "sam2", params).generate(image))


def test_params_defaults_and_validation():
    from defectbench.errors import ConfigError

    p = AmgParams.for_model("vit_b")
    assert (p.points_per_side, p.pred_iou_thresh, p.stability_score_thresh, p.box_nms_thresh) == (32, 0.88, 0.95, 0.7)
    assert AmgParams.for_model("sam2.1_hiera_t").pred_iou_thresh == 0.8
    assert AmgParams.for_model("vit_b", {"points_per_side": 8, "box_nms_thresh": None}).points_per_side == 8
    with pytest.raises(ConfigError, match="unknown automatic-mask-generation setting"):
        AmgParams.for_model("vit_b", {"points_per_sid": 8})
    with pytest.raises(ConfigError, match="must lie in"):
        AmgParams.for_model("vit_b", {"pred_iou_thresh": 1.5})
    with pytest.raises(ConfigError, match="unknown generator"):
        make_generator("slow", tiny_sam(), "vit_b", p)


def test_soft_masks_follow_the_logits():
    """Stored low-resolution logits reproduce the masks: sigmoid > 0.5 exactly where the mask is."""
    rng = np.random.default_rng(1)
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    sam = tiny_sam(img_size=128, sharpen=100.0)
    params = AmgParams(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    props = FastMaskGenerator(sam, "sam", params).generate(image)
    soft = props.soft_masks()
    masks = props.masks()
    agree = ((soft > 0.5) == masks).mean()
    assert agree > 0.999  # float16 storage may flip a pixel whose logit is ~0
