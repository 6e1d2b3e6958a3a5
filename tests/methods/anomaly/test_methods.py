"""PatchCore and PaDiM on small synthetic parts: a planted defect is found, a good part scores low, and a fitted
method saved to its weights-only file predicts bit-identical maps after loading; their building blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectbench.errors import CheckpointError
from defectbench.methods.anomaly import AnomalyMethod, AnomalySpec, fit_anomaly
from defectbench.methods.anomaly.coreset import coreset_size, greedy_coreset
from defectbench.methods.anomaly.knn import NearestNeighbours
from tests.methods.anomaly.synthetic import surface, with_defect

KINDS = ("patchcore", "padim")


@pytest.fixture(scope="module")
def fitted() -> dict[str, AnomalyMethod]:
    """Both methods fitted on 16 good parts and calibrated on 12 others (alpha 0.1 needs at least 9)."""
    rng = np.random.default_rng(0)
    train, calib = [surface(rng) for _ in range(16)], [surface(rng) for _ in range(12)]
    return {kind: fit_anomaly(AnomalySpec(kind, size=160, coreset_ratio=0.1), iter(train), len(train), iter(calib),
                              alpha=0.1) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_planted_defect_is_found_and_good_parts_score_low(fitted, kind):
    method, rng = fitted[kind], np.random.default_rng(7)
    for _ in range(3):
        img, mask = with_defect(rng)
        prob, good = method.predict(img), method.predict(surface(rng))
        assert prob.shape == img.shape and prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
        peak = np.unravel_index(np.argmax(prob), prob.shape)
        assert mask[peak] > 0  # the most anomalous pixel lies on the scratch
        assert prob[mask > 0].mean() > 0.9  # the scratch is called a defect (> 0.5) ...
        assert good.max() < 0.5 and np.median(good) < 0.2  # ... a good part nowhere
        assert prob[mask > 0].mean() > prob[mask == 0].mean() + 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_predicts_bit_identical_maps(fitted, kind, tmp_path):
    from safetensors import safe_open

    method = fitted[kind]
    path = method.save(tmp_path / f"{kind}.safetensors")
    with safe_open(str(path), framework="pt") as f:  # tensors and JSON only: nothing to unpickle
        assert "rule" in f.keys() and "defectbench" in f.metadata()
    loaded = AnomalyMethod.load(path)
    rng = np.random.default_rng(3)
    images = [with_defect(rng)[0], surface(rng)]
    for img in images:
        assert np.array_equal(loaded.predict(img), method.predict(img))
    assert loaded.rule == method.rule and loaded.record()["fit_images"] == 16


def test_load_refuses_foreign_or_missing_files(fitted, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(CheckpointError, match="not found"):
        AnomalyMethod.load(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        AnomalyMethod.load(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a fitted defectbench anomaly model"):
        AnomalyMethod.load(tmp_path / "other.safetensors")
    path = fitted["patchcore"].save(tmp_path / "pc.safetensors")
    other = tmp_path / "other_weights.pth"
    other.write_bytes(b"not the same weights")
    with pytest.raises(CheckpointError, match="other efficientnet_lite0 weights"):
        AnomalyMethod.load(path, backbone_weights=str(other))


def test_greedy_coreset_takes_one_point_per_cluster():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    points = torch.cat([c + torch.randn(50, 2, generator=gen) for c in centres])
    idx = greedy_coreset(points, 4, seed=1)
    assert sorted(int(i) // 50 for i in idx) == [0, 1, 2, 3]
    assert len(set(greedy_coreset(points, 20, seed=1).tolist())) == 20
    assert coreset_size(1000, 0.01) == 10 and coreset_size(10, 0.01) == 1 and coreset_size(10, 1.0) == 10


@pytest.mark.parametrize("engine", ["torch", "faiss"])
def test_nearest_neighbour_distances_are_exact(engine):
    if engine == "faiss":
        pytest.importorskip("faiss")
    gen = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(300, 24, generator=gen), torch.randn(50, 24, generator=gen)
    brute = torch.sqrt(((queries[:, None] - bank[None]) ** 2).sum(-1)).min(1).values
    assert torch.allclose(NearestNeighbours(bank, engine).distances(queries), brute, atol=1e-4)
