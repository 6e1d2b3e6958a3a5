"""Shared fixtures of the saliency model tests: torchvision-layout VGG-16 ImageNet files, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision


def official_vgg16_state_dict(batch_norm: bool, seed: int = 2) -> dict[str, torch.Tensor]:
    """A state dict in the layout of torchvision's published VGG-16 (-BN) file: random features, zero classifier.

    The classifier (120 M parameters, never read by our loaders) is kept so that loaders are tested against the
    whole official key set; it is zeros because initialising it randomly costs seconds and nothing reads it.
    """
    torch.manual_seed(seed)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=batch_norm)
    ref = {f"features.{k}": v for k, v in features.state_dict().items() if not k.endswith("num_batches_tracked")}
    with torch.device("meta"):
        layout = (torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16)(weights=None).state_dict()
    ref.update({k: torch.zeros(v.shape) for k, v in layout.items() if k.startswith("classifier.")})
    assert ref.keys() == {k for k in layout if not k.endswith("num_batches_tracked")}
    return ref


def _written(tmp_path_factory: pytest.TempPathFactory, name: str, batch_norm: bool) -> tuple[Path, dict[str, torch.Tensor]]:
    ref = official_vgg16_state_dict(batch_norm)
    path = tmp_path_factory.mktemp("imagenet") / name
    torch.save(ref, path)
    return path, ref


@pytest.fixture(scope="session")
def vgg16_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """``(path, state dict)`` of an official-layout ``vgg16-397923af.pth`` (random features)."""
    return _written(tmp_path_factory, "vgg16-397923af.pth", batch_norm=False)


@pytest.fixture(scope="session")
def vgg16_bn_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """``(path, state dict)`` of an official-layout ``vgg16_bn-6c64b313.pth`` (random features, no BN counters)."""
    return _written(tmp_path_factory, "vgg16_bn-6c64b313.pth", batch_norm=True)
