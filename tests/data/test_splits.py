"""Split files: regenerated bit-identically from the data, and the stratified rule itself."""

import hashlib
from collections import Counter

from defectbench.cli import main
from defectbench.data.splits import _hash_order, read_split, split_dir, stratified_split
from tests.conftest import needs_mt, needs_sd900


@needs_sd900
@needs_mt
def test_data_split_regenerates_shipped_files_bit_identically(tmp_path, data_root):
    assert main(["data", "split", "sd900", "mt", "--out", str(tmp_path), "--data-root", str(data_root)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in split_dir().glob("*.txt"))
    assert written == shipped and len(written) == 7
    for name in written:
        assert (tmp_path / name).read_bytes() == (split_dir() / name).read_bytes(), name
    # and the check mode agrees
    assert main(["data", "split", "--data-root", str(data_root)]) == 0


def test_shipped_split_files_are_what_the_paper_needs():
    assert len(read_split(split_dir() / "sd900_train.txt")) == 540
    assert len(read_split(split_dir() / "sd900_test.txt")) == 360
    sizes = {n: len(read_split(split_dir() / f"mt_{n}.txt")) for n in ("1to1-train", "1to1-test", "7to3-train", "7to3-test", "free")}
    assert sizes == {"1to1-train": 196, "1to1-test": 196, "7to3-train": 274, "7to3-test": 118, "free": 952}


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
