"""VGG-16 and VGG-16-BN (torchvision) with ImageNet weights loaded from local copies of the official files.

The SOD literature's VGG backbones (CPD, CorrNet, ICON-V, EDN-VGG ...) use the 13 convolutions of VGG-16 in five
stages ending at ``conv1_2``, ``conv2_2``, ``conv3_3``, ``conv4_3`` and ``conv5_3`` (strides 1, 2, 4, 8, 16, each
stage but the first opening with a max-pool). :func:`vgg16_stages` cuts torchvision's ``features`` that way.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from defectbench.downloads.catalog import backbone
from defectbench.errors import CheckpointError
from defectbench.methods.saliency.backbones import _find_weights, load_state_dict_file

VGG16_FILE = (backbone("vgg16").file_name, backbone("vgg16").url)
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


# -- VGG-16 with BatchNorm (MINet, CSEPNet, ICON-V): only the features are built; the classifier is never used
VGG16_BN_FILE = (backbone("vgg16_bn").file_name, backbone("vgg16_bn").url)
# torchvision ``vgg16_bn().features`` indices where each stage ends (after the ReLU of conv1_2 ... conv5_3)
VGG16_BN_STAGE_ENDS = (6, 13, 23, 33, 43)
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def vgg16_bn_features(base_width: int = 64) -> nn.Sequential:
    """torchvision's ``vgg16_bn().features`` (same layers, indices and initialisation), widths scaled by ``base_width / 64``.

    Only the features are built: the 120 M-parameter classifier MINet never uses is not allocated.
    """
    from torchvision.models.vgg import cfgs, make_layers

    if base_width < 1 or base_width > 64:
        raise ValueError("VGG base width must be in 1..64")
    features = make_layers([v if v == "M" else v * base_width // 64 for v in cfgs["D"]], batch_norm=True)
    for m in features.modules():  # torchvision VGG's init_weights
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return features


def build_vgg16_bn(pretrained: bool = True, weights_path: str | Path | None = None, base_width: int = 64) -> nn.Sequential:
    """Return VGG-16-BN's ``features``, with the official ImageNet weights from a local file when ``pretrained``.

    ``base_width`` < 64 narrows every convolution (a cheap configuration for tests; no weights exist for it).
    """
    if pretrained and base_width != 64:
        raise ValueError("ImageNet weights exist only for the full VGG-16-BN (base_width 64); pass pretrained=False")
    features = vgg16_bn_features(base_width)
    if pretrained:
        file_name, url = VGG16_BN_FILE
        path = _find_weights(file_name, weights_path, url, "VGG-16-BN")
        state = load_state_dict_file(path)
        # torchvision's published file predates BatchNorm's ``num_batches_tracked`` counters: those may be absent
        own = {f"features.{k}": v for k, v in features.state_dict().items() if not k.endswith("num_batches_tracked")}
        wrong = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
        if wrong:
            raise CheckpointError(f"{path}: not a VGG-16-BN ImageNet state dict ({len(wrong)} missing or wrong-shaped "
                                  f"feature tensors, e.g. {wrong[0]})")
        features.load_state_dict({k[len("features."):]: state[k] for k in own}, strict=False)
    return features


def vgg16_bn_stages(features: nn.Sequential) -> nn.ModuleList:
    """Split VGG-16-BN ``features`` into its five stages (ending at conv1_2 ... conv5_3, the last max-pool dropped)."""
    layers = list(features.children())
    stages, start = [], 0
    for end in VGG16_BN_STAGE_ENDS:
        stages.append(nn.Sequential(*layers[start:end]))
        start = end
    return nn.ModuleList(stages)
