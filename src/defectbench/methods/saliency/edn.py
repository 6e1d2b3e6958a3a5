"""EDN (Wu, Liu, Zhang, Cheng & Ren, TIP 2022): salient object detection via an extremely-downsampled network.

Architecture as in the paper and its official code (github.com/yuhuan-wu/EDN, ``models/model.py``,
``models/utils.py``, ``models/resnet.py``), ResNet-50 variant (the paper's main "EDN"; the official code also
has VGG-16, MobileNetV2 "EDN-Lite" and P2T variants), written anew:

* ResNet-50 with *frozen* BatchNorm (statistics and affine terms are buffers, as in EDN's backbone; torchvision's
  ``FrozenBatchNorm2d`` adds ``eps = 1e-5`` under the square root where EDN's adds none), giving features at
  1/2 (64 ch), 1/4 (256), 1/8 (512), 1/16 (1024) and 1/32 (2048);
* extreme downsampling: two more stages of two trainable bottlenecks each (stride 2, 1024 ch) reach 1/64 and
  1/128; global average pooling of the last one gives a sigmoid channel attention that multiplies both extra
  stages' features before they enter the decoder;
* decoder: top-down, each level a 1 x 1 lateral conv (half the level's width) concatenated with the 1 x 1
  reduced, upsampled deeper result, refined by two "receptive convs" (Res2Net-like split into four dilated
  3 x 3 branches with cumulative aggregation, dilations (1, 2, 4, 8) on the fine levels, (1, 2, 3, 4) and
  (1, 1, 1, 1) on the coarse ones);
* five 1 x 1 heads on the five finest decoder levels.

Train mode returns the five head logits ``[1/2, 1/4, 1/8, 1/16, 1/32 level]`` (bilinear to input size); eval mode
returns the finest, the map EDN's test script saves (channel 0). Default loss: BCE + Dice on all five.

Parameters: 42,845,381, equal to the official ``EDN(arch="resnet50")``; Table 7 of Song et al. gives none.
``dec_channels`` (and the receptive convs' ``base_widths``) can be reduced for cheap tests; the defaults are EDN's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from defectbench.methods.saliency.backbones import build_resnet
from defectbench.methods.saliency.registry import register_model

#: EDN-R50's encoder widths: ResNet-50 levels (1/2 .. 1/32), then the two extra downsampling stages.
ENC_CHANNELS = (64, 256, 512, 1024, 2048, 1024, 1024)
#: EDN-R50's decoder widths per level (same order).
DEC_CHANNELS = (32, 64, 256, 512, 512, 128, 128)
#: dilations of the four receptive-conv branches, per level (finest first)
LEVEL_DILATIONS = ((1, 2, 4, 8),) * 3 + ((1, 2, 3, 4),) * 2 + ((1, 1, 1, 1),) * 2
#: receptive-conv base widths per level (a branch has ``floor(width * base / 64)`` channels)
BASE_WIDTHS = (32, 32, 24, 24, 24, 24, 24)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` under ``module`` by a ``FrozenBatchNorm2d`` holding the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


class ConvBNReLU(nn.Module):
    """EDN's ``ConvBNReLU``: conv (with bias) + BN + ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=True)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn(conv(x)))``."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class ReceptiveConv(nn.Module):
    """Residual multi-branch block: 1 x 1 expand, four dilated 3 x 3 branches fed cumulatively, 1 x 1 fuse."""

    def __init__(self, channels: int, base_width: int, dilations: Sequence[int]):
        super().__init__()
        self.width = math.floor(channels * base_width / 64.0)
        branches = len(dilations)
        self.conv1 = nn.Conv2d(channels, self.width * branches, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.width * branches)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, padding=d, dilation=d, bias=False) for d in dilations
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.width) for _ in dilations)
        self.conv3 = nn.Conv2d(self.width * branches, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split the expanded feature in four; branch i sees its part plus branch i-1's output."""
        parts = torch.split(F.relu(self.bn1(self.conv1(x)), inplace=True), self.width, dim=1)
        outs: list[torch.Tensor] = []
        for part, conv, bn in zip(parts, self.convs, self.bns, strict=True):
            inp = part if not outs else outs[-1] + part
            outs.append(F.relu(bn(conv(inp)), inplace=True))
        return F.relu(self.bn3(self.conv3(torch.cat(outs, dim=1))) + x, inplace=True)


class EDNDecoder(nn.Module):
    """Top-down decoder over the seven levels; returns every level's refined feature (finest first)."""

    def __init__(self, enc_channels: Sequence[int], dec_channels: Sequence[int], base_widths: Sequence[int]):
        super().__init__()
        n = len(enc_channels)
        self.lateral = nn.ModuleList(ConvBNReLU(enc_channels[i], dec_channels[i] // 2) for i in range(n - 1))
        self.lateral.append(ConvBNReLU(enc_channels[-1], dec_channels[-1]))
        self.top_down = nn.ModuleList(ConvBNReLU(dec_channels[i + 1], dec_channels[i] // 2) for i in range(n - 1))
        self.fuse = nn.ModuleList(
            nn.Sequential(
                ReceptiveConv(dec_channels[i], base_widths[i], LEVEL_DILATIONS[i]),
                ReceptiveConv(dec_channels[i], base_widths[i], LEVEL_DILATIONS[i]),
            )
            for i in range(n)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Fuse from the deepest level up; each level = fuse(cat(up(reduce(deeper)), lateral(level)))."""
        result = self.fuse[-1](self.lateral[-1](features[-1]))
        results = [result]
        for i in range(len(features) - 2, -1, -1):
            down = F.interpolate(self.top_down[i](result), size=features[i].shape[2:], mode="bilinear", align_corners=False)
            result = self.fuse[i](torch.cat([down, self.lateral[i](features[i])], dim=1))
            results.insert(0, result)
        return results


def _extra_stage(inplanes: int, planes: int) -> nn.Sequential:
    """Two ResNet bottlenecks (trainable BN), the first with stride 2: EDN's extreme-downsampling stage."""
    out = planes * Bottleneck.expansion
    downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=2, bias=False), nn.BatchNorm2d(out))
    return nn.Sequential(Bottleneck(inplanes, planes, stride=2, downsample=downsample), Bottleneck(out, planes))


class FrozenResNet50(nn.Module):
    """ResNet-50 without classifier, all BatchNorm frozen; returns the five levels 1/2 .. 1/32."""

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        net = freeze_batchnorm(build_resnet(50, pretrained=pretrained, weights_path=backbone_weights))
        self.conv1, self.bn1 = net.conv1, net.bn1
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features after the stem (1/2) and after each of the four stages."""
        c1 = F.relu(self.bn1(self.conv1(x)), inplace=True)
        c2 = self.layer1(F.max_pool2d(c1, kernel_size=3, stride=2, padding=1))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c1, c2, c3, c4, self.layer4(c4)]


class EDN(nn.Module):
    """EDN-R50: frozen-BN ResNet-50, two extreme-downsampling stages with global attention, receptive-conv decoder."""

    default_loss = "bce_dice"

    def __init__(
        self,
        pretrained: bool = True,
        backbone_weights: str | None = None,
        dec_channels: Sequence[int] = DEC_CHANNELS,
        base_widths: Sequence[int] = BASE_WIDTHS,
    ):
        super().__init__()
        if len(dec_channels) != len(ENC_CHANNELS) or len(base_widths) != len(ENC_CHANNELS):
            raise ValueError(f"dec_channels and base_widths need {len(ENC_CHANNELS)} entries")
        self.backbone = FrozenResNet50(pretrained, backbone_weights)
        self.conv6 = _extra_stage(ENC_CHANNELS[4], ENC_CHANNELS[5] // Bottleneck.expansion)
        self.conv7 = _extra_stage(ENC_CHANNELS[5], ENC_CHANNELS[6] // Bottleneck.expansion)
        self.fpn = EDNDecoder(ENC_CHANNELS, dec_channels, base_widths)
        self.heads = nn.ModuleList(nn.Conv2d(dec_channels[i], 1, 1) for i in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: the five head logits (finest first); eval: the finest (all at input size)."""
        size = x.shape[2:]
        features = self.backbone(x)
        ed1 = self.conv6(features[-1])
        ed2 = self.conv7(ed1)
        attention = torch.sigmoid(F.adaptive_avg_pool2d(ed2, 1))
        levels = self.fpn([*features, ed1 * attention, ed2 * attention])
        heads = self.heads if self.training else self.heads[:1]
        outs = [F.interpolate(head(level), size=size, mode="bilinear", align_corners=False) for head, level in zip(heads, levels)]
        return outs if self.training else outs[0]


@register_model("edn")
def edn(pretrained: bool = True, backbone_weights: str | None = None, **kwargs) -> EDN:
    """EDN with a ResNet-50 backbone (Wu et al., TIP 2022); ``dec_channels``/``base_widths`` narrow it for tests."""
    return EDN(pretrained=pretrained, backbone_weights=backbone_weights, **kwargs)
