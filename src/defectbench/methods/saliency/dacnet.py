"""DACNet (Zhou et al., TIM 2022): dense attention-guided cascaded network for strip-steel defect saliency.

Architecture as in the paper and its official code (github.com/zxforchid/DACNet, ``model/DACNet.py``), written
anew. The public code is a BASNet/EDRNet-style encoder-decoder; the paper's attention blocks are not in it, and
we follow the code (its parameter count, 98,390,663, is Table 7's 98.4 M):

* multi-resolution encoder: the input at scales 1, 1/2 and 1/4 passes through one *shared* encoder (a 3 x 3
  stem at stride 1, ResNet-34 ``layer1``-``layer4`` with ImageNet weights, then two stages of three basic
  blocks after max-pooling); the full-scale branch reaches 1/32 after six stages, the 1/2-scale branch after
  five, the 1/4-scale branch after four;
* cascade: the three 1/32 features are fused by two 3 x 3 convs (``c1 = conv(h2_4, h1_5)``,
  ``h6 = conv(h6, c1, h2_4)``);
* a bridge of three dilated convs, then six decoder stages of three conv-BN-ReLU each; every stage's side
  output is upsampled and densely fed to all finer stages (the "dense" guidance);
* seven side outputs ``d1`` (finest, the prediction) .. ``d6`` and the bridge's ``db``.

Train mode returns ``[d1, d2, d3, d4, d5, d6, db]`` logits (bilinear, ``align_corners=True``, at input size);
eval mode returns ``d1``. Default loss: BCE + SSIM + IoU (the ``hybrid`` loss) on all seven, summed.
Input sides must be divisible by 32. ``widths`` narrows the stages after ResNet-34 for cheap tests (the
ResNet-34 stages keep their widths); the default is DACNet's 512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from defectbench.methods.saliency.backbones import build_resnet
from defectbench.methods.saliency.registry import register_model


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _pool(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    return F.max_pool2d(x, k, k, ceil_mode=True)


def conv_bn_relu(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """3 x 3 conv (with bias, optionally dilated) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _blocks(cin: int, cout: int) -> nn.Sequential:
    """Three ResNet basic blocks (the first projects ``cin`` to ``cout`` when they differ)."""
    down = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(BasicBlock(cin, cout, downsample=down), BasicBlock(cout, cout), BasicBlock(cout, cout))


class SharedEncoder(nn.Module):
    """Stride-1 stem, ResNet-34 layer1-4 and two pooled basic-block stages, shared by the three input scales."""

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, width: int = 512):
        super().__init__()
        resnet = build_resnet(34, pretrained=pretrained, weights_path=backbone_weights)
        self.inconv = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.encoder1, self.encoder2, self.encoder3, self.encoder4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.stage5 = _blocks(512, width)
        self.stage6 = _blocks(width, width)

    def forward(self, x: torch.Tensor, depth: int) -> list[torch.Tensor]:
        """The first ``depth`` (4, 5 or 6) stage outputs, at 1/1, 1/2, 1/4, 1/8, 1/16, 1/32 of ``x``."""
        feats = [self.encoder1(self.inconv(x))]
        for layer in (self.encoder2, self.encoder3, self.encoder4)[: depth - 1]:
            feats.append(layer(feats[-1]))
        for stage in (self.stage5, self.stage6)[: depth - 4]:
            feats.append(stage(_pool(feats[-1])))
        return feats


class DACNet(nn.Module):
    """DACNet: three-scale shared ResNet-34 encoder, cascaded 1/32 fusion, dense side-output-guided decoder."""

    default_loss = "hybrid"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, width: int = 512):
        super().__init__()
        w = width
        self.backbone = SharedEncoder(pretrained, backbone_weights, w)
        # cascade of the three 1/32 features: (1/4-scale h2_4: 512 ch, 1/2-scale h1_5: w, full-scale h6: w)
        self.convc1 = nn.Conv2d(512 + w, w, 3, padding=1)
        self.convc2 = nn.Conv2d(w + w + 512, w, 3, padding=1)
        self.bridge = nn.Sequential(conv_bn_relu(w, w, 2), conv_bn_relu(w, w, 2), conv_bn_relu(w, w, 2))
        # decoder stage k takes [up(deeper), encoder feature, upsampled side outputs of all deeper stages]
        self.stage6d = nn.Sequential(conv_bn_relu(2 * w, w), conv_bn_relu(w, w, 2), conv_bn_relu(w, w, 2))
        self.stage5d = nn.Sequential(conv_bn_relu(2 * w, w), conv_bn_relu(w, w), conv_bn_relu(w, w))
        self.stage4d = nn.Sequential(conv_bn_relu(w + 512 + 1, 512), conv_bn_relu(512, 512), conv_bn_relu(512, 256))
        self.stage3d = nn.Sequential(conv_bn_relu(256 + 256 + 2, 256), conv_bn_relu(256, 256), conv_bn_relu(256, 128))
        self.stage2d = nn.Sequential(conv_bn_relu(128 + 128 + 3, 128), conv_bn_relu(128, 128), conv_bn_relu(128, 64))
        self.stage1d = nn.Sequential(conv_bn_relu(64 + 64 + 4, 64), conv_bn_relu(64, 64), conv_bn_relu(64, 64))
        self.outconvb, self.outconv6, self.outconv5 = (nn.Conv2d(w, 1, 3, padding=1) for _ in range(3))
        self.outconv4 = nn.Conv2d(256, 1, 3, padding=1)
        self.outconv3 = nn.Conv2d(128, 1, 3, padding=1)
        self.outconv2 = nn.Conv2d(64, 1, 3, padding=1)
        self.outconv1 = nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[d1, d2, d3, d4, d5, d6, db]`` logits; eval: ``d1`` (all at input size)."""
        size = x.shape[2:]
        h1, h2, h3, h4, h5, h6 = self.backbone(x, depth=6)
        h1_5 = self.backbone(_pool(x, 2), depth=5)[-1]
        h2_4 = self.backbone(_pool(x, 4), depth=4)[-1]
        c1 = self.convc1(torch.cat([h2_4, h1_5], dim=1))
        h6 = self.convc2(torch.cat([h6, c1, h2_4], dim=1))
        hbg = self.bridge(h6)

        hd6 = self.stage6d(torch.cat([hbg, h6], dim=1))
        s6 = self.outconv6(hd6)
        hd5 = self.stage5d(torch.cat([_resize(hd6, h5.shape[2:]), h5], dim=1))
        s5 = self.outconv5(hd5)
        hd4 = self.stage4d(torch.cat([_resize(hd5, h4.shape[2:]), h4, _resize(s6, h4.shape[2:])], dim=1))
        s4 = self.outconv4(hd4)
        at3 = h3.shape[2:]
        hd3 = self.stage3d(torch.cat([_resize(hd4, at3), h3, _resize(s6, at3), _resize(s5, at3)], dim=1))
        s3 = self.outconv3(hd3)
        at2 = h2.shape[2:]
        hd2 = self.stage2d(torch.cat([_resize(hd3, at2), h2, _resize(s6, at2), _resize(s5, at2), _resize(s4, at2)], dim=1))
        s2 = self.outconv2(hd2)
        d6, d5, d4, d3 = (_resize(s, size) for s in (s6, s5, s4, s3))
        hd1 = self.stage1d(torch.cat([_resize(hd2, size), h1, d6, d5, d4, d3], dim=1))
        d1 = self.outconv1(hd1)
        if not self.training:
            return d1
        return [d1, _resize(s2, size), d3, d4, d5, d6, _resize(self.outconvb(hbg), size)]


@register_model("dacnet")
def dacnet(pretrained: bool = True, backbone_weights: str | None = None, **kwargs) -> DACNet:
    """DACNet with a shared ResNet-34 encoder (Zhou et al., TIM 2022); ``width`` narrows it for tests."""
    return DACNet(pretrained=pretrained, backbone_weights=backbone_weights, **kwargs)
