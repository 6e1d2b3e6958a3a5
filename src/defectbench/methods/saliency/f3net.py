"""F3Net (Wei, Wang & Huang, AAAI 2020): fusion, feedback and focus for salient object detection.

Architecture as in the paper and its official code (github.com/weijun88/F3Net, ``src/net.py``), written
anew:

* ResNet-50 features of ``layer1``..``layer4`` squeezed to 64 channels (1 x 1 conv + BN + ReLU);
* cascaded feedback decoder: two decoders, each of three cross feature modules (CFM) that fuse a lateral
  feature with the deeper one by element-wise multiplication in two streams; the second decoder adds the
  first decoder's prediction feature (feedback) to every level's input;
* six 3 x 3 prediction heads: both decoders' outputs and the four refined levels of the second decoder.

Train mode returns ``[pred2, pred1, out2r, out3r, out4r, out5r]`` logits (bilinear to input size); eval
mode returns ``pred2`` (what the official test script saves). Default loss: the structure loss (weighted
BCE + weighted IoU) with F3Net's output weights ``(1/2, 1/2, 1/2, 1/4, 1/8, 1/16)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.methods.saliency.backbones import build_resnet
from defectbench.methods.saliency.registry import register_model


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def head_init(module: nn.Module) -> None:
    """F3Net's (and GCPANet's) ``weight_init``: Kaiming-normal (fan-in) convs with zero bias, unit/zero BN."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv_bn(channels: int = 64) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.BatchNorm2d(channels)


class ResNet50Trunk(nn.Module):
    """ResNet-50 without its classifier; returns the outputs of ``layer1``..``layer4``."""

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        net = build_resnet(50, pretrained=pretrained, weights_path=backbone_weights)
        self.conv1, self.bn1 = net.conv1, net.bn1
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features at 1/4 (256 ch), 1/8 (512), 1/16 (1024) and 1/32 (2048) of the input."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x)), inplace=True), kernel_size=3, stride=2, padding=1)
        out2 = self.layer1(x)
        out3 = self.layer2(out2)
        out4 = self.layer3(out3)
        return out2, out3, out4, self.layer4(out4)


class CFM(nn.Module):
    """Cross feature module: two conv streams (lateral "h", top-down "v") exchanging information by product."""

    def __init__(self):
        super().__init__()
        self.conv1h, self.bn1h = _conv_bn()
        self.conv2h, self.bn2h = _conv_bn()
        self.conv3h, self.bn3h = _conv_bn()
        self.conv4h, self.bn4h = _conv_bn()
        self.conv1v, self.bn1v = _conv_bn()
        self.conv2v, self.bn2v = _conv_bn()
        self.conv3v, self.bn3v = _conv_bn()
        self.conv4v, self.bn4v = _conv_bn()

    @staticmethod
    def _cbr(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        return F.relu(bn(conv(x)), inplace=True)

    def forward(self, left: torch.Tensor, down: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the lateral feature ``left`` with the deeper ``down``; return the refined (left, down) pair."""
        if down.shape[2:] != left.shape[2:]:
            down = _resize(down, left.shape[2:])
        out1h = self._cbr(self.conv1h, self.bn1h, left)
        out2h = self._cbr(self.conv2h, self.bn2h, out1h)
        out1v = self._cbr(self.conv1v, self.bn1v, down)
        out2v = self._cbr(self.conv2v, self.bn2v, out1v)
        fuse = out2h * out2v
        out3h = self._cbr(self.conv3h, self.bn3h, fuse) + out1h
        out4h = self._cbr(self.conv4h, self.bn4h, out3h)
        out3v = self._cbr(self.conv3v, self.bn3v, fuse) + out1v
        out4v = self._cbr(self.conv4v, self.bn4v, out3v)
        return out4h, out4v


class Decoder(nn.Module):
    """Three CFMs from the deepest level to 1/4 resolution; optional feedback added to every level's input."""

    def __init__(self):
        super().__init__()
        self.cfm45, self.cfm34, self.cfm23 = CFM(), CFM(), CFM()

    def forward(
        self,
        out2h: torch.Tensor,
        out3h: torch.Tensor,
        out4h: torch.Tensor,
        out5v: torch.Tensor,
        feedback: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Return the refined levels ``(out2h, out3h, out4h, out5v)`` and the prediction feature."""
        if feedback is not None:
            out5v = out5v + _resize(feedback, out5v.shape[2:])
            out4h = out4h + _resize(feedback, out4h.shape[2:])
            out3h = out3h + _resize(feedback, out3h.shape[2:])
            out2h = out2h + _resize(feedback, out2h.shape[2:])
        out4h, out4v = self.cfm45(out4h, out5v)
        out3h, out3v = self.cfm34(out3h, out4v)
        out2h, pred = self.cfm23(out2h, out3v)
        return out2h, out3h, out4h, out5v, pred


def _squeeze(cin: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, 64, kernel_size=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True))


def _head() -> nn.Conv2d:
    return nn.Conv2d(64, 1, kernel_size=3, padding=1)


class F3Net(nn.Module):
    """F3Net: ResNet-50, CFM-based cascaded feedback decoder (two decoders), six prediction heads."""

    default_loss = "structure"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None):
        super().__init__()
        self.bkbone = ResNet50Trunk(pretrained, backbone_weights)
        self.squeeze5, self.squeeze4, self.squeeze3, self.squeeze2 = _squeeze(2048), _squeeze(1024), _squeeze(512), _squeeze(256)
        self.decoder1, self.decoder2 = Decoder(), Decoder()
        self.linearp1, self.linearp2 = _head(), _head()
        self.linearr2, self.linearr3, self.linearr4, self.linearr5 = _head(), _head(), _head(), _head()
        for name, child in self.named_children():
            if name != "bkbone":
                head_init(child)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[pred2, pred1, out2r, out3r, out4r, out5r]`` logits; eval: ``pred2`` (all at input size)."""
        size = x.shape[2:]
        out2h, out3h, out4h, out5v = self.bkbone(x)
        out2h, out3h = self.squeeze2(out2h), self.squeeze3(out3h)
        out4h, out5v = self.squeeze4(out4h), self.squeeze5(out5v)
        out2h, out3h, out4h, out5v, pred1 = self.decoder1(out2h, out3h, out4h, out5v)
        out2h, out3h, out4h, out5v, pred2 = self.decoder2(out2h, out3h, out4h, out5v, pred1)
        pred2 = _resize(self.linearp2(pred2), size)
        if not self.training:
            return pred2
        return [
            pred2,
            _resize(self.linearp1(pred1), size),
            _resize(self.linearr2(out2h), size),
            _resize(self.linearr3(out3h), size),
            _resize(self.linearr4(out4h), size),
            _resize(self.linearr5(out5v), size),
        ]


@register_model("f3net")
def f3net(pretrained: bool = True, backbone_weights: str | None = None) -> F3Net:
    """F3Net with a ResNet-50 backbone (Wei et al., AAAI 2020)."""
    return F3Net(pretrained=pretrained, backbone_weights=backbone_weights)
