"""Our metrics equal PySODMetrics 1.6 on the real datasets, per image and aggregated, to 1e-6."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from defectbench.data import load_dataset
from defectbench.data.imageio import read_gray8
from defectbench.metrics import aggregate, score_image
from tests.conftest import DATA, needs_mt, needs_sd900
from tests.metrics.oracle import reference

TOL = 1e-6


def degradations(gt8: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Several kinds of prediction for one mask, deterministic."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(gt8.astype(np.int16) + rng.normal(0, 50, gt8.shape), 0, 255).astype(np.uint8)
    return {
        "blurred": cv2.GaussianBlur(gt8, (11, 11), 4),
        "noisy": noisy,
        "const0": np.zeros_like(gt8),
        "const255": np.full_like(gt8, 255),
        "inverted": 255 - gt8,
        "shifted-soft": np.roll(cv2.GaussianBlur(gt8, (5, 5), 2), 7, axis=1) // 2 + 40,
    }


def _check(kind: str, preds: list[np.ndarray], gts8: list[np.ndarray]) -> None:
    ref_img, ref_sum = reference(preds, gts8)
    ours = [score_image(p, g > 128) for p, g in zip(preds, gts8)]
    for key in ("S_alpha", "MAE", "adp_E", "weighted_F", "adp_F"):
        got = np.array([getattr(o, key) for o in ours])
        np.testing.assert_allclose(got, ref_img[key], rtol=0, atol=TOL, err_msg=f"{kind}: {key}")
    for key in ("em_curve", "fm_curve", "precision", "recall"):
        got = np.array([getattr(o, key) for o in ours])
        np.testing.assert_allclose(got, ref_img[key], rtol=0, atol=TOL, err_msg=f"{kind}: {key}")
    summary = aggregate(ours)
    assert summary["n"] == len(preds)
    for key, value in ref_sum.items():
        assert abs(summary[key] - value) <= TOL, (kind, key, summary[key], value)


def _masks(samples) -> list[np.ndarray]:
    return [read_gray8(s.mask_path)[0] for s in samples]


@needs_sd900
@pytest.mark.parametrize("kind", ["blurred", "noisy", "const0", "const255", "inverted", "shifted-soft"])
def test_parity_sd900_test_split(kind):
    gts8 = _masks(load_dataset("sd900", DATA).split("test"))
    assert len(gts8) == 360
    preds = [degradations(g, i)[kind] for i, g in enumerate(gts8)]
    _check(kind, preds, gts8)


@needs_mt
@pytest.mark.parametrize("kind", ["blurred", "noisy", "const0", "const255", "inverted", "shifted-soft"])
@pytest.mark.parametrize("every", [pytest.param(3, id="every-3rd"), pytest.param(1, id="all", marks=pytest.mark.slow)])
def test_parity_mt_defect_images(kind, every):
    """Every third of the 392 defect images by default (131, all five classes and image sizes); all with -m slow."""
    ds = load_dataset("mt", DATA)
    samples = [s for s in ds.samples if s.defect_class != "Free"]
    assert len(samples) == 392
    samples = samples[::every]
    assert {s.defect_class for s in samples} == {"Blowhole", "Break", "Crack", "Fray", "Uneven"}
    gts8 = _masks(samples)  # raw masks (JPEG-like values): both sides binarise at > 128
    preds = [degradations(g, i)[kind] for i, g in enumerate(gts8)]
    _check(kind, preds, gts8)


@needs_sd900
@needs_mt
def test_parity_empty_ground_truth():
    """Defect-free images (all-background masks) against several predictions."""
    sd = _masks(load_dataset("sd900", DATA).split("test")[:60])
    free = load_dataset("mt", DATA).split("free")[:60]
    gts8 = [np.zeros_like(g) for g in sd] + _masks(free)
    preds = []
    for i, g in enumerate(sd + _masks(free)):
        kinds = list(degradations(g if g.any() else np.roll(sd[i % len(sd)], 0), i).values())
        pred = kinds[i % len(kinds)]
        preds.append(cv2.resize(pred, (gts8[i].shape[1], gts8[i].shape[0])) if pred.shape != gts8[i].shape else pred)
    _check("empty-gt", preds, gts8)
