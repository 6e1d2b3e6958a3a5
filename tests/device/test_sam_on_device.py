"""SAM on a (fake) GPU: the fast mask generator for the SAM, MobileSAM and SAM 2.1 architectures, every mask
selection and the SAM method end to end on ``cuda:1``. No CPU tensor may meet a GPU one (the fake device raises
as CUDA does, see fakecuda.py), and every number must equal the CPU's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from defectbench.methods.sam.generator import AmgParams, FastMaskGenerator, OfficialMaskGenerator
from defectbench.methods.sam.proposals import Proposals
from tests.conftest import write_png
from tests.methods.sam.helpers import register_tiny, tiny_sam

pytestmark = pytest.mark.isolated  # fake CUDA: the module runs in a fresh interpreter (tests/isolated.py)

LOOSE = AmgParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.7)


def _image(h: int = 90, w: int = 120, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _assert_same(a: Proposals, b: Proposals) -> None:
    assert a.size == b.size and len(a) == len(b) > 0
    for field in ("predicted_iou", "stability_score", "boxes", "points", "crop_boxes"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
        assert isinstance(getattr(b, field), np.ndarray)
    assert all(np.array_equal(x, y) for x, y in zip(a.rles, b.rles, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(a.lowres_logits, b.lowres_logits, strict=True))


def _sam2() -> torch.nn.Module:
    from sam2.build_sam import build_sam2

    return build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                      hydra_overrides_extra=["++model.image_size=256"])


def _mobile_sam() -> torch.nn.Module:
    from defectbench.methods.sam.mobilesam import build_mobile_sam

    return build_mobile_sam(img_size=256).eval()


@pytest.mark.parametrize("build,family", [(lambda: tiny_sam(img_size=128, sharpen=100.0), "sam"),
                                          (_mobile_sam, "sam"), (_sam2, "sam2")], ids=["sam", "mobile_sam", "sam2.1"])
def test_fast_generator_on_gpu_equals_cpu(fake_gpus, build, family):
    torch.manual_seed(0)
    model = build()
    gpu_model = copy.deepcopy(model).to("cuda:1")
    assert next(gpu_model.parameters()).device == torch.device("cuda", 1)
    image = _image()
    _assert_same(FastMaskGenerator(model, family, LOOSE).generate(image),
                 FastMaskGenerator(gpu_model, family, LOOSE).generate(image))
    if build is not _mobile_sam:  # (MobileSAM's decoder is SAM's)
        # the official generators run on CUDA in their projects: the fake device must not refuse them either
        assert len(OfficialMaskGenerator(gpu_model, family, LOOSE).generate(image)) > 0


def test_fast_generator_with_crops_and_small_regions_on_gpu(fake_gpus, monkeypatch):
    """A crop layer (per-crop offsets, crop NMS) and small-region removal; the edge filter is switched off as in
    tests/methods/sam/test_generator.py (random masks always touch a crop's inner edge)."""
    import segment_anything.utils.amg as amg_utils

    monkeypatch.setattr(amg_utils, "is_box_near_crop_edge",
                        lambda boxes, *a, **k: torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device))
    model = tiny_sam(img_size=128, sharpen=100.0, shrink=30.0)
    gpu_model = copy.deepcopy(model).to("cuda:1")
    params = AmgParams(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.3, box_nms_thresh=0.8,
                       crop_n_layers=1, crop_nms_thresh=0.9, min_mask_region_area=30)
    image = _image(70, 100, seed=1)
    cpu = FastMaskGenerator(model, "sam", params).generate(image)
    assert len({tuple(c) for c in cpu.crop_boxes}) > 1  # crops contribute
    _assert_same(cpu, FastMaskGenerator(gpu_model, "sam", params).generate(image))


def _samples(tmp_path, n: int, seed: int) -> list:
    """Gray images with a brighter defect rectangle over most of the image (so that some candidates are mostly
    defect: the learned selector needs both labels) and its mask."""
    from defectbench.data.sample import Sample

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(60, 120, (64, 80), dtype=np.uint8)
        mask = np.zeros((64, 80), np.uint8)
        y, x = rng.integers(2, 12), rng.integers(2, 14)
        mask[y:y + 50, x:x + 64] = 255
        img[mask > 0] += 80
        name = f"s{seed}_{i}"
        out.append(Sample(name, write_png(tmp_path / "img" / f"{name}.png", img),
                          write_png(tmp_path / "gt" / f"{name}.png", mask)))
    return out


SELECTIONS = [("oracle-combine", "binary"), ("oracle-combine", "soft"), ("oracle-best", "binary"),
              ("prior", "binary"), ("prior", "soft"), ("prior", "score"), ("learned", "binary"), ("learned", "score")]


def test_every_selection_of_the_sam_method_on_gpu_equals_cpu(fake_gpus, tmp_path):
    from defectbench.methods.base import write_maps
    from defectbench.methods.sam.predict import SamMethod
    from defectbench.methods.sam.selection import PriorParams

    register_tiny("test_tiny_small_masks", img_size=128, sharpen=100.0, shrink=30.0)
    amg = {"points_per_side": 3, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
    train, test = _samples(tmp_path, 3, seed=1), _samples(tmp_path, 2, seed=2)
    ran_sam = False
    for select, output in SELECTIONS:
        maps = {}
        for device in ("cpu", "cuda:1"):
            method = SamMethod("test_tiny_small_masks", select, device=device, random_seed=0, amg_params=amg,
                               output=output, cache_dir=tmp_path / f"cache-{device}", prior=PriorParams(threshold=0.05))
            method.fit(train, tmp_path / f"fit-{device}-{select}-{output}")
            maps[device] = [method.predict(s.image(), s.mask() if method.oracle else None) for s in test]
            if device != "cpu":
                if method.source.stats["sam_images"]:  # the first strategy computes, the others read the cache
                    ran_sam = True
                    rec = method.record()
                    assert rec["device"] == "cuda:1" and rec["device_description"] == "Fake CUDA GPU 1"
                if select == "learned":
                    assert method.cfg.learned.to_dict() == cpu_selector
            elif select == "learned":
                cpu_selector = method.cfg.learned.to_dict()
        for a, b in zip(maps["cpu"], maps["cuda:1"], strict=True):
            assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b), (select, output)
        assert any(m.any() for m in maps["cpu"]), (select, output)  # not a comparison of empty maps
    assert ran_sam  # the GPU methods computed their proposals (on cuda:1), they did not read the CPU's
    gpu = SamMethod("test_tiny_small_masks", "oracle-combine", device="cuda:1", random_seed=0, amg_params=amg,
                    cache_dir=tmp_path / "cache-write-maps")
    counts = write_maps(gpu, test, tmp_path / "maps")
    assert counts == {"written": 2, "kept": 0} and gpu.source.stats["sam_images"] == 2
    model = gpu.source._gen.engine.predictor.model
    assert {p.device for p in model.parameters()} == {torch.device("cuda", 1)}
