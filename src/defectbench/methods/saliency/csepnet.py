"""CSEPNet (Ding, Li, Liu & Wang, Measurement 2022): cross-scale edge purification network for steel-defect SOD.

Architecture as in the paper and its official code (github.com/showmaker369/CSEPNet, ``network/CSEPNet.py``,
``module/MyModule.py``), VGG-16-BN variant (the code's default, 18,775,142 parameters, Table 7's 18.8 M; the code
also has a ResNet-50 variant), written anew:

* VGG-16-BN in five stages (1/1 .. 1/16), each output re-weighted by CBAM-style channel (max-pooled, ratio 16)
  then spatial (7 x 7) attention and reduced by a 3 x 3 conv to 64 channels (32 at 1/1);
* cross-scale feature interaction (CSFI) per level: a high- and a half-resolution stream exchange information
  (pooling / upsampling convs), each purified by "contrast" units (``x + x * sigmoid(bn(conv(x - avgpool3(x))))``,
  an edge emphasis), then fused by a learnt cross-scale weight (``w * up(low) + (1 - w) * high``) and a
  residual conv;
* cross-scale complementary fusion (CSC) top-down: the upsampled deeper result and the lateral feature attend
  to each other spatially and are merged through a sigmoid gate;
* deep supervision: a 1 x 1 classifier on the finest level (``p1``) and four deconvolution decoders (three
  conv-BN-ReLU, dropout 0.5, 2 x 2 transposed conv) on the CSFI outputs of levels 1/2 .. 1/16.

The official forward runs each CSFI twice on the same input (once for the side output, once for the path to
the next level); both calls compute the same function, so we run it once (identical outputs; only BatchNorm's
running statistics are updated once per step instead of twice).

Train mode returns ``[s1, s2, s3, s4, s5]`` logits (s1 from the finest level; bilinear, ``align_corners=True``, at
input size); eval mode returns ``s1`` (what the official test saves). Default loss: CEL + BCE + IoU + SSIM on all
five. Input sides must be divisible by 32 (a CSFI halves its level once more).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.attention import ChannelAttention, SpatialAttention
from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.vgg import build_vgg16_bn, vgg16_bn_stages


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def basic_conv(cin: int, cout: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CBAM(nn.Module):
    """Channel attention, then spatial attention on the re-weighted feature."""

    def __init__(self, channels: int):
        super().__init__()
        self.ca, self.sa = ChannelAttention(channels), SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * ca(x) * sa(x * ca(x))``."""
        x = x * self.ca(x)
        return x * self.sa(x)


class Contrast(nn.Module):
    """Edge purification: ``x + x * sigmoid(bn(conv1x1(x - avgpool3(x))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, channels, 1)
        self.bn1 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Emphasise where ``x`` differs from its 3 x 3 local mean."""
        edge = x - F.avg_pool2d(x, 3, stride=1, padding=1)
        return x + x * torch.sigmoid(self.bn1(self.conv_1(edge)))


class CrossScaleWeight(nn.Module):
    """Fuse an upsampled low-resolution feature with a high-resolution one by a learnt sigmoid weight."""

    def __init__(self, low_channels: int, high_channels: int):
        super().__init__()
        self.conv1 = basic_conv(low_channels, high_channels)
        self.sa1, self.sa2 = SpatialAttention(), SpatialAttention()
        self.conv_cat = basic_conv(2 * high_channels, high_channels)
        self.conv2 = nn.Conv2d(high_channels, high_channels, 3, padding=1)
        self.fusion = basic_conv(high_channels, high_channels)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """``fusion(w * up(low) + (1 - w) * high)`` with ``w`` from both, mutually attended."""
        low = self.conv1(_up2(low))
        x1 = low * self.sa2(high) + low
        x2 = high * self.sa1(low) + high
        weight = torch.sigmoid(self.conv2(self.conv_cat(torch.cat([x1, x2], dim=1))))
        return self.fusion(low * weight + high * (1 - weight))


class CSFI(nn.Module):
    """Cross-scale feature interaction: full- and half-resolution streams with contrast purification."""

    def __init__(self, high_channels: int, low_channels: int):
        super().__init__()
        h, lo = high_channels, low_channels
        self.h2h_0, self.bnh_0 = nn.Conv2d(h, h, 3, padding=1), nn.BatchNorm2d(h)
        self.h2l_0, self.bnl_0 = nn.Conv2d(h, lo, 3, padding=1), nn.BatchNorm2d(lo)
        self.contrast1, self.contrast2 = Contrast(lo), Contrast(lo)
        self.contrast3, self.contrast4 = Contrast(h), Contrast(h)
        self.h2h_1, self.l2l_1 = nn.Conv2d(h, h, 3, padding=1), nn.Conv2d(lo, lo, 3, padding=1)
        self.l2h_1, self.h2l_1 = nn.Conv2d(lo, h, 3, padding=1), nn.Conv2d(h, lo, 3, padding=1)
        self.h1h_1, self.bnh_1 = nn.Conv2d(h, h, 3, padding=1), nn.BatchNorm2d(h)
        self.l2l_0, self.bnl_1 = nn.Conv2d(lo, lo, 3, padding=1), nn.BatchNorm2d(lo)
        self.h2h_2, self.l2l_2 = nn.Conv2d(h, h, 3, padding=1), nn.Conv2d(lo, lo, 3, padding=1)
        self.csweight = CrossScaleWeight(lo, h)
        self.conv_out = nn.Conv2d(h, h, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape as ``x`` (its sides must be even)."""
        x_h = F.relu(self.bnh_0(self.h2h_0(x)))
        x_l = F.relu(self.bnl_0(self.h2l_0(F.avg_pool2d(x, 2))))
        x_h2h = self.h2h_1(self.contrast3(x_h))
        x_l2l = self.l2l_1(self.contrast1(x_l))
        x_l2h = self.l2h_1(_resize(x_l2l, x.shape[2:]))
        x_h = self.contrast4(F.relu(self.bnh_1(self.h1h_1(x_h2h + x_l2h))))
        x_h2l = self.h2l_1(F.avg_pool2d(x_h2h, 2))
        x_l = self.contrast2(F.relu(self.bnl_1(self.l2l_0(x_l2l + x_h2l))))
        fused = self.csweight(self.l2l_2(x_l), self.h2h_2(x_h))
        return self.conv_out(fused + x)


class CSC(nn.Module):
    """Cross-scale complementary fusion of a lateral feature with the upsampled deeper result."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = basic_conv(channels, channels)
        self.sa1, self.sa2 = SpatialAttention(), SpatialAttention()
        self.conv_cat = basic_conv(2 * channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fusion = basic_conv(channels, channels)

    def forward(self, left: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        """``fusion((left + right) * gate)`` with ``right = conv(up(deeper))``."""
        right = self.conv1(_up2(deeper))
        x1 = left * self.sa2(right) + left
        x2 = right * self.sa1(left) + right
        gate = torch.sigmoid(self.conv2(self.conv_cat(torch.cat([x1, x2], dim=1))))
        return self.fusion(left * gate + right * gate)


def _side_decoder(channels: int = 64) -> nn.Sequential:
    """Three conv-BN-ReLU, dropout 0.5, then a 2 x 2 stride-2 transposed conv + BN + ReLU (doubles the size)."""
    return nn.Sequential(
        basic_conv(channels, channels), basic_conv(channels, channels), basic_conv(channels, channels), nn.Dropout(0.5),
        nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
    )


class CSEPNet(nn.Module):
    """CSEPNet: VGG-16-BN, CBAM gates, CSFI per level, top-down CSC fusion, five deeply supervised outputs."""

    default_loss = "cel_hybrid"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, width: int = 64):
        super().__init__()
        w, half = width, width // 2
        self.backbone = vgg16_bn_stages(build_vgg16_bn(pretrained=pretrained, weights_path=backbone_weights))
        stage_channels = (64, 128, 256, 512, 512)
        self.gates = nn.ModuleList(CBAM(c) for c in stage_channels)
        self.reduce = nn.ModuleList(nn.Conv2d(c, half if i == 0 else w, 3, padding=1) for i, c in enumerate(stage_channels))
        self.csfi = nn.ModuleList([CSFI(half, half // 2), CSFI(w, half), CSFI(w, half), CSFI(w, half), CSFI(w, half)])
        self.csc = nn.ModuleList([CSC(half), CSC(w), CSC(w), CSC(w)])  # into levels 1/1, 1/2, 1/4, 1/8
        self.upconv = nn.ModuleList([basic_conv(half, half), basic_conv(w, half), basic_conv(w, w), basic_conv(w, w),
                                     basic_conv(w, w)])
        self.classifier = nn.Conv2d(half, 1, 1)
        self.side_decoders = nn.ModuleList(_side_decoder(w) for _ in range(4))  # levels 1/2 .. 1/16
        self.side_heads = nn.ModuleList(nn.Conv2d(w, 1, 3, padding=1) for _ in range(4))
        self.head1 = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[s1, s2, s3, s4, s5]`` logits; eval: ``s1`` (all at input size)."""
        size = x.shape[2:]
        feats = []
        for stage in self.backbone:
            x = stage(x)
            feats.append(x)
        lateral = [reduce(gate(f)) for f, gate, reduce in zip(feats, self.gates, self.reduce, strict=True)]
        purified: list[torch.Tensor] = [torch.empty(0)] * 5  # CSFI outputs p2..p5 feed the side decoders
        purified[4] = self.csfi[4](lateral[4])
        out = self.upconv[4](purified[4])
        for level in (3, 2, 1):
            purified[level] = self.csfi[level](self.csc[level](lateral[level], out))
            out = self.upconv[level](purified[level])
        out = self.upconv[0](self.csfi[0](self.csc[0](lateral[0], out)))
        s1 = self.head1(self.classifier(out))
        if not self.training:
            return s1
        sides = [head(dec(p)) for dec, head, p in zip(self.side_decoders, self.side_heads, purified[1:], strict=True)]
        return [s1, *(_resize(s, size, align_corners=True) for s in sides)]


@register_model("csepnet")
def csepnet(pretrained: bool = True, backbone_weights: str | None = None, **kwargs) -> CSEPNet:
    """CSEPNet with a VGG-16-BN backbone (Ding et al., Measurement 2022); ``width`` narrows it for tests."""
    return CSEPNet(pretrained=pretrained, backbone_weights=backbone_weights, **kwargs)
