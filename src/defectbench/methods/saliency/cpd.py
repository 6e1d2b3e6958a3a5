"""CPD-R (Wu, Su & Huang, CVPR 2019): cascaded partial decoder on a two-branch ResNet-50.

Architecture as in the paper and its official code (github.com/wuzhe71/CPD, ``CPD_ResNet_models.py``),
written anew:

* ResNet-50 stem, ``layer1`` and ``layer2`` shared; ``layer3``/``layer4`` duplicated into an attention
  branch and a detection branch (both initialised from the same ImageNet weights);
* each branch: RFB-like multi-scale modules reduce ``layer2``/``3``/``4`` features to 32 channels, and a
  partial decoder (dense aggregation by upsampling and multiplication) predicts a 1/8-resolution map;
* holistic attention: the attention map, blurred by a trainable 31 x 31 Gaussian (initialised from a
  Gaussian with ``nsig=4``), min-max normalised and max-ed with itself, multiplies the ``layer2`` feature
  that enters the detection branch.

Train mode returns ``[detection, attention]`` logits (bilinear, ``align_corners=True``, to input size);
eval mode returns the detection map (what the official test script saves). Default loss: BCE on both.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.methods.saliency.backbones import build_resnet
from defectbench.methods.saliency.registry import register_model


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ConvBN(nn.Module):
    """Conv (no bias) + BN, without activation (CPD's ``BasicConv2d`` applies none)."""

    def __init__(self, cin: int, cout: int, kernel_size: int | tuple[int, int], padding: int | tuple[int, int] = 0, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``bn(conv(x))``."""
        return self.bn(self.conv(x))


def _rfb_branch(cin: int, cout: int, k: int) -> nn.Sequential:
    """1 x 1 reduction, 1 x k and k x 1 convs, then a 3 x 3 conv dilated by k."""
    return nn.Sequential(
        ConvBN(cin, cout, 1),
        ConvBN(cout, cout, (1, k), padding=(0, k // 2)),
        ConvBN(cout, cout, (k, 1), padding=(k // 2, 0)),
        ConvBN(cout, cout, 3, padding=k, dilation=k),
    )


class RFB(nn.Module):
    """RFB-like multi-scale module: four branches (1 x 1; k = 3, 5, 7), fused, plus a 1 x 1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.branch0 = nn.Sequential(ConvBN(cin, cout, 1))
        self.branch1 = _rfb_branch(cin, cout, 3)
        self.branch2 = _rfb_branch(cin, cout, 5)
        self.branch3 = _rfb_branch(cin, cout, 7)
        self.conv_cat = ConvBN(4 * cout, cout, 3, padding=1)
        self.conv_res = ConvBN(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(conv_cat([b0, b1, b2, b3]) + conv_res(x))``."""
        branches = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)
        return F.relu(self.conv_cat(branches) + self.conv_res(x))


class PartialDecoder(nn.Module):
    """CPD's dense aggregation of three feature levels (1/32, 1/16, 1/8) into a 1/8-resolution logit map."""

    def __init__(self, channel: int):
        super().__init__()
        c = channel
        self.conv_upsample1 = ConvBN(c, c, 3, padding=1)
        self.conv_upsample2 = ConvBN(c, c, 3, padding=1)
        self.conv_upsample3 = ConvBN(c, c, 3, padding=1)
        self.conv_upsample4 = ConvBN(c, c, 3, padding=1)
        self.conv_upsample5 = ConvBN(2 * c, 2 * c, 3, padding=1)
        self.conv_concat2 = ConvBN(2 * c, 2 * c, 3, padding=1)
        self.conv_concat3 = ConvBN(3 * c, 3 * c, 3, padding=1)
        self.conv4 = ConvBN(3 * c, 3 * c, 3, padding=1)
        self.conv5 = nn.Conv2d(3 * c, 1, kernel_size=1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> torch.Tensor:
        """Aggregate the deepest ``x1``, middle ``x2`` and shallowest ``x3`` features."""
        x2_1 = self.conv_upsample1(_up2(x1)) * x2
        x3_1 = self.conv_upsample2(_up2(_up2(x1))) * self.conv_upsample3(_up2(x2)) * x3
        x2_2 = self.conv_concat2(torch.cat([x2_1, self.conv_upsample4(_up2(x1))], dim=1))
        x3_2 = self.conv_concat3(torch.cat([x3_1, self.conv_upsample5(_up2(x2_2))], dim=1))
        return self.conv5(self.conv4(x3_2))


def gaussian_kernel(size: int = 31, nsig: float = 4.0) -> torch.Tensor:
    """CPD's ``gkern``: the square root of the outer product of a discretised normal CDF, normalised to sum 1."""
    interval = (2 * nsig + 1.0) / size
    x = torch.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1, dtype=torch.float64)
    k1 = torch.diff(torch.special.ndtr(x))
    k2 = torch.sqrt(torch.outer(k1, k1))
    return (k2 / k2.sum()).float()


def min_max_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalise each map of ``B x C x H x W`` to ``[0, 1]`` by its own min and max."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    return (x - lo) / (hi - lo + 1e-8)


class HolisticAttention(nn.Module):
    """Holistic attention: enlarge the attention map with a trainable Gaussian, then weight the features."""

    def __init__(self, size: int = 31, nsig: float = 4.0):
        super().__init__()
        self.gaussian_kernel = nn.Parameter(gaussian_kernel(size, nsig)[None, None])

    def forward(self, attention: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x * max(min_max_norm(gauss * attention), attention)`` with ``attention`` in ``[0, 1]``."""
        pad = self.gaussian_kernel.shape[-1] // 2
        soft = min_max_norm(F.conv2d(attention, self.gaussian_kernel, padding=pad))
        return x * torch.maximum(soft, attention)


class TwoBranchResNet50(nn.Module):
    """ResNet-50 with shared stem/layer1/layer2 and two copies of layer3/layer4 (no classifier)."""

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        net = build_resnet(50, pretrained=pretrained, weights_path=backbone_weights)
        self.conv1, self.bn1, self.layer1, self.layer2 = net.conv1, net.bn1, net.layer1, net.layer2
        self.layer3_1, self.layer4_1 = net.layer3, net.layer4
        self.layer3_2, self.layer4_2 = copy.deepcopy(net.layer3), copy.deepcopy(net.layer4)

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, layer1 and layer2: the 1/8-resolution, 512-channel feature both branches start from."""
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        return self.layer2(self.layer1(x))


class CPD(nn.Module):
    """CPD-R: two-branch ResNet-50, RFB modules, partial decoders and holistic attention."""

    default_loss = "bce"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, channel: int = 32):
        super().__init__()
        self.resnet = TwoBranchResNet50(pretrained, backbone_weights)
        self.rfb2_1, self.rfb3_1, self.rfb4_1 = RFB(512, channel), RFB(1024, channel), RFB(2048, channel)
        self.agg1 = PartialDecoder(channel)
        self.rfb2_2, self.rfb3_2, self.rfb4_2 = RFB(512, channel), RFB(1024, channel), RFB(2048, channel)
        self.agg2 = PartialDecoder(channel)
        self.HA = HolisticAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[detection, attention]`` logits; eval: the detection logits (both at input size)."""
        size = x.shape[2:]
        x2 = self.resnet.shared(x)
        x3_1 = self.resnet.layer3_1(x2)
        x4_1 = self.resnet.layer4_1(x3_1)
        attention = self.agg1(self.rfb4_1(x4_1), self.rfb3_1(x3_1), self.rfb2_1(x2))

        x2_2 = self.HA(attention.sigmoid(), x2)
        x3_2 = self.resnet.layer3_2(x2_2)
        x4_2 = self.resnet.layer4_2(x3_2)
        detection = self.agg2(self.rfb4_2(x4_2), self.rfb3_2(x3_2), self.rfb2_2(x2_2))

        detection = F.interpolate(detection, size=size, mode="bilinear", align_corners=True)
        if not self.training:
            return detection
        attention = F.interpolate(attention, size=size, mode="bilinear", align_corners=True)
        return [detection, attention]


@register_model("cpd")
def cpd(pretrained: bool = True, backbone_weights: str | None = None) -> CPD:
    """CPD-R, the ResNet-50 cascaded partial decoder (Wu et al., CVPR 2019)."""
    return CPD(pretrained=pretrained, backbone_weights=backbone_weights)
