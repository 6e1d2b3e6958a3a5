"""VGG-16 with BatchNorm (torchvision ``vgg16_bn``), ImageNet weights from a local copy of the official file.

Used by CSEPNet. Weights come from ``--backbone-weights PATH`` or ``$DEFECTBENCH_CHECKPOINTS/vgg16_bn-6c64b313.pth``
(torchvision's file), exactly like :func:`defectbench.methods.saliency.backbones.build_resnet`; only the
convolutional ``features`` are checked and loaded (the classifier is never used). :func:`vgg16_bn_stages` cuts
``features`` into the five stages ending at ``conv1_2`` .. ``conv5_3`` (each after its ReLU, the last max-pool
dropped), the split of the SOD literature's VGG backbones.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from defectbench.errors import CheckpointError
from defectbench.methods.saliency.backbones import _find_weights, load_state_dict_file

VGG16_BN_FILE = ("vgg16_bn-6c64b313.pth", "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth")
#: torchvision ``vgg16_bn().features`` indices where each stage ends (after the ReLU of conv1_2 .. conv5_3)
VGG16_BN_STAGE_ENDS = (6, 13, 23, 33, 43)


def build_vgg16_bn(pretrained: bool = True, weights_path: str | Path | None = None) -> nn.Module:
    """Return torchvision's VGG-16-BN, with ImageNet ``features`` weights from a local file when ``pretrained``."""
    import torchvision

    net = torchvision.models.vgg16_bn(weights=None)
    if pretrained:
        path = _find_weights(VGG16_BN_FILE[0], weights_path, VGG16_BN_FILE[1], "VGG-16-BN")
        state = load_state_dict_file(path)
        # torchvision's file predates BN's ``num_batches_tracked`` counters; BatchNorm fills them in when absent
        own = {k: v for k, v in net.features.state_dict().items() if not k.endswith("num_batches_tracked")}
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        wrong = [k for k in own if k not in features or tuple(features[k].shape) != tuple(own[k].shape)]
        if wrong:
            raise CheckpointError(f"{path}: not a VGG-16-BN ImageNet state dict ({len(wrong)} missing or wrong-shaped "
                                  f"feature tensors, e.g. features.{wrong[0]})")
        net.features.load_state_dict({k: v for k, v in features.items() if k in own or k.endswith("num_batches_tracked")})
    return net


def vgg16_bn_stages(net: nn.Module) -> nn.ModuleList:
    """Split a VGG-16-BN's ``features`` into its five stages (ending at conv1_2 ... conv5_3, the last max-pool dropped)."""
    layers = list(net.features.children())
    stages, start = [], 0
    for end in VGG16_BN_STAGE_ENDS:
        stages.append(nn.Sequential(*layers[start:end]))
        start = end
    return nn.ModuleList(stages)
