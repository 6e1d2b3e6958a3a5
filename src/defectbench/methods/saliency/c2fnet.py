"""C2FNet (Sun, Chen, Zhou, Zhang & Liu, IJCAI 2021): context-aware cross-level fusion network.

Architecture as in the paper and its official code (github.com/thograce/C2FNet, ``lib/C2FNet.py``), written anew:

* Res2Net-50 v1b 26w x 4s (deep stem, average-pool shortcuts; :mod:`~defectbench.methods.saliency.res2net`);
  ``layer2``..``layer4`` (1/8, 1/16, 1/32) are reduced to ``channel`` (64) channels by RFB-like multi-scale
  modules, the same module as CPD's (:class:`~defectbench.methods.saliency.cpd.RFB`);
* attention-induced cross-level fusion (ACFM): the deeper feature is upsampled x2 (bilinear), a multi-scale channel
  attention (MSCA: a local 1 x 1 bottleneck branch plus a global-average-pooled one, each conv-BN-ReLU-conv-BN with
  reduction 4, summed, sigmoid) of the sum weighs the two, ``x * a + y * (1 - a)``, then a 3 x 3 conv-BN-ReLU;
* dual-branch global context modules (DGCM): a full- and a half-resolution (2 x 2 average pool) 3 x 3 conv-BN-ReLU
  branch, each reweighted by its own MSCA, summed after bilinear upsampling, then a 3 x 3 conv-BN-ReLU; its output
  is added to its input and passed through one more 3 x 3 conv-BN-ReLU;
* two ACFM + DGCM stages (1/32 -> 1/16 -> 1/8) and a 1 x 1 classifier at 1/8 resolution, upsampled bilinearly
  (``align_corners=False``) to input size.

C2FNet has one output: train mode returns ``[logits]``, eval mode the logits. Default loss ``"structure_sum"``:
F3Net's structure loss (weighted BCE + weighted IoU) on the one output (``MyTrain.py``; like F3Net's code, C2FNet's
passes ``reduce='none'``, which makes its BCE term unweighted; we follow the paper's weighted form as ``structure``
does).

Parameters: 26,362,217. The official ``C2FNet()`` counts 28,411,217 because its Res2Net keeps the ImageNet
classifier (``resnet.fc``, 2,049,000 parameters) that the forward pass never uses; we leave it out. Table 7 of
Song et al. gives 26.4 M parameters (our count, i.e. parameters the forward pass uses) and 114.3 MB, the size of
the official state dict with the classifier (114.2 MB measured). The official decoder has no explicit
initialisation (PyTorch's defaults), nor do we. ``channel`` (default 64, the official value) narrows the decoder
(tests use a narrower model to keep training checks cheap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.cpd import RFB
from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.res2net import build_res2net50_v1b


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Module):
    """3 x 3 conv (no bias) + BN + ReLU (C2FNet's ``BasicConv2d(..., relu=True)``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn(conv(x)))``."""
        return F.relu(self.bn(self.conv(x)))


def _bottleneck(channels: int, reduced: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, reduced, kernel_size=1), nn.BatchNorm2d(reduced), nn.ReLU(inplace=True),
            nn.Conv2d(reduced, channels, kernel_size=1), nn.BatchNorm2d(channels)]


class MSCA(nn.Module):
    """Multi-scale channel attention: ``sigmoid(local(x) + global(avgpool(x)))``, both 1 x 1 bottlenecks."""

    def __init__(self, channels: int = 64, reduction: int = 4):
        super().__init__()
        self.local_att = nn.Sequential(*_bottleneck(channels, channels // reduction))
        self.global_att = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_bottleneck(channels, channels // reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights in ``(0, 1)``, one per pixel and channel."""
        return torch.sigmoid(self.local_att(x) + self.global_att(x))


class ACFM(nn.Module):
    """Attention-induced cross-level fusion of a feature ``x`` and the twice-smaller deeper feature ``y``."""

    def __init__(self, channel: int = 64):
        super().__init__()
        self.msca = MSCA(channel)
        self.conv = ConvBNReLU(channel, channel)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``conv(x * a + y' * (1 - a))`` with ``y'`` the upsampled ``y`` and ``a = msca(x + y')``."""
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        a = self.msca(x + y)
        return self.conv(x * a + y * (1 - a))


class DGCM(nn.Module):
    """Dual-branch global context module: full- and half-resolution branches, each reweighted by an MSCA."""

    def __init__(self, channel: int = 64):
        super().__init__()
        self.h2l = ConvBNReLU(channel, channel)
        self.h2h = ConvBNReLU(channel, channel)
        self.mscah = MSCA(channel)
        self.mscal = MSCA(channel)
        self.conv = ConvBNReLU(channel, channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv(h * msca_h(h) + up(l * msca_l(l)))`` with ``h``, ``l`` the full- and half-resolution branches."""
        h = self.h2h(x)
        low = self.h2l(F.avg_pool2d(x, kernel_size=2, stride=2))
        h = h * self.mscah(h)
        low = low * self.mscal(low)
        return self.conv(h + _resize(low, h.shape[2:]))


class C2FNet(nn.Module):
    """C2FNet: Res2Net-50 v1b, three RFBs, two ACFM + DGCM stages, a 1/8-resolution classifier."""

    default_loss = "structure_sum"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, channel: int = 64):
        super().__init__()
        self.resnet = build_res2net50_v1b(pretrained, backbone_weights, classifier=False)
        self.rfb2_1, self.rfb3_1, self.rfb4_1 = RFB(512, channel), RFB(1024, channel), RFB(2048, channel)
        self.acfm3, self.acfm2 = ACFM(channel), ACFM(channel)
        self.dgcm3, self.dgcm2 = DGCM(channel), DGCM(channel)
        self.upconv3, self.upconv2 = ConvBNReLU(channel, channel), ConvBNReLU(channel, channel)
        self.classifier = nn.Conv2d(channel, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[logits]``; eval: the logits (at input size)."""
        _, x2, x3, x4 = self.resnet.features(x)
        x43 = self.acfm3(self.rfb3_1(x3), self.rfb4_1(x4))
        out43 = self.upconv3(self.dgcm3(x43) + x43)
        x432 = self.acfm2(self.rfb2_1(x2), out43)
        out432 = self.upconv2(self.dgcm2(x432) + x432)
        logits = _resize(self.classifier(out432), x.shape[2:])
        return [logits] if self.training else logits


@register_model("c2fnet")
def c2fnet(pretrained: bool = True, backbone_weights: str | None = None, channel: int = 64) -> C2FNet:
    """C2FNet with a Res2Net-50 v1b backbone (Sun et al., IJCAI 2021)."""
    return C2FNet(pretrained=pretrained, backbone_weights=backbone_weights, channel=channel)
