"""Image reading rules and data-root resolution."""

import os

import numpy as np
import pytest

from defectbench.data import load_dataset
from defectbench.data.imageio import read_gray8, read_image, read_mask, to_rgb
from defectbench.errors import DataError
from defectbench.paths import data_root_candidates
from tests.conftest import write_png


def test_mask_rules_16bit_and_colour(tmp_path):
    m16 = np.zeros((4, 4), np.uint16)
    m16[0, 0], m16[0, 1] = 65535, 128 * 257  # -> 255 and 128 (not > 128)
    write_png(tmp_path / "m16.png", m16)
    m = read_mask(tmp_path / "m16.png")
    assert m[0, 0] and not m[0, 1] and m.sum() == 1
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 1] = (0, 0, 255)  # pure red in BGR: luma 76 -> background
    rgb[2, 2] = (255, 255, 255)
    write_png(tmp_path / "c.png", rgb)
    gray, notes = read_gray8(tmp_path / "c.png")
    assert gray[1, 1] == 76 and gray[2, 2] == 255 and notes == ["colour converted to gray (BT.601 luma)"]


def test_images_keep_their_stored_format_and_convert_in_one_place(tmp_path):
    write_png(tmp_path / "g.png", np.full((3, 5), 7, np.uint8))
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 5)
    rgb = to_rgb(g)
    assert rgb.shape == (3, 5, 3) and (rgb == 7).all()
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's BGR order
    write_png(tmp_path / "c.png", bgr)
    assert read_image(tmp_path / "c.png")[0, 0].tolist() == [0, 0, 200]  # returned as RGB


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        read_mask(bad)
    with pytest.raises(DataError, match="nothere.png: file not found"):
        read_image(tmp_path / "nothere.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.png"):
        read_image(empty)


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("DEFECTBENCH_DATA", raising=False)
    assert [str(p) for p in data_root_candidates()] == ["data", os.path.join("..", "shared", "datasets")]
    monkeypatch.setenv("DEFECTBENCH_DATA", str(tmp_path))
    assert data_root_candidates() == [tmp_path]
    assert [p.as_posix() for p in data_root_candidates("/x/y")] == ["/x/y"]


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("DEFECTBENCH_DATA", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset("sd900")
    msg = str(err.value)
    assert str(tmp_path / "SD-saliency-900") in msg and "defectbench data fetch sd900" in msg and "\n" not in msg
    with pytest.raises(DataError, match="MCnet"):
        load_dataset("nrsd", tmp_path)
