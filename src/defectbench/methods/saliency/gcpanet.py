"""GCPANet (Chen, Xu, Cong & Huang, AAAI 2020): global context-aware progressive aggregation network.

Architecture as in the paper and its official code (github.com/JosephChenHub/GCPANet, ``net.py``), written anew:

* ResNet-50 features of ``layer1``..``layer4`` (1/4 .. 1/32; the stem output is not used);
* head attention (HA, the code's ``SA``): a 3 x 3 conv of the top feature predicts a per-channel weight ``w`` and
  bias ``b`` (``2 x 256`` maps) applied to its own 256-channel projection, ``relu(w * f + b)``, followed by a
  channel attention (``CA``: global-average-pooled top feature -> 1 x 1 conv, ReLU, 1 x 1 conv, sigmoid);
* global context flow (GCF): three more channel attentions of the top feature, one per lower level;
* three feature interweaved aggregation modules (FIA, the code's ``FAM``): the lateral feature (``left``), the
  decoder's deeper feature (``down``) and the global context (``right``) are each projected to 256 channels, and
  the three products ``conv(left) * down``, ``conv(down) * left`` and ``conv(right) * left`` (deeper ones
  bilinearly resized) are concatenated and fused by a 3 x 3 conv-BN-ReLU;
* a self refinement module (SRM) after the top level and each FIA: ``relu(w * f + b)`` with ``w, b`` predicted
  from ``f`` itself;
* four 3 x 3 prediction heads, one per level, upsampled bilinearly (``align_corners=False``) to input size.

Train mode returns ``[out2, out3, out4, out5]`` logits (1/4 level first); eval mode returns ``out2`` (what
``test.py`` saves). Default loss ``"multilevel_bce"``: BCE on the four maps weighted ``1, 0.8, 0.6, 0.4``
(``train.py``). Head initialisation as the code's ``weight_init``: Kaiming-normal (fan-in) convolutions with zero
bias, BN weight 1 and bias 0.

Parameters: 67,056,196, the official ``GCPANet`` (its ResNet-50 has no classifier: 23,508,032 of it), which
Table 7 of Song et al. rounds to 67.1 M. ``channel`` (default 256, the official width) narrows every decoder
module (tests use a narrower model to keep training checks cheap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.f3net import ResNet50Trunk, head_init  # the same weight_init as F3Net's
from defectbench.methods.saliency.registry import register_model


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x if x.shape[2:] == like.shape[2:] else _resize(x, like.shape[2:])


def _conv_bn_relu(cin: int, cout: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def modulate(f: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """``relu(w * f + b)`` where ``w`` and ``b`` are the first and second halves of ``wb``'s channels."""
    w, b = wb.chunk(2, dim=1)
    return F.relu(w * f + b)


class ChannelAttention(nn.Module):
    """CA: a 1 x 1 projection of ``left`` weighted per channel by a squeeze-excitation of ``down``."""

    def __init__(self, cin_left: int, cin_down: int, channel: int = 256):
        super().__init__()
        self.project = _conv_bn_relu(cin_left, channel, 1)
        self.squeeze = nn.Conv2d(cin_down, channel, kernel_size=1)
        self.excite = nn.Conv2d(channel, channel, kernel_size=1)

    def forward(self, left: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        """``project(left) * sigmoid(excite(relu(squeeze(mean(down)))))``."""
        pooled = down.mean(dim=(2, 3), keepdim=True)
        return self.project(left) * torch.sigmoid(self.excite(F.relu(self.squeeze(pooled))))


class HeadAttention(nn.Module):
    """HA (the code's ``SA``): ``relu(w * project(left) + b)`` with ``w, b`` a 3 x 3 conv of ``down``."""

    def __init__(self, cin_left: int, cin_down: int, channel: int = 256):
        super().__init__()
        self.project = _conv_bn_relu(cin_left, channel, 3)
        self.weight_bias = nn.Conv2d(cin_down, 2 * channel, kernel_size=3, padding=1)

    def forward(self, left: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        """Modulate the projected ``left`` with weights and biases predicted from ``down``."""
        f = self.project(left)
        return modulate(f, _resize_to(self.weight_bias(down), f))


class SelfRefinement(nn.Module):
    """SRM: ``relu(w * f + b)`` with ``f`` a 3 x 3 conv-BN-ReLU of the input and ``w, b`` a 3 x 3 conv of ``f``."""

    def __init__(self, cin: int, channel: int = 256):
        super().__init__()
        self.project = _conv_bn_relu(cin, channel, 3)
        self.weight_bias = nn.Conv2d(channel, 2 * channel, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine ``x`` with weights and biases predicted from itself."""
        f = self.project(x)
        return modulate(f, self.weight_bias(f))


class FeatureInterweave(nn.Module):
    """FIA (the code's ``FAM``): interweave a lateral feature, the decoder feature and the global context."""

    def __init__(self, cin_left: int, cin_down: int, cin_right: int, channel: int = 256):
        super().__init__()
        self.left = _conv_bn_relu(cin_left, channel, 3)
        self.down = _conv_bn_relu(cin_down, channel, 3)
        self.right = _conv_bn_relu(cin_right, channel, 3)
        self.conv_down = nn.Conv2d(channel, channel, kernel_size=3, padding=1)
        self.conv_right = nn.Conv2d(channel, channel, kernel_size=3, padding=1)
        self.conv_left = nn.Conv2d(channel, channel, kernel_size=3, padding=1)
        self.fuse = _conv_bn_relu(3 * channel, channel, 3)

    def forward(self, left: torch.Tensor, down: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Fuse ``relu(conv(left) * down)``, ``relu(conv(down) * left)`` and ``relu(conv(right) * left)``."""
        left, down, right = self.left(left), self.down(down), self.right(right)
        z1 = F.relu(self.conv_left(left) * _resize_to(down, left))
        z2 = F.relu(_resize_to(self.conv_down(down), left) * left)
        z3 = F.relu(_resize_to(self.conv_right(right), left) * left)
        return self.fuse(torch.cat([z1, z2, z3], dim=1))


class GCPANet(nn.Module):
    """GCPANet: ResNet-50, head attention, global context flow, three FIA + SRM stages, four prediction heads."""

    default_loss = "multilevel_bce"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, channel: int = 256):
        super().__init__()
        c = channel
        self.bkbone = ResNet50Trunk(pretrained, backbone_weights)
        self.ca45, self.ca35, self.ca25 = ChannelAttention(2048, 2048, c), ChannelAttention(2048, 2048, c), ChannelAttention(2048, 2048, c)
        self.ca55 = ChannelAttention(c, 2048, c)
        self.sa55 = HeadAttention(2048, 2048, c)
        self.fam45, self.fam34, self.fam23 = FeatureInterweave(1024, c, c, c), FeatureInterweave(512, c, c, c), FeatureInterweave(256, c, c, c)
        self.srm5, self.srm4, self.srm3, self.srm2 = (SelfRefinement(c, c) for _ in range(4))
        self.linear5, self.linear4, self.linear3, self.linear2 = (nn.Conv2d(c, 1, kernel_size=3, padding=1) for _ in range(4))
        for name, child in self.named_children():
            if name != "bkbone":
                head_init(child)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[out2, out3, out4, out5]`` logits; eval: ``out2`` (all at input size)."""
        size = x.shape[2:]
        out2, out3, out4, top = self.bkbone(x)
        context4, context3, context2 = self.ca45(top, top), self.ca35(top, top), self.ca25(top, top)
        out5 = self.srm5(self.ca55(self.sa55(top, top), top))
        out4 = self.srm4(self.fam45(out4, out5, context4))
        out3 = self.srm3(self.fam34(out3, out4, context3))
        out2 = self.srm2(self.fam23(out2, out3, context2))
        main = _resize(self.linear2(out2), size)
        if not self.training:
            return main
        return [main, _resize(self.linear3(out3), size), _resize(self.linear4(out4), size), _resize(self.linear5(out5), size)]


@register_model("gcpanet")
def gcpanet(pretrained: bool = True, backbone_weights: str | None = None, channel: int = 256) -> GCPANet:
    """GCPANet with a ResNet-50 backbone (Chen et al., AAAI 2020)."""
    return GCPANet(pretrained=pretrained, backbone_weights=backbone_weights, channel=channel)
