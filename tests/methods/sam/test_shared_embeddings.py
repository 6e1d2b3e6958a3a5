"""One encoder pass per image for the automatic masks and the prompt protocols: the automatic generator's whole-image
layer reads and fills the prompt rows' embedding cache (reduced official SAM, random weights, 128 px input)."""

from __future__ import annotations

import numpy as np
import pytest
from defectbench.methods.sam.predict import ProposalSource
from defectbench.methods.sam.prompted import PromptedSam
from defectbench.methods.sam.prompts import Prompt

from .helpers import register_tiny

MODEL = "test_share_tiny"
AMG = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.9}


@pytest.fixture(scope="module", autouse=True)
def tiny_model():
    register_tiny(MODEL, img_size=128, sharpen=20.0)
    yield


@pytest.fixture
def encoder_calls(monkeypatch):
    """Count the forward passes of SAM's image encoder (every instance)."""
    from segment_anything.modeling import ImageEncoderViT

    calls = []
    forward = ImageEncoderViT.forward

    def counted(self, x):
        calls.append(tuple(x.shape))
        return forward(self, x)

    monkeypatch.setattr(ImageEncoderViT, "forward", counted)
    return calls


def _images(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = (rng.random((40 + 8 * i, 48, 3)) * 60 + 80).astype(np.uint8)
        img[10:20, 12 + i:30] = 230  # a bright blob
        out.append(img)
    return out


def _source(cache, amg=AMG, seed=0) -> ProposalSource:
    return ProposalSource(MODEL, device="cpu", cache_dir=cache, amg_params=amg, random_seed=seed)


def _same(a, b) -> None:
    assert len(a.rles) == len(b.rles) > 0
    for x, y in zip(a.rles, b.rles):
        np.testing.assert_array_equal(x, y)
    for field in ("predicted_iou", "stability_score", "boxes", "points", "crop_boxes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(np.asarray(a.lowres_logits), np.asarray(b.lowres_logits))


def _decode_all(sam: PromptedSam, images: list[np.ndarray]) -> list[np.ndarray]:
    box = Prompt(box=np.array([10, 8, 32, 22], np.float32))
    out = []
    for img in images:
        sam.set_image(img)
        out.append(sam.decode(box).scores)
    return out


def test_automatic_masks_fill_the_cache_the_prompt_rows_read(tmp_path, encoder_calls):
    images = _images()
    auto = _source(tmp_path / "shared")
    first = [auto.get(img) for img in images]
    assert len(encoder_calls) == 2 and auto.stats["encoder_calls"] == 2 and auto.stats["cached_embeddings"] == 0
    del encoder_calls[:]
    sam = PromptedSam(MODEL, random_seed=0, cache_dir=tmp_path / "shared", device="cpu")
    scores = _decode_all(sam, images)
    assert encoder_calls == [] and sam.stats["encoder_calls"] == 0 and sam.stats["cached_embeddings"] == 2
    # the same answers as a prompt row that ran the encoder itself
    alone = PromptedSam(MODEL, random_seed=0, cache_dir=tmp_path / "alone", device="cpu")
    for a, b in zip(scores, _decode_all(alone, images)):
        np.testing.assert_array_equal(a, b)
    assert alone.stats["encoder_calls"] == 2
    # and the automatic proposals are identical with and without the cached embedding
    del encoder_calls[:]
    again = _source(tmp_path / "alone")  # embeddings of the prompt row only, no proposals yet
    for img, props in zip(images, first):
        _same(again.get(img), props)
    assert encoder_calls == [] and again.stats["cached_embeddings"] == 2 and again.stats["sam_images"] == 2


def test_prompt_rows_first_then_the_automatic_masks_make_no_encoder_call(tmp_path, encoder_calls):
    images = _images()
    _decode_all(PromptedSam(MODEL, random_seed=0, cache_dir=tmp_path, device="cpu"), images)
    assert len(encoder_calls) == 2
    del encoder_calls[:]
    auto = _source(tmp_path)
    props = [auto.get(img) for img in images]
    assert encoder_calls == [] and auto.stats["encoder_calls"] == 0 and auto.stats["cached_embeddings"] == 2
    fresh = _source(tmp_path / "fresh")
    for img, p in zip(images, props):
        _same(fresh.get(img), p)
    assert fresh.stats["encoder_calls"] == 2


def test_other_weights_and_cropped_layers_run_the_encoder(tmp_path, encoder_calls):
    images = _images(1)
    _source(tmp_path).get(images[0])
    del encoder_calls[:]
    other = _source(tmp_path, seed=1)
    other.get(images[0])  # other weights: another key, the encoder runs
    assert len(encoder_calls) == 1 and other.stats["encoder_calls"] == 1
    del encoder_calls[:]
    crops = _source(tmp_path, {**AMG, "crop_n_layers": 1}).get(images[0])
    # the whole image from the cache; the four crops of layer 1 through the encoder (never cached)
    assert len(encoder_calls) == 4 and len(crops.rles) > 0
