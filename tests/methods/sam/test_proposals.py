"""Proposal records: run-length encoding identical to SAM's, lossless files, a cache keyed by what matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectbench.methods.sam.proposals import (
    ProposalCache,
    Proposals,
    image_sha256,
    masks_to_rle,
    rle_area,
    rle_to_mask,
)


def _masks(rng, n=6, h=17, w=23):
    m = rng.random((n, h, w)) > 0.6
    m[0] = False  # empty
    m[1] = True  # full
    m[2, 0, 0] = True  # starts with foreground
    m[3, 0, 0] = False
    return m


def test_rle_matches_segment_anything_and_round_trips(rng):
    from segment_anything.utils.amg import mask_to_rle_pytorch

    masks = _masks(rng)
    ours = masks_to_rle(masks)
    theirs = mask_to_rle_pytorch(torch.from_numpy(masks))
    for a, b, m in zip(ours, theirs, masks):
        assert a.tolist() == b["counts"]
        assert np.array_equal(rle_to_mask(a, m.shape), m)
        assert rle_area(a) == m.sum()


def _proposals(rng, with_logits=True):
    masks = _masks(rng, n=4)
    n = len(masks)
    return Proposals(
        size=masks.shape[1:], rles=masks_to_rle(masks), predicted_iou=rng.random(n).astype(np.float32),
        stability_score=rng.random(n).astype(np.float32), boxes=rng.random((n, 4)).astype(np.float32) * 10,
        points=rng.random((n, 2)).astype(np.float32), crop_boxes=np.tile([0, 0, 23, 17], (n, 1)).astype(np.int32),
        lowres_logits=[rng.normal(size=(5 + i, 6)).astype(np.float16) for i in range(n)] if with_logits else None,
        lowres_meta={"family": "sam", "img_size": 32, "low_size": 8}, info={"generator": "fast"},
    ), masks


@pytest.mark.parametrize("with_logits", [True, False])
def test_proposals_file_round_trip(rng, with_logits):
    p, masks = _proposals(rng, with_logits)
    q = Proposals.from_bytes(p.to_bytes())
    assert q.size == p.size and len(q) == len(p)
    assert np.array_equal(q.masks(), masks)
    for f in ("predicted_iou", "stability_score", "boxes", "points", "crop_boxes"):
        assert np.array_equal(getattr(q, f), getattr(p, f))
    assert q.has_logits() == with_logits
    if with_logits:
        assert all(np.array_equal(a, b) for a, b in zip(q.lowres_logits, p.lowres_logits))
    assert q.lowres_meta == p.lowres_meta and q.info == p.info
    empty = Proposals.from_bytes(Proposals.empty((4, 5)).to_bytes())
    assert len(empty) == 0 and empty.masks().shape == (0, 4, 5)


def test_cache_is_keyed_by_model_weights_generator_and_parameters(tmp_path, rng):
    p, _ = _proposals(rng)
    key = {"model": "vit_b", "weights_sha256": "abc", "generator": "fast", "params": {"points_per_side": 32}}
    cache = ProposalCache(key, tmp_path)
    img = rng.integers(0, 255, (17, 23, 3), dtype=np.uint8)
    h = image_sha256(img)
    assert cache.get(h) is None and not cache.has(h)
    cache.put(h, p)
    assert cache.has(h) and len(cache.get(h)) == len(p)
    assert (cache.dir / "key.json").is_file()
    # a new cache object with the same key finds it; any other key does not
    assert ProposalCache(dict(key), tmp_path).get(h) is not None
    for change in ({"weights_sha256": "abd"}, {"generator": "official"}, {"params": {"points_per_side": 16}},
                   {"model": "vit_h"}):
        assert ProposalCache({**key, **change}, tmp_path).get(h) is None
    # the image key is the pixels, not a file name
    assert image_sha256(img.copy()) == h
    img2 = img.copy()
    img2[0, 0, 0] ^= 1
    assert image_sha256(img2) != h
    # a damaged file is treated as missing (and will be recomputed)
    cache.path(h).write_bytes(b"not a zip")
    assert cache.get(h) is None


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    from defectbench.methods.sam.proposals import default_cache_dir

    monkeypatch.setenv("DEFECTBENCH_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert ProposalCache({"model": "m"}).dir.parent == tmp_path / "c" / "m"
