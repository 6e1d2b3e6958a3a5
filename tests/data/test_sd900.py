"""SD-saliency-900 loader and its community split, on the real dataset."""

import numpy as np

from defectbench.data import load_dataset
from defectbench.data.splits import sd900_is_train
from tests.conftest import needs_sd900


@needs_sd900
def test_sd900_layout_classes_and_split(data_root):
    ds = load_dataset("sd900", data_root)
    assert len(ds) == 900
    assert ds.classes == ("In", "Pa", "Sc")
    train, test = ds.split("train"), ds.split("test")
    assert len(train) == 540 and len(test) == 360
    assert not {s.id for s in train} & {s.id for s in test}
    for cls in ds.classes:
        assert sum(s.defect_class == cls for s in train) == 180
        assert sum(s.defect_class == cls for s in test) == 120
    ids = {s.id for s in test}
    # numbers 61-100, 161-200, 261-300 are test; 1-60, 101-160, 201-260 train
    assert {"In_61", "Pa_100", "Sc_161", "In_200", "Pa_261", "Sc_300"} <= ids
    assert not {"In_1", "Pa_60", "Sc_101", "In_160", "Pa_201", "Sc_260"} & ids


@needs_sd900
def test_sd900_images_and_masks_as_stored(data_root):
    ds = load_dataset("sd900", data_root)
    s = ds["Sc_61"]
    img, mask = s.image(), s.mask()
    assert img.shape == (200, 200) and img.dtype == np.uint8  # grayscale, as stored
    assert mask.shape == (200, 200) and mask.dtype == bool and 0 < mask.mean() < 1
    assert s.image_path.suffix == ".bmp" and s.mask_path.suffix == ".png"


def test_split_rule_boundaries():
    assert [sd900_is_train(f"In_{n}") for n in (1, 60, 61, 100, 101, 160, 161, 200, 201, 260, 261, 300)] == [
        True, True, False, False, True, True, False, False, True, True, False, False
    ]
