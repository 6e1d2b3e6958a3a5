"""VGG-16 (torchvision, no BatchNorm) with ImageNet weights loaded from a local copy of the official file.

The SOD literature's VGG backbones (CPD, CorrNet, ICON-V, EDN-VGG ...) use the 13 convolutions of VGG-16 in five
stages ending at ``conv1_2``, ``conv2_2``, ``conv3_3``, ``conv4_3`` and ``conv5_3`` (strides 1, 2, 4, 8, 16, each
stage but the first opening with a max-pool). :func:`vgg16_stages` cuts torchvision's ``features`` that way.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from defectbench.errors import CheckpointError
from defectbench.methods.saliency.backbones import _find_weights, load_state_dict_file

VGG16_FILE = ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth")
# torchvision ``features`` indices where each stage ends (after the ReLU of conv1_2, conv2_2, conv3_3, conv4_3, conv5_3)
VGG16_STAGE_ENDS = (4, 9, 16, 23, 30)


def build_vgg16(pretrained: bool = True, weights_path: str | Path | None = None) -> nn.Module:
    """Return torchvision's VGG-16 (classifier included), with ImageNet weights from a local file when ``pretrained``."""
    import torchvision

    net = torchvision.models.vgg16(weights=None)
    if pretrained:
        file_name, url = VGG16_FILE
        path = _find_weights(file_name, weights_path, url, "VGG-16")
        state = load_state_dict_file(path)
        own = net.state_dict()
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        wrong = [k for k in own if k.startswith("features.") and (k not in features or tuple(features[k].shape) != tuple(own[k].shape))]
        if wrong or not features:
            raise CheckpointError(f"{path}: not a VGG-16 ImageNet state dict ({len(wrong)} missing or wrong-shaped "
                                  f"convolution tensors, e.g. {wrong[0] if wrong else 'features.*'})")
        missing = net.load_state_dict(state, strict=False)
        if any(k.startswith("features.") for k in missing.missing_keys):
            raise CheckpointError(f"{path}: VGG-16 convolution weights missing")
    return net


def vgg16_stages(net: nn.Module) -> nn.ModuleList:
    """Split a VGG-16's ``features`` into its five stages (ending at conv1_2 ... conv5_3, the last max-pool dropped)."""
    layers = list(net.features.children())
    stages, start = [], 0
    for end in VGG16_STAGE_ENDS:
        stages.append(nn.Sequential(*layers[start:end]))
        start = end
    return nn.ModuleList(stages)
