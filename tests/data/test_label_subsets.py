"""Labelled subsets of a training split: nested, stratified, seeded, stable across runs and machines."""

from __future__ import annotations

import math

import pytest

from defectbench.data.splits import label_ranking, label_subset, read_split, split_file
from tests.conftest import needs_mt


def _sd900_by_class() -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for i in read_split(split_file("sd900", "train")):
        by.setdefault(i.split("_")[0], []).append(i)
    return by


def test_fixed_lists_of_seed_0_on_sd900():
    """The subsets are a pure function of ids and seed: these lists hold on every machine and library version."""
    by = _sd900_by_class()
    assert label_subset(by, 8, 0) == ["In_37", "In_54", "In_236", "Pa_38", "Pa_51", "Pa_254", "Sc_134", "Sc_140"]
    assert label_subset(by, 16, 0) == ["In_37", "In_54", "In_148", "In_203", "In_236", "In_248", "Pa_26", "Pa_38",
                                       "Pa_51", "Pa_203", "Pa_254", "Sc_37", "Sc_134", "Sc_140", "Sc_151", "Sc_238"]
    assert label_subset(by, 8, 1) != label_subset(by, 8, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsets_are_nested_and_stratified(seed):
    by = {"A": [f"A_{i}" for i in range(50)], "B": [f"B_{i}" for i in range(30)], "C": [f"C_{i}" for i in range(7)]}
    total = 87
    previous: set[str] = set()
    for n in range(1, total + 1):
        sub = label_subset(by, n, seed)
        assert len(sub) == len(set(sub)) == n
        assert previous <= set(sub)  # nested
        previous = set(sub)
        for c, ids in by.items():  # every class within one image of its share
            share = n * len(ids) / total
            taken = sum(1 for i in sub if i.startswith(c + "_"))
            assert math.floor(share) - 1 <= taken <= math.ceil(share) + 1, (n, c, taken, share)
    assert set(label_ranking(by, seed)) == {i for ids in by.values() for i in ids}


def test_equal_classes_split_evenly_and_order_of_input_does_not_matter():
    by = _sd900_by_class()
    shuffled = {c: list(reversed(v)) for c, v in reversed(list(by.items()))}
    for n in (9, 30, 270):
        sub = label_subset(by, n, 3)
        assert sub == label_subset(shuffled, n, 3)
        counts = {c: sum(1 for i in sub if i.startswith(c)) for c in by}
        assert set(counts.values()) == {n // 3}


def test_ids_without_classes_fall_back_to_the_seeded_hash_order():
    ids = [f"img{i}" for i in range(20)]
    sub = label_subset({"": ids}, 5, 0)
    assert len(sub) == 5 and set(sub) <= set(ids) and set(sub) <= set(label_subset({"": ids}, 6, 0))


@pytest.mark.parametrize("n", [0, -1, 541, 2.5, True])
def test_sizes_outside_the_split_are_refused(n):
    with pytest.raises(ValueError, match="1 <= n <= 540"):
        label_subset(_sd900_by_class(), n, 0)


@needs_mt
def test_mt_subsets_follow_the_defect_classes(data_root):
    from defectbench.data import load_dataset
    from defectbench.train.labels import labelled_subset

    train = load_dataset("mt", data_root).split("1to1-train")
    sub = labelled_subset(train, 16, 0)
    classes = sorted({s.defect_class for s in train})
    counts = {c: sum(1 for s in sub if s.defect_class == c) for c in classes}
    sizes = {c: sum(1 for s in train if s.defect_class == c) for c in classes}
    for c in classes:
        assert abs(counts[c] - 16 * sizes[c] / len(train)) <= 1, counts
    assert [s.id for s in sub] == [s.id for s in train if s.id in {x.id for x in sub}]  # split order kept
    assert {s.id for s in labelled_subset(train, 8, 0)} <= {s.id for s in sub}
