"""SCRN (Wu, Su & Huang, ICCV 2019): stacked cross refinement network for edge-aware salient object detection.

Architecture as in the paper and its official code (github.com/wuzhe71/SCRN, ``model/ResNet_models.py``), written
anew:

* ResNet-50 features of ``layer1``..``layer4`` (1/4 .. 1/32), each reduced twice to ``channel`` (32) channels by a
  1 x 1 + 3 x 3 + 3 x 3 conv-BN stack (no activation): once for the saliency stream, once for the edge stream;
* four stacked cross refinement units (CRU). In each, level ``i`` of the saliency stream adds a residual computed
  from the concatenation of itself, the edge feature of the same level and the edge features of every deeper level
  (upsampled, 1 x 1 conv-BN); level ``i`` of the edge stream adds a residual computed from the product of itself,
  the saliency feature of the same level and the saliency features of every deeper level (upsampled, 1 x 1 conv-BN);
* two U-Net-like decoders (one per stream) merge the four levels top-down (x2 bilinear upsampling with
  ``align_corners=True``, 3 x 3 conv-BN, concatenation, 3 x 3 + 1 x 1 conv-BN) into a 1/4-resolution logit map.

Every conv-BN of SCRN is linear (``BasicConv2d`` applies no ReLU); the only nonlinearities of the decoder are the
products of the edge stream. Train mode returns ``[saliency, edge]`` logits (bilinear, ``align_corners=True``, to
input size); eval mode returns the saliency map (what ``test_SCRN.py`` saves). Default loss ``"bce_edge"``: BCE of
the saliency map against the mask plus BCE of the edge map against the mask's Sobel edges (``train_SCRN.py``).

Choices where the code is not explicit or does not carry over:

* the official ``conv_upsample`` applies its 1 x 1 conv only when the two levels differ in size; for inputs divisible
  by 32 (this registry's convention) cross-level pairs always differ, so the conv is always applied here;
* the official code first draws *every* convolution, the ResNet's included, from N(0, 0.01) and then loads the
  ImageNet weights over the ResNet; here the decoder is drawn from N(0, 0.01) (BN weight 1, bias 0) and the ResNet
  keeps torchvision's initialisation, which only matters with ``pretrained=False``.

Parameters: 25,226,498, the official ``SCRN()`` (its ResNet-50 has no classifier: 23,508,032 of it). Table 7 of
Song et al. gives no number for SCRN. ``channel`` (default 32, the official value) narrows both streams (tests use
a narrower model to keep training checks cheap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.f3net import ResNet50Trunk
from defectbench.methods.saliency.registry import register_model


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def conv_bn(cin: int, cout: int, kernel_size: int, padding: int = 0) -> nn.Sequential:
    """Conv (no bias) + BN, no activation: SCRN's ``BasicConv2d``."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=False), nn.BatchNorm2d(cout))


def reduction(cin: int, cout: int) -> nn.Sequential:
    """1 x 1 then two 3 x 3 conv-BN: a backbone level squeezed to ``cout`` channels."""
    return nn.Sequential(conv_bn(cin, cout, 1), conv_bn(cout, cout, 3, 1), conv_bn(cout, cout, 3, 1))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cout, 3, 1), conv_bn(cout, cout, 3, 1))


class UpConv(nn.Module):
    """Bilinear upsampling of a deeper feature to a target's size, then a 1 x 1 conv-BN."""

    def __init__(self, channel: int):
        super().__init__()
        self.conv = conv_bn(channel, channel, 1)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``conv(resize(x, target's size))``."""
        return self.conv(_resize(x, target.shape[2:]))


class CrossRefinementUnit(nn.Module):
    """One CRU: saliency levels refined by concatenated edge features, edge levels by multiplied saliency features."""

    def __init__(self, channel: int, levels: int = 4):
        super().__init__()
        self.levels = levels
        # up_edge[i][j]: edge level i + 1 + j brought to saliency level i; up_sal likewise for the edge stream
        self.up_edge = nn.ModuleList(nn.ModuleList(UpConv(channel) for _ in range(levels - 1 - i)) for i in range(levels))
        self.up_sal = nn.ModuleList(nn.ModuleList(UpConv(channel) for _ in range(levels - 1 - i)) for i in range(levels))
        self.fuse_sal = nn.ModuleList(_double_conv((levels + 1 - i) * channel, channel) for i in range(levels))
        self.fuse_edge = nn.ModuleList(_double_conv(channel, channel) for _ in range(levels))

    def forward(self, sal: list[torch.Tensor], edge: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Refine the saliency and edge levels (shallowest first); return both lists."""
        new_sal, new_edge = [], []
        for i in range(self.levels):
            deeper_edge = [up(e, sal[i]) for up, e in zip(self.up_edge[i], edge[i + 1:], strict=True)]
            new_sal.append(sal[i] + self.fuse_sal[i](torch.cat([sal[i], edge[i], *deeper_edge], dim=1)))
            product = edge[i] * sal[i]
            for up, s in zip(self.up_sal[i], sal[i + 1:], strict=True):
                product = product * up(s, edge[i])
            new_edge.append(edge[i] + self.fuse_edge[i](product))
        return new_sal, new_edge


class UNetOutput(nn.Module):
    """SCRN's ``ConcatOutput``: top-down merge of four levels into one 1/4-resolution logit map."""

    def __init__(self, channel: int):
        super().__init__()
        self.up = nn.ModuleList(conv_bn(channel, channel, 3, 1) for _ in range(3))
        self.merge = nn.ModuleList(nn.Sequential(conv_bn(2 * channel, 2 * channel, 3, 1), conv_bn(2 * channel, channel, 1))
                                   for _ in range(3))
        self.output = nn.Sequential(conv_bn(channel, channel, 3, 1), nn.Conv2d(channel, 1, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Merge ``feats`` (shallowest first) from the deepest level up; return the logits."""
        x = feats[-1]
        for k, skip in enumerate(reversed(feats[:-1])):
            up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            x = self.merge[k](torch.cat([skip, self.up[k](up)], dim=1))
        return self.output(x)


class SCRN(nn.Module):
    """SCRN: ResNet-50, two reduced streams, four stacked cross refinement units, two U-Net decoders."""

    default_loss = "bce_edge"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, channel: int = 32, units: int = 4):
        super().__init__()
        self.resnet = ResNet50Trunk(pretrained, backbone_weights)
        widths = (256, 512, 1024, 2048)
        self.reduce_sal = nn.ModuleList(reduction(c, channel) for c in widths)
        self.reduce_edge = nn.ModuleList(reduction(c, channel) for c in widths)
        self.cru = nn.ModuleList(CrossRefinementUnit(channel) for _ in range(units))
        self.output_sal = UNetOutput(channel)
        self.output_edge = UNetOutput(channel)
        for name, child in self.named_children():
            if name != "resnet":
                _scrn_init(child)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[saliency, edge]`` logits; eval: the saliency logits (both at input size)."""
        size = x.shape[2:]
        feats = self.resnet(x)
        sal = [r(f) for r, f in zip(self.reduce_sal, feats, strict=True)]
        edge = [r(f) for r, f in zip(self.reduce_edge, feats, strict=True)]
        for unit in self.cru:
            sal, edge = unit(sal, edge)
        saliency = _resize(self.output_sal(sal), size)
        if not self.training:
            return saliency
        return [saliency, _resize(self.output_edge(edge), size)]


def _scrn_init(module: nn.Module) -> None:
    """SCRN's initialisation: convolution weights from N(0, 0.01) (biases keep PyTorch's), BN weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_model("scrn")
def scrn(pretrained: bool = True, backbone_weights: str | None = None, channel: int = 32) -> SCRN:
    """SCRN with a ResNet-50 backbone (Wu et al., ICCV 2019)."""
    return SCRN(pretrained=pretrained, backbone_weights=backbone_weights, channel=channel)
