"""EDRNet (Song, Song & Yan, IEEE TIM 2020): encoder-decoder residual network for strip-steel defects.

Architecture as in the paper and its official code (github.com/SongGuorong/EDRNet), written anew:

* encoder: a 3 x 3 stem at full resolution (64 ch), max-pool, then the four stages of a ResNet-34 whose
  every basic block carries CBAM attention (channel MLP with reduction 16 + 7 x 7 spatial gate) before the
  residual sum; a bridge of three 3 x 3 convs (stride 2, dilation 2, dilation 4) down to 1/32;
* decoder: five steps up to full resolution; each fuses the upsampled decoder feature with the encoder
  feature through a channel weighted block (CWB) and two residual decoder blocks (RDB, with PReLU and a
  channel shuffle);
* six side outputs (bridge and each decoder step) and a residual refinement structure with 1-D (3 x 1,
  1 x 3) dilated filters (RRS-1D) that refines the finest side output into the main map.

Train mode returns ``[refined, sal0, sal1, sal2, sal3, sal4, sal_bridge]``; the default loss is the hybrid
BCE + SSIM + IoU loss on all seven. ``pretrained=True`` loads torchvision's ImageNet ResNet-34 into the
convolution and BN layers of the encoder stages (the CBAM gates start from the official initialisation);
the official code trains its encoder from scratch.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.methods.saliency.backbones import build_resnet
from defectbench.methods.saliency.registry import register_model


def _up(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------------------- CBAM encoder


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP over global average- and max-pooled features."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.bias)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x), inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel by ``sigmoid(mlp(avg) + mlp(max))``."""
        att = self._mlp(x.mean(dim=(2, 3))) + self._mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(att)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: 7 x 7 conv + BN over the channel max and mean maps."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=0.01)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out")
        nn.init.zeros_(self.bn.weight)  # official init: the gate starts as a uniform 0.5 scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each position by ``sigmoid(bn(conv([max_c x, mean_c x])))``."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Convolutional block attention module: channel gate then spatial gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply channel then spatial attention."""
        return self.spatial_gate(self.channel_gate(x))


class CBAMBasicBlock(nn.Module):
    """A torchvision ResNet basic block with CBAM applied to the residual branch before the sum."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv1, self.bn1 = block.conv1, block.bn1
        self.conv2, self.bn2 = block.conv2, block.bn2
        self.downsample = block.downsample
        self.cbam = CBAM(block.bn2.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(cbam(bn2(conv2(relu(bn1(conv1 x))))) + shortcut(x))``."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.cbam(self.bn2(self.conv2(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut, inplace=True)


def _cbam_stage(stage: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*(CBAMBasicBlock(block) for block in stage))


# ----------------------------------------------------------------------------------------- decoder parts


def _conv_bn_relu(cin: int, cout: int, **conv_kw) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=3, **conv_kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ChannelWeightedBlock(nn.Module):
    """CWB: weights the encoder feature by a channel attention of [decoder, encoder], adds the decoder feature."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=1)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=1)

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        """``decoder + encoder * sigmoid(conv2(prelu(conv1(gap([decoder, encoder])))))``."""
        att = F.adaptive_avg_pool2d(torch.cat([decoder, encoder], dim=1), 1)
        att = torch.sigmoid(self.conv2(self.prelu(self.conv1(att))))
        return decoder + encoder * att


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal channel groups (ShuffleNet)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ResidualDecoderBlock(nn.Module):
    """RDB: 3 x 3 conv, channel shuffle, 3 x 3 conv, 1 x 1 conv (BN, one shared PReLU) plus a shortcut."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv3 = nn.Conv2d(out_ch, out_ch, kernel_size=1)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = (
            None
            if in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False), nn.BatchNorm2d(out_ch))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        out = self.prelu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, groups=2)
        out = self.prelu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + shortcut)


class _Factorized(nn.Module):
    """A 3 x 1 conv (+ReLU) then a 1 x 3 conv on [it, skip] (+BN+ReLU); both dilated by ``d``."""

    def __init__(self, in_ch: int, mid_ch: int, skip_ch: int, dilation: int):
        super().__init__()
        d = dilation
        self.conv3x1 = nn.Conv2d(in_ch, mid_ch, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3 = nn.Conv2d(mid_ch + skip_ch, 64, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn = nn.BatchNorm2d(64)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (the 3 x 1 branch feature, the block output)."""
        mid = F.relu(self.conv3x1(x), inplace=True)
        inp = mid if skip is None else torch.cat([mid, skip], dim=1)
        return mid, F.relu(self.bn(self.conv1x3(inp)), inplace=True)


class ResidualRefinement1D(nn.Module):
    """RRS-1D: a small U-shaped net of factorised (3 x 1, 1 x 3) dilated convs that predicts a residual map."""

    def __init__(self, in_ch: int = 1, mid_ch: int = 64):
        super().__init__()
        dilations = (1, 1, 2, 4)
        self.enc = nn.ModuleList(
            [_Factorized(in_ch if i == 0 else 64, mid_ch if i == 0 else 64, 0, d) for i, d in enumerate(dilations)]
        )
        self.bridge = nn.Sequential(*_conv_bn_relu(64, 64, padding=1))
        # decoder steps d4, d3, d2, d1 (the 1 x 3 conv sees [upsampled 3 x 1 feature, encoder 3 x 1 feature])
        self.dec = nn.ModuleList(
            [_Factorized(64, 64, 64 if i < 3 else mid_ch, d) for i, d in enumerate(reversed(dilations))]
        )
        self.out = nn.Conv2d(64, 1, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + residual(x)``."""
        skips, h = [], x
        for block in self.enc:
            skip, h = block(h)
            skips.append(skip)
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        h = self.bridge(h)
        for block, skip in zip(self.dec, reversed(skips), strict=True):
            h = _up(h, skip.shape[2:])
            _, h = block(h, skip)
        return x + self.out(h)


# ----------------------------------------------------------------------------------------- EDRNet


class EDRNet(nn.Module):
    """EDRNet: CBAM-ResNet-34 encoder, dilated bridge, CWB/RDB decoder, six side outputs, RRS-1D refinement."""

    default_loss = "hybrid"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        resnet = build_resnet(34, pretrained=pretrained, weights_path=backbone_weights)
        # encoder
        self.stem = nn.Sequential(*_conv_bn_relu(3, 64, padding=1))
        self.encoder1 = _cbam_stage(resnet.layer1)
        self.encoder2 = _cbam_stage(resnet.layer2)
        self.encoder3 = _cbam_stage(resnet.layer3)
        self.encoder4 = _cbam_stage(resnet.layer4)
        self.bridge = nn.Sequential(
            *_conv_bn_relu(512, 512, stride=2, padding=1),
            *_conv_bn_relu(512, 512, dilation=2, padding=2),
            *_conv_bn_relu(512, 512, dilation=4, padding=4),
        )
        # decoder, coarse to fine: (CWB input, CWB output = RDB1 width, RDB2 output)
        widths = [(1024, 512, 256), (512, 256, 128), (256, 128, 64), (128, 64, 64), (128, 64, 64)]
        self.cwb = nn.ModuleList([ChannelWeightedBlock(i, o) for i, o, _ in widths])
        self.rdb = nn.ModuleList(
            [nn.Sequential(ResidualDecoderBlock(o, o), ResidualDecoderBlock(o, r)) for _, o, r in widths]
        )
        # side outputs: bridge, then decoder steps d4 .. d0
        self.side = nn.ModuleList([nn.Conv2d(c, 1, kernel_size=3, padding=1) for c in (512, 256, 128, 64, 64, 64)])
        self.refine = ResidualRefinement1D(in_ch=1, mid_ch=64)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[refined, sal0 .. sal4, sal_bridge]`` logits; eval: the refined logits (all at input size)."""
        size = x.shape[2:]
        f0 = self.stem(x)  # 1/1, 64
        f1 = self.encoder1(F.max_pool2d(f0, kernel_size=3, stride=2, padding=1))  # 1/2, 64
        f2 = self.encoder2(f1)  # 1/4, 128
        f3 = self.encoder3(f2)  # 1/8, 256
        f4 = self.encoder4(f3)  # 1/16, 512
        h = self.bridge(f4)  # 1/32, 512
        feats = [h]
        for cwb, rdb, skip in zip(self.cwb, self.rdb, (f4, f3, f2, f1, f0), strict=True):
            h = rdb(cwb(_up(h, skip.shape[2:]), skip))
            feats.append(h)
        sides = [_up(conv(f), size) for conv, f in zip(self.side, feats, strict=True)]
        sal0 = sides[-1]
        refined = self.refine(sal0)
        if not self.training:
            return refined
        return [refined, *reversed(sides)]


@register_model("edrnet")
def edrnet(pretrained: bool = True, backbone_weights: str | None = None) -> EDRNet:
    """EDRNet with a CBAM-ResNet-34 encoder (Song et al., IEEE TIM 2020)."""
    return EDRNet(pretrained=pretrained, backbone_weights=backbone_weights)
