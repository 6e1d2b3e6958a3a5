"""Selection strategies on real SD-saliency-900 masks (proposals derived from the ground truth)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from defectbench.methods.sam.features import (
    FEATURES,
    LogisticSelector,
    candidate_features,
    candidate_labels,
    fit_logistic,
    tune_threshold,
)
from defectbench.methods.sam.proposals import Proposals, masks_to_rle
from defectbench.methods.sam.selection import (
    PriorParams,
    atom_problem,
    candidates,
    exhaustive_union,
    greedy_union,
    jaccard,
    oracle_best,
    oracle_combine,
    prior_scores,
    render,
    select_by_scores,
)

from tests.conftest import needs_sd900
from .helpers import gt_derived_proposals


def _seed(sample_id: str) -> int:
    return zlib.crc32(sample_id.encode())


@pytest.fixture(scope="module")
def sd900():
    from tests.conftest import DATA
    from defectbench.data import load_dataset

    if DATA is None:
        pytest.skip("real datasets not found")
    return load_dataset("sd900", DATA)


def _hard_proposals(gt: np.ndarray, seed: int) -> np.ndarray:
    """GT-derived proposals plus discs centred on defect pixels that cover defect and background partly."""
    rng = np.random.default_rng(seed)
    masks, _ = gt_derived_proposals(gt, seed=seed)
    h, w = gt.shape
    ys, xs = np.nonzero(gt)
    extra = []
    for _ in range(3):
        if not len(ys):
            break
        i = rng.integers(len(ys))
        yy, xx = np.ogrid[:h, :w]
        r = rng.integers(4, 20)
        extra.append((yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= r * r)
    return np.concatenate([masks, np.array(extra).reshape(-1, h, w)]) if extra else masks


@needs_sd900
def test_greedy_search_finds_the_exhaustive_optimum_on_real_masks(sd900):
    """The objective (union Jaccard with the ground truth) reaches the same value as trying every subset."""
    samples = sd900.split("test")[::12]
    checked = 0
    for s in samples:
        gt = s.mask()
        cands, _ = candidates(_hard_proposals(gt, _seed(s.id)), True)
        useful = [k for k in range(len(cands)) if (cands[k] & gt).any()][:14]
        prob = atom_problem(cands[useful], gt)
        g, e = greedy_union(prob), exhaustive_union(prob)
        cover = prob.cover
        jg = prob.jaccard(cover[g].any(0) if g else np.zeros(cover.shape[1], bool))
        je = prob.jaccard(cover[e].any(0) if e else np.zeros(cover.shape[1], bool))
        assert jg == pytest.approx(je, abs=1e-12), s.id
        checked += 1
    assert checked == len(samples) >= 30


def test_greedy_search_finds_the_optimum_on_random_small_cases():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n, h, w = int(rng.integers(3, 7)), 30, 30
        masks = np.zeros((n, h, w), bool)
        for i in range(n):
            for _ in range(int(rng.integers(1, 3))):
                y0, x0 = rng.integers(0, h - 5, 2)
                masks[i, y0:y0 + rng.integers(3, 15), x0:x0 + rng.integers(3, 15)] = True
        gt = np.zeros((h, w), bool)
        y0, x0 = rng.integers(0, h - 8, 2)
        gt[y0:y0 + rng.integers(4, 12), x0:x0 + rng.integers(4, 12)] = True
        assert oracle_combine(masks, gt).jaccard == pytest.approx(
            oracle_combine(masks, gt, search="exhaustive").jaccard, abs=1e-12)


@needs_sd900
def test_oracle_combine_unions_pieces_and_beats_oracle_best(sd900):
    for s in sd900.split("test")[::40]:
        gt = s.mask()
        masks, names = gt_derived_proposals(gt, seed=_seed(s.id))
        comb, best = oracle_combine(masks, gt), oracle_best(masks, gt)
        assert comb.jaccard >= best.jaccard - 1e-12
        assert comb.jaccard == pytest.approx(jaccard(comb.union, gt))
        n_components = sum(n.startswith("component") for n in names)
        if n_components and all(not n.startswith("component") or (masks[i] <= gt).all()
                                for i, n in enumerate(names)):
            union = masks[[i for i, n in enumerate(names) if n.startswith("component")]].any(0)
            assert comb.jaccard >= jaccard(union, gt) - 1e-12


@needs_sd900
def test_oracle_combine_negates_the_sound_surface(sd900):
    """When SAM's only useful mask is the surface around the defect, the oracle takes its complement."""
    s = sd900.split("test")[5]
    gt = s.mask()
    surface = ~gt
    surface[:2, :10] = False  # a SAM mask rarely reaches every border pixel
    blob = np.zeros_like(gt)
    blob[:20, :20] = True
    sel = oracle_combine(np.stack([blob, surface]), gt)
    assert (1, True) in sel.chosen
    assert sel.jaccard > 0.9
    assert oracle_combine(np.stack([blob, surface]), gt, negations=False).jaccard < sel.jaccard


def test_empty_ground_truth_selects_nothing():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4] = True
    gt = np.zeros((8, 8), bool)
    for sel in (oracle_combine(masks, gt), oracle_best(masks, gt)):
        assert sel.chosen == [] and not sel.union.any() and sel.jaccard == 1.0


def _features(sample, masks):
    from defectbench.data import to_gray

    cands, origin = candidates(masks, True)
    n = len(masks)
    feats = candidate_features(cands, origin, to_gray(sample.image()), np.full(n, 0.9), np.full(n, 0.95))
    return feats, cands, origin


@needs_sd900
def test_contrast_prior_prefers_real_defects_to_random_texture(sd900):
    wins = total = 0
    for s in sd900.split("test")[::10]:
        gt = s.mask()
        masks, names = gt_derived_proposals(gt, seed=_seed(s.id))
        feats, _, _ = _features(s, masks)
        scores = prior_scores(feats, list(FEATURES))[: len(masks)]
        comp = [scores[i] for i, n in enumerate(names) if n.startswith("component")]
        blobs = [scores[i] for i, n in enumerate(names) if n.startswith("blob")]
        if comp and blobs:
            wins += max(comp) > max(blobs)
            total += 1
    assert total >= 30 and wins / total >= 0.8


@needs_sd900
def test_learned_selector_uses_training_ground_truth_only_and_generalises(sd900):
    """Fitted on training-split candidates, it beats keeping every candidate on the test split."""
    rows, labels, tuning = [], [], []
    for s in sd900.split("train")[::9]:
        masks, _ = gt_derived_proposals(s.mask(), seed=_seed(s.id))
        feats, cands, _ = _features(s, masks)
        rows.append(feats)
        labels.append(candidate_labels(cands, s.mask()))
        tuning.append((feats, cands, s.mask()))
    sel = fit_logistic(np.concatenate(rows), np.concatenate(labels))
    sel.threshold, train_f1 = tune_threshold([(sel.predict_proba(f), c, g) for f, c, g in tuning])
    assert 0.05 <= sel.threshold <= 0.95 and train_f1 > 0.6
    again = LogisticSelector.from_dict(sel.to_dict())
    stats = {"learned": [0, 0, 0], "everything": [0, 0, 0], "prior": [0, 0, 0]}
    for s in sd900.split("test")[::9]:
        gt = s.mask()
        masks, _ = gt_derived_proposals(gt, seed=_seed(s.id))
        feats, cands, origin = _features(s, masks)
        assert np.allclose(again.predict_proba(feats), sel.predict_proba(feats))
        unions = {
            "learned": select_by_scores(cands, origin, sel.predict_proba(feats), sel.threshold).union,
            "everything": cands[: len(masks)].any(0),
            "prior": select_by_scores(cands, origin, prior_scores(feats, list(FEATURES)),
                                      PriorParams().threshold).union,
        }
        for k, u in unions.items():
            stats[k][0] += (u & gt).sum()
            stats[k][1] += (u & ~gt).sum()
            stats[k][2] += gt.sum()
    f1 = {k: 2 * tp / (2 * tp + fp + (n - tp)) for k, (tp, fp, n) in stats.items()}
    assert f1["learned"] > 0.6 and f1["prior"] > 0.6
    assert f1["learned"] > f1["everything"] + 0.2 and f1["prior"] > f1["everything"] + 0.2


def test_render_outputs():
    masks = np.zeros((2, 6, 6), bool)
    masks[0, :2] = True
    masks[1, 4:] = True
    props = Proposals((6, 6), masks_to_rle(masks), np.array([0.9, 0.8], np.float32), np.array([1, 1], np.float32),
                      np.zeros((2, 4), np.float32), np.zeros((2, 2), np.float32), np.tile([0, 0, 6, 6], (2, 1)),
                      lowres_logits=[np.where(m, 8.0, -8.0).astype(np.float16) for m in masks],
                      lowres_meta={"family": "sam2", "img_size": 24, "low_size": 6})
    cands, origin = candidates(masks, True)
    sel = select_by_scores(cands, origin, np.array([0.9, 0.1, 0.2, 0.3]), 0.5)
    assert sel.chosen == [(0, False)]
    assert np.array_equal(render(sel, props, "binary"), masks[0].astype(np.float32))
    soft = render(sel, props, "soft")
    assert soft[0, 0] > 0.99 and soft[5, 5] < 0.01
    score = render(sel, props, "score", masks)
    assert score[0, 0] == pytest.approx(0.9)
    assert score[5, 0] == pytest.approx(0.2) and score[3, 3] == pytest.approx(0.3)  # best covering candidate
    neg = oracle_combine(masks, ~masks[0])
    assert render(neg, props, "soft")[3, 3] > 0.99  # negated candidate: 1 - sigmoid
