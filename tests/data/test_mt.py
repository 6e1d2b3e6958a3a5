"""MT loader: classes, defect-free images, stratified seeded splits, mask binarisation."""

from collections import Counter

import numpy as np

from defectbench.data import load_dataset
from defectbench.data.imageio import read_gray8
from tests.conftest import needs_mt


@needs_mt
def test_mt_classes_counts_and_free(data_root):
    ds = load_dataset("mt", data_root)
    counts = Counter(s.defect_class for s in ds.samples)
    assert counts == {"Blowhole": 115, "Break": 85, "Crack": 57, "Fray": 32, "Uneven": 103, "Free": 952}
    free = ds.split("free")
    assert len(free) == 952 and all(s.defect_class == "Free" for s in free)
    assert not free[0].mask().any()


@needs_mt
def test_mt_splits_are_stratified_and_disjoint(data_root):
    ds = load_dataset("mt", data_root)
    for tag, n_train, n_test in (("1to1", 196, 196), ("7to3", 274, 118)):
        train, test = ds.split(f"{tag}-train"), ds.split(f"{tag}-test")
        assert (len(train), len(test)) == (n_train, n_test)
        assert not {s.id for s in train} & {s.id for s in test}
        assert all(s.defect_class != "Free" for s in train + test)
        share = n_train / (n_train + n_test)
        per_class = Counter(s.defect_class for s in train)
        total = Counter(s.defect_class for s in train + test)
        for cls, n in total.items():
            assert abs(per_class[cls] - n * share) <= 1, (tag, cls)


@needs_mt
def test_mt_masks_are_binarised_above_128(data_root):
    ds = load_dataset("mt", data_root)
    # find a mask with intermediate (JPEG-like) values and check the > 128 rule on it
    for s in ds.split("1to1-test"):
        raw, _ = read_gray8(s.mask_path)
        mid = (raw > 0) & (raw < 255)
        if mid.any():
            np.testing.assert_array_equal(s.mask(), raw > 128)
            break
    else:
        raise AssertionError("expected MT masks with values other than 0 and 255")


@needs_mt
def test_data_info_counts_sizes_and_coverage(data_root, capsys):
    from defectbench.cli import main
    from defectbench.data.info import dataset_info

    info = dataset_info(load_dataset("mt", data_root))
    assert info.n_images == 1344
    assert info.counts["1to1-test"]["Fray"] == 16 and info.counts["free"] == {"Free": 952}
    assert info.coverage["Free"]["empty"] == 952 and info.coverage["Free"]["max"] == 0
    assert 0 < info.coverage["Blowhole"]["mean"] < info.coverage["Fray"]["mean"] < 1
    assert sum(info.sizes.values()) == 1344 and len(info.sizes) > 100  # MT images have many sizes
    assert main(["data", "info", "sd900", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "900 images" in out and "200x200 (900)" in out
