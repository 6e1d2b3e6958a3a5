"""Split files: regenerated bit-identically from the data, and the stratified rule itself."""

import hashlib
from collections import Counter

from defectbench.cli import main
from defectbench.data.splits import _hash_order, free_splits, read_split, split_dir, stratified_split
from tests.conftest import needs_mt, needs_sd900


@needs_sd900
@needs_mt
def test_data_split_regenerates_shipped_files_bit_identically(tmp_path, data_root):
    assert main(["data", "split", "sd900", "mt", "--out", str(tmp_path), "--data-root", str(data_root)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in split_dir().glob("*.txt"))
    assert written == shipped and len(written) == 10
    for name in written:
        assert (tmp_path / name).read_bytes() == (split_dir() / name).read_bytes(), name
    # and the check mode agrees
    assert main(["data", "split", "--data-root", str(data_root)]) == 0


def test_shipped_split_files_are_what_the_paper_needs():
    assert len(read_split(split_dir() / "sd900_train.txt")) == 540
    assert len(read_split(split_dir() / "sd900_test.txt")) == 360
    names = ("1to1-train", "1to1-test", "7to3-train", "7to3-test", "free", "free-train", "free-calib", "free-test")
    sizes = {n: len(read_split(split_dir() / f"mt_{n}.txt")) for n in names}
    assert sizes == {"1to1-train": 196, "1to1-test": 196, "7to3-train": 274, "7to3-test": 118, "free": 952,
                     "free-train": 476, "free-calib": 190, "free-test": 286}
    parts = [set(read_split(split_dir() / f"mt_{n}.txt")) for n in ("free-train", "free-calib", "free-test")]
    assert set.union(*parts) == set(read_split(split_dir() / "mt_free.txt")) and sum(map(len, parts)) == 952


def test_free_split_rule_is_seeded_unstratified_and_exhaustive():
    ids = [f"g{i}" for i in range(23)]
    got = free_splits(ids, seed=0)
    assert [len(got[k]) for k in ("free-train", "free-calib", "free-test")] == [12, 5, 6]  # floor(11.5+.5), floor(4.6+.5)
    order = _hash_order(sorted(ids), 0)
    assert got["free-train"] == sorted(order[:12]) and got["free-calib"] == sorted(order[12:17])
    assert got["free-test"] == sorted(order[17:]) and free_splits(list(reversed(ids)), 0) == got
    assert free_splits(ids, seed=1) != got


def test_stratified_split_sizes_and_determinism():
    by_class = {"A": [f"a{i}" for i in range(7)], "B": [f"b{i}" for i in range(5)], "C": [f"c{i}" for i in range(3)]}
    train, test = stratified_split(by_class, 0.5, seed=0)
    assert len(train) == 8 and len(test) == 7  # round(15 * 0.5) = 8 (half away from zero)
    assert set(train) | set(test) == {i for v in by_class.values() for i in v}
    c = Counter(i[0] for i in train)
    assert all(abs(c[k.lower()] - len(v) / 2) <= 1 for k, v in by_class.items())
    assert stratified_split(by_class, 0.5, seed=0) == (train, test)
    assert stratified_split(by_class, 0.5, seed=1) != (train, test)


def test_hash_order_is_sha256_based():
    ids = ["x", "y", "z"]
    expected = sorted(ids, key=lambda i: hashlib.sha256(f"0:{i}".encode()).hexdigest())
    assert _hash_order(ids, 0) == expected
