"""CPD (Wu, Su & Huang, CVPR 2019): cascaded partial decoder, ResNet-50 (CPD-R, ``cpd``) and VGG-16 (``cpd_vgg``).

Architecture as in the paper and its official code (github.com/wuzhe71/CPD, ``CPD_ResNet_models.py`` and
``CPD_models.py``), written anew. CPD-R:

* ResNet-50 stem, ``layer1`` and ``layer2`` shared; ``layer3``/``layer4`` duplicated into an attention
  branch and a detection branch (both initialised from the same ImageNet weights);
* each branch: RFB-like multi-scale modules reduce ``layer2``/``3``/``4`` features to 32 channels, and a
  partial decoder (dense aggregation by upsampling and multiplication) predicts a 1/8-resolution map;
* holistic attention: the attention map, blurred by a trainable 31 x 31 Gaussian (initialised from a
  Gaussian with ``nsig=4``), min-max normalised and max-ed with itself, multiplies the ``layer2`` feature
  that enters the detection branch.

Train mode returns ``[detection, attention]`` logits (bilinear, ``align_corners=True``, to input size);
eval mode returns the detection map (what the official test script saves). Default loss: BCE on both.

CPD's VGG-16 variant (``cpd_vgg``, 29,232,771 parameters as the official ``CPD_VGG``; Table 7 of Song et al.
gives CPD 29.2 M, i.e. this variant) differs in:

* backbone: VGG-16 with *average* pooling at the front of stages 2-5, conv1-conv3 shared and conv4/conv5
  duplicated into the attention and detection branches (both from the same ImageNet weights);
* the RFB modules and partial decoders read conv3_3 (1/4), conv4_3 (1/8) and conv5_3 (1/16); their convs have
  biases and no BatchNorm (weights initialised ``N(0, 0.01)``, biases 0), and the maps come out at 1/4,
  upsampled x4 (bilinear, ``align_corners=False``);
* holistic attention weights the conv3_3 feature that enters the detection branch.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.backbones import build_resnet
from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.vgg import build_vgg16


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


def _conv(cin: int, cout: int, kernel_size: int | tuple[int, int], padding: int | tuple[int, int] = 0,
          dilation: int = 1, batch_norm: bool = True) -> nn.Module:
    """CPD-R's conv + BN (no bias), or CPD-VGG's plain conv with bias."""
    if batch_norm:
        return ConvBN(cin, cout, kernel_size, padding=padding, dilation=dilation)
    return nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation)


def _rfb_branch(cin: int, cout: int, k: int, batch_norm: bool = True) -> nn.Sequential:
    """1 x 1 reduction, 1 x k and k x 1 convs, then a 3 x 3 conv dilated by k."""
    return nn.Sequential(
        _conv(cin, cout, 1, batch_norm=batch_norm),
        _conv(cout, cout, (1, k), padding=(0, k // 2), batch_norm=batch_norm),
        _conv(cout, cout, (k, 1), padding=(k // 2, 0), batch_norm=batch_norm),
        _conv(cout, cout, 3, padding=k, dilation=k, batch_norm=batch_norm),
    )


def _init_plain_convs(module: nn.Module) -> None:
    """CPD-VGG's initialisation of its RFB and decoder convs: weights ``N(0, 0.01)``, biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


class RFB(nn.Module):
    """RFB-like multi-scale module: four branches (1 x 1; k = 3, 5, 7), fused, plus a 1 x 1 shortcut."""

    def __init__(self, cin: int, cout: int, batch_norm: bool = True):
        super().__init__()
        self.branch0 = nn.Sequential(_conv(cin, cout, 1, batch_norm=batch_norm))
        self.branch1 = _rfb_branch(cin, cout, 3, batch_norm)
        self.branch2 = _rfb_branch(cin, cout, 5, batch_norm)
        self.branch3 = _rfb_branch(cin, cout, 7, batch_norm)
        self.conv_cat = _conv(4 * cout, cout, 3, padding=1, batch_norm=batch_norm)
        self.conv_res = _conv(cin, cout, 1, batch_norm=batch_norm)
        if not batch_norm:
            _init_plain_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(conv_cat([b0, b1, b2, b3]) + conv_res(x))``."""
        branches = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)
        return F.relu(self.conv_cat(branches) + self.conv_res(x))


class PartialDecoder(nn.Module):
    """CPD's dense aggregation of three feature levels (1/32, 1/16, 1/8 for CPD-R) into a logit map at the finest."""

    def __init__(self, channel: int, batch_norm: bool = True):
        super().__init__()
        c, bn = channel, batch_norm
        self.conv_upsample1 = _conv(c, c, 3, padding=1, batch_norm=bn)
        self.conv_upsample2 = _conv(c, c, 3, padding=1, batch_norm=bn)
        self.conv_upsample3 = _conv(c, c, 3, padding=1, batch_norm=bn)
        self.conv_upsample4 = _conv(c, c, 3, padding=1, batch_norm=bn)
        self.conv_upsample5 = _conv(2 * c, 2 * c, 3, padding=1, batch_norm=bn)
        self.conv_concat2 = _conv(2 * c, 2 * c, 3, padding=1, batch_norm=bn)
        self.conv_concat3 = _conv(3 * c, 3 * c, 3, padding=1, batch_norm=bn)
        self.conv4 = _conv(3 * c, 3 * c, 3, padding=1, batch_norm=bn)
        self.conv5 = nn.Conv2d(3 * c, 1, kernel_size=1)
        if not batch_norm:
            _init_plain_convs(self)

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


class TwoBranchVGG16(nn.Module):
    """CPD's VGG-16: average-pooled stages, conv1-conv3 shared, conv4/conv5 in two copies (no classifier)."""

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        convs = [m for m in build_vgg16(pretrained=pretrained, weights_path=backbone_weights).features if isinstance(m, nn.Conv2d)]

        def stage(first: int, last: int, pool: bool = True) -> nn.Sequential:
            layers: list[nn.Module] = [nn.AvgPool2d(2, stride=2)] if pool else []
            for conv in convs[first:last]:
                layers += [conv, nn.ReLU(inplace=True)]
            return nn.Sequential(*layers)

        self.conv1, self.conv2, self.conv3 = stage(0, 2, pool=False), stage(2, 4), stage(4, 7)
        self.conv4_1, self.conv5_1 = stage(7, 10), stage(10, 13)
        self.conv4_2, self.conv5_2 = copy.deepcopy(self.conv4_1), copy.deepcopy(self.conv5_1)

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """conv1-conv3: the 1/4-resolution, 256-channel conv3_3 feature both branches start from."""
        return self.conv3(self.conv2(self.conv1(x)))


class CPDVGG(nn.Module):
    """CPD's VGG-16 variant: two-branch VGG-16, plain-conv RFB modules and partial decoders, holistic attention."""

    default_loss = "bce"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, channel: int = 32):
        super().__init__()
        self.vgg = TwoBranchVGG16(pretrained, backbone_weights)
        self.rfb3_1, self.rfb4_1, self.rfb5_1 = (RFB(c, channel, batch_norm=False) for c in (256, 512, 512))
        self.agg1 = PartialDecoder(channel, batch_norm=False)
        self.rfb3_2, self.rfb4_2, self.rfb5_2 = (RFB(c, channel, batch_norm=False) for c in (256, 512, 512))
        self.agg2 = PartialDecoder(channel, batch_norm=False)
        self.HA = HolisticAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[detection, attention]`` logits; eval: the detection logits (both at input size)."""
        size = x.shape[2:]
        x3 = self.vgg.shared(x)
        x4_1 = self.vgg.conv4_1(x3)
        x5_1 = self.vgg.conv5_1(x4_1)
        attention = self.agg1(self.rfb5_1(x5_1), self.rfb4_1(x4_1), self.rfb3_1(x3))

        x3_2 = self.HA(attention.sigmoid(), x3)
        x4_2 = self.vgg.conv4_2(x3_2)
        x5_2 = self.vgg.conv5_2(x4_2)
        detection = self.agg2(self.rfb5_2(x5_2), self.rfb4_2(x4_2), self.rfb3_2(x3_2))

        detection = F.interpolate(detection, size=size, mode="bilinear", align_corners=False)
        if not self.training:
            return detection
        return [detection, F.interpolate(attention, size=size, mode="bilinear", align_corners=False)]


@register_model("cpd")
def cpd(pretrained: bool = True, backbone_weights: str | None = None) -> CPD:
    """CPD-R, the ResNet-50 cascaded partial decoder (Wu et al., CVPR 2019)."""
    return CPD(pretrained=pretrained, backbone_weights=backbone_weights)


@register_model("cpd_vgg")
def cpd_vgg(pretrained: bool = True, backbone_weights: str | None = None, **kwargs) -> CPDVGG:
    """CPD with its VGG-16 backbone (Wu et al., CVPR 2019), the variant of Table 7; ``channel`` narrows it for tests."""
    return CPDVGG(pretrained=pretrained, backbone_weights=backbone_weights, **kwargs)
