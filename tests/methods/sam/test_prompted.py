"""Prompted SAM: the official predictors' masks and scores from cached embeddings, the interactive loop, both mask
choices, the embedding cache and defect-free images (random-weight official architectures at small inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as nd

from defectbench.data import read_image, read_mask, to_rgb
from defectbench.methods.sam.checkpoints import load_model
from defectbench.methods.sam.prompted import (
    PromptedSam,
    PromptedSamMethod,
    PromptSettings,
    jaccard,
    run_protocol,
    summarize_records,
)
from defectbench.methods.sam.prompts import components, interior_point, map_regions, tight_box
from defectbench.methods.sam.registry import MODELS, ModelSpec, add_sam_model, remove_sam_model

from tests.conftest import SD900, needs_sd900
from .helpers import vit_b_small_input

VITB = "test_prompt_vitb256"
_BUILT: dict = {}


def _per_seed(build):
    """A builder that builds once per torch seed (``load_model(random_seed=s)`` seeds first) and copies after."""
    import copy

    import torch

    def cached():
        key = (build, torch.initial_seed())
        if key not in _BUILT:
            _BUILT[key] = build()
        return copy.deepcopy(_BUILT[key])

    return cached


def _vitb():
    return vit_b_small_input(256, sharpen=20.0)


def _sam2_small():
    from sam2.build_sam import build_sam2

    return build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval",
                      hydra_overrides_extra=["++model.image_size=256"], apply_postprocessing=True)


def _mobile_small():
    from defectbench.methods.sam.mobilesam import build_mobile_sam

    return build_mobile_sam(img_size=256).eval()


@pytest.fixture(scope="module", autouse=True)
def models():
    specs = [ModelSpec(VITB, "sam", "SAM ViT-B architecture, 256 px input (test)", f"{VITB}.pth", "(test only)", None,
                       None, 0.0, _per_seed(_vitb)),
             ModelSpec("test_prompt_mobile256", "mobile_sam", "MobileSAM, 256 px (test)", "m.pt", "(test only)", None,
                       None, 0.0, _per_seed(_mobile_small)),
             ModelSpec("test_prompt_sam2_256", "sam2", "SAM 2.1 Hiera-T, 256 px (test)", "s.pt", "(test only)", None,
                       None, 0.0, _per_seed(_sam2_small), state_key="model")]
    for s in specs:
        if s.name not in MODELS:
            add_sam_model(s)
    yield
    for s in specs:
        remove_sam_model(s.name)


@pytest.fixture(scope="module")
def sample():
    if SD900 is None or not SD900.is_dir():
        pytest.skip("SD-saliency-900 not found")
    image = to_rgb(read_image(SD900 / "Source Images" / "In_105.bmp"))
    gt = read_mask(SD900 / "Ground truth" / "In_105.png")
    assert len(components(gt)) >= 3
    return image, gt


def _official(model: str, image: np.ndarray):
    """The official predictor of a registered model with the weights PromptedSam(random_seed=0) builds."""
    net, _ = load_model(model, random_seed=0)
    if MODELS[model].family == "sam2":
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        from defectbench.methods.sam.generator import _fit_feature_sizes

        pred = SAM2ImagePredictor(net)
        _fit_feature_sizes(pred, net)
    else:
        from segment_anything import SamPredictor

        pred = SamPredictor(net)
    pred.set_image(image)
    return pred


def _official_masks(pred, prompt, multimask=True, mask_input=None):
    masks, scores, low = pred.predict(point_coords=prompt.points if len(prompt.points) else None,
                                      point_labels=prompt.labels if len(prompt.points) else None, box=prompt.box,
                                      mask_input=None if mask_input is None else mask_input[None],
                                      multimask_output=multimask)
    return np.asarray(masks) > 0.5, np.asarray(scores), np.asarray(low)


def res_masks(sam, prompt):
    """Our decoder call's masks for a prompt (the image is set)."""
    return sam.decode(prompt).masks


def _check_against_official(model, image, gt, tmp_path, modes):
    PromptedSam(model, random_seed=0, cache_dir=tmp_path, device="cpu").set_image(image)  # fills the cache
    sam = PromptedSam(model, random_seed=0, cache_dir=tmp_path, device="cpu")
    official = _official(model, image)
    for mode in modes:
        res = run_protocol(sam, image, mode, gt, gt, "score")
        assert res.prompts
        union = np.zeros(gt.shape, bool)
        for prompt, scores, pick in zip(res.prompts, res.scores, res.pick_score):
            masks, ref_scores, _ = _official_masks(official, prompt)
            # the same scores (to float32 rounding: SAM 2's decoder is not bit-reproducible between calls)
            np.testing.assert_allclose(np.array(scores, np.float32), ref_scores.astype(np.float32), rtol=0, atol=1e-6)
            np.testing.assert_array_equal(res_masks(sam, prompt), masks)
            assert pick == int(np.argmax(ref_scores))
            union |= masks[pick]
        np.testing.assert_array_equal(res.map > 0.5, union)
    assert sam.stats["encoder_calls"] == 0 and sam.stats["cached_embeddings"] == 1


@needs_sd900
def test_results_equal_the_official_sam_predictor_from_cached_embeddings(sample, tmp_path):
    image, gt = sample
    _check_against_official(VITB, image, gt, tmp_path, ["point-largest", "point-per-region", "box-largest",
                                                        "box-per-region", "box-all"])
    # the interactive loop's calls, replayed on the official predictor (points so far + previous logits)
    sam = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")
    res = run_protocol(sam, image, "interactive", gt, gt, "score", k=4)
    official = _official(VITB, image)
    masks, scores, low = _official_masks(official, res.prompts[0])
    i = int(np.argmax(scores))
    pred, low = masks[i], low[i]
    for prompt in res.prompts[1:]:
        masks, scores, lows = _official_masks(official, prompt, multimask=False, mask_input=low)
        pred, low = masks[0], lows[0]
    np.testing.assert_array_equal(res.map > 0.5, pred)


@needs_sd900
def test_mobile_sam_and_sam21_through_the_registry(sample, tmp_path):
    image, gt = sample
    for model in ("test_prompt_mobile256", "test_prompt_sam2_256"):
        _check_against_official(model, image, gt, tmp_path / model, ["point-per-region", "box-all"])


@needs_sd900
def test_embedding_cache_is_hit_by_the_second_protocol(sample, tmp_path):
    image, gt = sample
    sam = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")
    run_protocol(sam, image, "box-per-region", gt, gt)
    assert sam.stats["encoder_calls"] == 1 and sam.stats["decoder_calls"] == len(components(gt))
    other = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")  # another job, same cache
    run_protocol(other, image, "point-largest", gt, gt)
    assert other.stats["encoder_calls"] == 0 and other.stats["cached_embeddings"] == 1
    assert len(list(sam.cache.dir.glob("*.npz"))) == 1
    # other weights, other key: the cache does not mix them
    seed1 = PromptedSam(VITB, random_seed=1, cache_dir=tmp_path, device="cpu")
    run_protocol(seed1, image, "point-largest", gt, gt)
    assert seed1.stats["encoder_calls"] == 1 and seed1.cache.dir != sam.cache.dir


@needs_sd900
def test_interactive_loop_places_each_point_in_the_largest_error_region(sample, tmp_path):
    image, gt = sample
    sam = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")
    res = run_protocol(sam, image, "interactive", gt, gt, k=6)
    assert len(res.steps) == 6
    first = res.prompts[0]
    assert first.points[0].tolist() == interior_point(components(gt)[0]).tolist() and first.labels.tolist() == [1]
    for j in range(1, len(res.prompts)):
        prev = res.steps[j - 1]
        prompt = res.prompts[j]
        assert len(prompt.points) == j + 1 and np.array_equal(prompt.points[:j], res.prompts[j - 1].points)
        x, y = (int(v) for v in prompt.points[-1])
        label = int(prompt.labels[-1])
        missed, false = gt & ~prev, prev & ~gt
        lab_m, n_m = nd.label(missed, np.ones((3, 3)))
        lab_f, n_f = nd.label(false, np.ones((3, 3)))
        areas = [(int((lab_m == i).sum()), 1, lab_m == i) for i in range(1, n_m + 1)]
        areas += [(int((lab_f == i).sum()), 0, lab_f == i) for i in range(1, n_f + 1)]
        area, want_label, region = max(areas, key=lambda t: t[0])
        assert label == want_label and region[y, x]
        edt = nd.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        assert edt[y, x] == pytest.approx(edt.max(), abs=1e-3)
    assert len(res.prompts) >= 3  # random weights leave errors to correct


@needs_sd900
def test_both_mask_choices_are_recorded_and_the_oracle_pick_is_best(sample, tmp_path):
    image, gt = sample
    sam = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")
    score = run_protocol(sam, image, "point-per-region", gt, gt, "score")
    oracle = run_protocol(sam, image, "point-per-region", gt, gt, "oracle")
    assert score.pick_oracle == oracle.pick_oracle and score.pick_score == oracle.pick_score
    assert all(o >= s for s, o in zip(score.jaccard_score, score.jaccard_oracle))
    regions = [p.region for p in score.prompts]
    for p, region in zip(oracle.prompts, regions):
        assert np.array_equal(p.region, region)  # each per-region target is its own component
    assert jaccard(oracle.map > 0.5, gt) >= 0.0 and oracle.map.shape == gt.shape
    with pytest.raises(Exception, match="ground truth"):
        run_protocol(sam, image, "box-all", gt, None, "oracle")


def test_defect_free_image_gives_an_empty_map(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    free = np.zeros((60, 80), bool)
    sam = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")
    for mode in ("point-largest", "box-per-region", "box-all", "interactive"):
        res = run_protocol(sam, image, mode, free, free, k=3 if mode == "interactive" else 1)
        assert res.map.shape == (60, 80) and not res.map.any() and not res.prompts
    assert sam.stats["encoder_calls"] == 0  # no prompt, no SAM
    # a light model that finds nothing: the hybrid's map is empty too, and with the mean fusion as well
    faint = lambda sample, img: np.full(img.shape[:2], 0.3, np.float32)  # noqa: E731
    hybrid = PromptedSamMethod(sam, PromptSettings("box-per-region", from_map=True, fuse="mean"), faint, "faint")
    assert not hybrid.predict(image).any()


@needs_sd900
def test_hybrid_prompts_come_from_the_shipped_litenet_map(sample, tmp_path):
    from defectbench.methods.saliency.predictor import SaliencyPredictor

    image, gt = sample
    lite = SaliencyPredictor.from_shipped("litenet", "sd900")
    light = lambda s, img: lite.predict(img)  # noqa: E731
    sam = PromptedSam(VITB, random_seed=0, cache_dir=tmp_path, device="cpu")
    st = PromptSettings("box-per-region", from_map=True, threshold=0.5, min_area=0.0005)
    method = PromptedSamMethod(sam, st, light, "litenet:sd900", records_dir=tmp_path / "rec")
    assert not method.oracle
    res, lmap = method.result(image, gt)
    regions = map_regions(lmap, 0.5, 0.0005)
    comps = components(regions)
    assert comps and jaccard(regions, gt) > 0.5  # the shipped model finds the defects
    assert sorted(p.box.tolist() for p in res.prompts) == sorted(tight_box(c).tolist() for c in comps)
    assert all(j is not None for j in res.jaccard_oracle)  # the oracle pick is recorded beside SAM's
    fused = PromptedSamMethod(sam, PromptSettings("box-per-region", from_map=True, fuse="mean"), light, "l")
    fmap = fused.predict(image)
    np.testing.assert_allclose(fmap, 0.5 * (res.map + lmap), atol=1e-6)
    assert method.name.endswith("from-litenet:sd900") and method.record()["protocol"]["prompts_from"] == "litenet:sd900"


def test_summarize_records(tmp_path):
    import json

    (tmp_path / "a.json").write_text(json.dumps({"pick_score": [0, 1], "pick_oracle": [0, 2],
                                                 "jaccard_score": [0.5, 0.2], "jaccard_oracle": [0.5, 0.6]}))
    (tmp_path / "b.json").write_text(json.dumps({"pick_score": [1], "pick_oracle": [None],
                                                 "jaccard_score": [None], "jaccard_oracle": [None]}))
    s = summarize_records(tmp_path)
    assert s == {"prompts_with_gt": 2, "jaccard_sam_pick": 0.35, "jaccard_oracle_pick": 0.55, "same_pick": 0.5}
