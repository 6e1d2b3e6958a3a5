"""CorrNet (Li, Liu, Bai, Lin & Ling, TGRS 2022): lightweight SOD in optical remote-sensing images via feature correlation.

Song et al. name this baseline "CorrNet" in every table but cite the same group's SeaNet paper ("... via semantic
matching and edge alignment", TGRS 2023); we implement CorrNet, the model the tables name. Architecture as in
the paper and its official code (github.com/MathLee/CorrNet, ``model/CorrNet_models.py``, ``model/vgg.py``),
written anew:

* lightweight VGG-16: stages 1-3 are VGG-16's conv1_1 .. conv3_3 with BatchNorm added (ImageNet conv weights,
  fresh BN), stages 4-5 depthwise-separable 3 x 3 convs (randomly initialised); features at 1/1, 1/2, 1/4, 1/8
  and 1/16 of the input (max-pool at the front of stages 2-5);
* correlation module: conv5 and conv4 features (reduced to 128 channels) are matched by a bilinear affinity
  ``A = (W e)^T q`` over all positions, each side attends to the other through a softmax of ``A``, gated by a
  1 x 1 conv + sigmoid, refined and fused into a coarse 1/8-resolution map;
* decoder: channel + spatial attention on the 1/1 and 1/2 features, the coarse map's sigmoid re-weights the 1/4
  feature, and three stages of dense lightweight residual blocks (dilations 2, 4, 6) with heads ``s3``, ``s2``, ``s1``
  (each with ``Dropout2d(0.1)``).

The official code builds two refinement convs in the correlation module but applies the first to both sides
(its ``conv2`` gets no gradient); we apply ``conv2`` to the query side as the paper's figure shows, so the
parameter count (4,086,166) stays that of the official model. Table 7 of Song et al. gives none.

Train mode returns ``[s1, s2, s3, coarse]`` logits (bilinear, ``align_corners=True``, to input size); eval mode
returns ``s1`` (what the official test script saves). Default loss: BCE + IoU on all four.
Input sides must be divisible by 16. ``channel`` narrows the correlation width for cheap tests (default 128).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.attention import ChannelAttention, SpatialAttention
from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.vgg import build_vgg16


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def conv_bn_relu(cin: int, cout: int, kernel_size: int = 3, padding: int = 1, dilation: int = 1, groups: int = 1,
                 bias: bool = False, relu: bool = True) -> nn.Sequential:
    """Conv + BN (+ ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=bias),
                               nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def ds_conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise-separable 3 x 3 conv: depthwise conv-BN-ReLU, then pointwise conv-BN-ReLU."""
    return nn.Sequential(
        conv_bn_relu(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin),
        conv_bn_relu(cin, cout, 1, padding=0),
    )


class LightVGG(nn.Module):
    """CorrNet's backbone: VGG-16 stages 1-3 with BN (ImageNet convs), depthwise-separable stages 4-5."""

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        plan = ((3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256))
        layers: list[nn.Module] = []
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                layers += [nn.Conv2d(item[0], item[1], 3, padding=1), nn.BatchNorm2d(item[1]), nn.ReLU(inplace=True)]
        self.stage1 = nn.Sequential(*layers[:6])
        self.stage2 = nn.Sequential(*layers[6:13])
        self.stage3 = nn.Sequential(*layers[13:])
        self.stage4 = nn.Sequential(nn.MaxPool2d(2, stride=2), ds_conv(256, 512), ds_conv(512, 512), ds_conv(512, 512))
        self.stage5 = nn.Sequential(nn.MaxPool2d(2, stride=2), ds_conv(512, 512), ds_conv(512, 512), ds_conv(512, 512))
        if pretrained:
            self.load_imagenet_convs(build_vgg16(pretrained=True, weights_path=backbone_weights))

    def load_imagenet_convs(self, vgg: nn.Module) -> None:
        """Copy VGG-16's first seven convolutions (conv1_1 .. conv3_3) into stages 1-3."""
        source = [m for m in vgg.features if isinstance(m, nn.Conv2d)][:7]
        target = [m for s in (self.stage1, self.stage2, self.stage3) for m in s if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            for dst, src in zip(target, source, strict=True):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at 1/1 (64 ch), 1/2 (128), 1/4 (256), 1/8 (512) and 1/16 (512)."""
        feats = [self.stage1(x)]
        for stage in (self.stage2, self.stage3, self.stage4, self.stage5):
            feats.append(stage(feats[-1]))
        return feats


class CorrelationModule(nn.Module):
    """Co-attention between a deep "exemplar" and a shallower "query" feature; returns a coarse logit map."""

    def __init__(self, channel: int = 128):
        super().__init__()
        self.linear_e = nn.Linear(channel, channel, bias=False)
        self.gate_1 = nn.Conv2d(channel, 1, 1, bias=False)
        self.gate_2 = nn.Conv2d(channel, 1, 1, bias=False)
        self.conv1 = ds_conv(channel, channel)
        self.conv2 = ds_conv(channel, channel)
        self.conv_fusion = ds_conv(2 * channel, channel)
        self.pred = nn.Conv2d(channel, 1, 1)

    def forward(self, exemplar: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Logits at the query's resolution."""
        b, c, h, w = query.shape
        exemplar = _resize(exemplar, (h, w))
        e_flat, q_flat = exemplar.flatten(2), query.flatten(2)  # B x C x HW
        affinity = torch.bmm(self.linear_e(e_flat.transpose(1, 2)), q_flat)  # B x HW(e) x HW(q)
        query_att = torch.bmm(e_flat, F.softmax(affinity, dim=1)).view(b, c, h, w)
        exemplar_att = torch.bmm(q_flat, F.softmax(affinity.transpose(1, 2), dim=1)).view(b, c, h, w)
        exemplar_out = self.conv1(exemplar_att * torch.sigmoid(self.gate_1(exemplar_att)) + exemplar)
        query_out = self.conv2(query_att * torch.sigmoid(self.gate_2(query_att)) + query)
        return self.pred(self.conv_fusion(torch.cat([exemplar_out, query_out], dim=1)))


class DenseLightResidual(nn.Module):
    """CorrNet's DLRB: three dilated (2, 4, 6) depthwise-separable convs with dense residual 1 x 1 fusions."""

    def __init__(self, channels: int):
        super().__init__()
        self.stage12, self.fuse1 = ds_conv(channels, channels, dilation=2), conv_bn_relu(channels, channels, 1, padding=0)
        self.stage22, self.fuse2 = ds_conv(channels, channels, dilation=4), conv_bn_relu(channels, channels, 1, padding=0)
        self.stage32, self.fuse3 = ds_conv(channels, channels, dilation=6), conv_bn_relu(channels, channels, 1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x3 = fuse3(x + x1 + x2 + conv(x2))`` with ``x1``, ``x2`` built the same way."""
        x1 = self.fuse1(x + self.stage12(x))
        x2 = self.fuse2(x + x1 + self.stage22(x1))
        return self.fuse3(x + x1 + x2 + self.stage32(x2))


def _sal_head(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(p=0.1), nn.Conv2d(channels, 1, 1))


class CorrDecoder(nn.Module):
    """Attention-enhanced low levels, coarse-map-guided 1/4 level, three DLRB stages with saliency heads."""

    def __init__(self):
        super().__init__()
        self.ca_x1, self.sa_x1 = ChannelAttention(64, ratio=4), SpatialAttention(3)
        self.ca_x2, self.sa_x2 = ChannelAttention(128, ratio=4), SpatialAttention(3)
        self.decoder3 = nn.Sequential(DenseLightResidual(256), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                      ds_conv(256, 128))
        self.decoder2 = nn.Sequential(ds_conv(256, 128), DenseLightResidual(128),
                                      nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), ds_conv(128, 64))
        self.decoder1 = nn.Sequential(ds_conv(128, 64), DenseLightResidual(64))
        self.s3, self.s2, self.s1 = _sal_head(128), _sal_head(64), _sal_head(64)

    @staticmethod
    def _enhance(x: torch.Tensor, ca: ChannelAttention, sa: SpatialAttention) -> torch.Tensor:
        x_ca = x * ca(x)
        return x + x_ca * sa(x_ca)

    def forward(self, coarse_prob: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``(s1, s2, s3)`` logits at 1/1, 1/1 and 1/2 resolution."""
        x1 = self._enhance(x1, self.ca_x1, self.sa_x1)
        x2 = self._enhance(x2, self.ca_x2, self.sa_x2)
        x3 = x3 + x3 * _up2(coarse_prob)
        d3 = self.decoder3(x3)
        d2 = self.decoder2(torch.cat([d3, x2], dim=1))
        d1 = self.decoder1(torch.cat([d2, x1], dim=1))
        return self.s1(d1), self.s2(d2), self.s3(d3)


class CorrNet(nn.Module):
    """CorrNet: lightweight VGG-16, correlation module on conv4/conv5, DLRB decoder."""

    default_loss = "bce_iou"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, channel: int = 128):
        super().__init__()
        self.backbone = LightVGG(pretrained, backbone_weights)
        self.conv5 = ds_conv(512, channel)
        self.conv4 = ds_conv(512, channel)
        self.corr45 = CorrelationModule(channel)
        self.decoder = CorrDecoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[s1, s2, s3, coarse]`` logits; eval: ``s1`` (all at input size)."""
        size = x.shape[2:]
        x1, x2, x3, x4, x5 = self.backbone(x)
        coarse = self.corr45(self.conv5(x5), self.conv4(x4))
        s1, s2, s3 = self.decoder(torch.sigmoid(coarse), x1, x2, x3)
        if not self.training:
            return s1
        return [s1, s2, _resize(s3, size), _resize(coarse, size)]


@register_model("corrnet")
def corrnet(pretrained: bool = True, backbone_weights: str | None = None, **kwargs) -> CorrNet:
    """CorrNet with its lightweight VGG-16 backbone (Li et al., TGRS 2022); ``channel`` narrows it for tests."""
    return CorrNet(pretrained=pretrained, backbone_weights=backbone_weights, **kwargs)
