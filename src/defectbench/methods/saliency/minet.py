"""MINet (Pang, Zhao, Zhang & Lu, CVPR 2020): multi-scale interactive network, VGG-16 variant.

Architecture as in the paper and its official code (github.com/lartpang/MINet, ``code/network/MINet.py``,
``code/module/MyModule.py``), written anew:

* VGG-16 with BatchNorm (torchvision ``vgg16_bn``) cut into five stages ending at ``conv1_2`` .. ``conv5_3``
  (strides 1, 2, 4, 8, 16; the last max-pool and the classifier are not used);
* aggregate interaction modules (AIM): each level is fused with its neighbours by a small two- or three-branch
  network that exchanges information between resolutions (average-pool down, nearest-neighbour up, 3 x 3 convs
  summed per branch, BN, ReLU) and outputs the centre (for the first and last level: the own) resolution with a
  1 x 1 residual shortcut; outputs 32, 64, 64, 64, 64 channels;
* a top-down decoder: at each level the deeper decoder feature is bilinearly upsampled and added, then a
  self-interaction module (SIM: a full- and a half-resolution branch exchanging information twice, residual) and a
  3 x 3 conv-BN-ReLU; a 1 x 1 classifier at full resolution.

MINet has one output (no deep supervision): train mode returns ``[logits]``, eval mode the logits, both at input
size. Default loss ``"bce_cel"``: BCE + the consistency-enhanced loss (CEL), the code's ``use_aux_loss=True``.

Which variant: the official code has ``MINet_VGG16`` (its default in ``config.py``) and ``MINet_Res50``. Counted from
the official code, ``MINet_VGG16`` has 47,562,737 parameters and ``MINet_Res50`` 162,378,305 (its AIM runs 3 x 3
convolutions at 1024 and 2048 channels). Table 7 of Song et al. gives 46.6 M parameters and 190.6 MB: the
VGG-16 variant's state dict is 190.5 MB (the ResNet-50 one's about 650 MB), so the paper used MINet-VGG16 and its
46.6 M is most likely a slip for 47.6 M (the model size it prints beside it needs 47.6 M float32 values).

The backbone needs ``vgg16_bn-6c64b313.pth`` (torchvision's ImageNet weights) from ``--backbone-weights`` or the
checkpoints folder; only its feature tensors are read (the classifier is never built). ``width``
(default 64, the official value) sets every decoder and AIM output width (``width / 2`` at full resolution) and
``backbone_width`` (default 64) the first VGG stage's width, the others scaling with it (the AIM's inner widths
follow, being the smallest of their inputs'); tests use a narrow model (no ImageNet weights exist for it) to keep
training checks cheap: at 64 x 64 the full MINet costs 14x the FLOPs of a ResNet-50.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.vgg import VGG16_WIDTHS, build_vgg16_bn, vgg16_bn_stages



def _up_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


def _up2_nearest(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _down2(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=2, stride=2)


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """3 x 3 conv (no bias) + BN + ReLU: MINet's ``BasicConv2d``."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TwoLevelInteraction(nn.Module):
    """AIM unit of the first or last level: a high- and a low-resolution branch; returns the ``keep`` one."""

    def __init__(self, cin_high: int, cin_low: int, cout: int, keep: str):
        super().__init__()
        if keep not in ("high", "low"):
            raise ValueError("keep must be 'high' or 'low'")
        self.keep = keep
        mid = min(cin_high, cin_low)
        self.h2h_0, self.l2l_0 = _conv3(cin_high, mid), _conv3(cin_low, mid)
        self.bnh_0, self.bnl_0 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid)
        self.h2h_1, self.h2l_1, self.l2h_1, self.l2l_1 = _conv3(mid, mid), _conv3(mid, mid), _conv3(mid, mid), _conv3(mid, mid)
        self.bnl_1, self.bnh_1 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid)
        if keep == "high":
            self.h2h_2, self.l2h_2, self.bnh_2 = _conv3(mid, mid), _conv3(mid, mid), nn.BatchNorm2d(mid)
            self.h2h_3, self.bnh_3 = _conv3(mid, cout), nn.BatchNorm2d(cout)
            self.identity = nn.Conv2d(cin_high, cout, kernel_size=1)
        else:
            self.h2l_2, self.l2l_2, self.bnl_2 = _conv3(mid, mid), _conv3(mid, mid), nn.BatchNorm2d(mid)
            self.l2l_3, self.bnl_3 = _conv3(mid, cout), nn.BatchNorm2d(cout)
            self.identity = nn.Conv2d(cin_low, cout, kernel_size=1)

    def forward(self, in_high: torch.Tensor, in_low: torch.Tensor) -> torch.Tensor:
        """Exchange information between the two resolutions; return the kept one with a 1 x 1 shortcut."""
        h = F.relu(self.bnh_0(self.h2h_0(in_high)))
        l = F.relu(self.bnl_0(self.l2l_0(in_low)))
        h, l = (F.relu(self.bnh_1(self.h2h_1(h) + self.l2h_1(_up2_nearest(l)))),
                F.relu(self.bnl_1(self.l2l_1(l) + self.h2l_1(_down2(h)))))
        if self.keep == "high":
            fused = F.relu(self.bnh_2(self.h2h_2(h) + self.l2h_2(_up2_nearest(l))))
            return F.relu(self.bnh_3(self.h2h_3(fused)) + self.identity(in_high))
        fused = F.relu(self.bnl_2(self.h2l_2(_down2(h)) + self.l2l_2(l)))
        return F.relu(self.bnl_3(self.l2l_3(fused)) + self.identity(in_low))


class ThreeLevelInteraction(nn.Module):
    """AIM unit of a middle level: high, middle and low-resolution branches; returns the middle one."""

    def __init__(self, cin_high: int, cin_mid: int, cin_low: int, cout: int):
        super().__init__()
        mid = min(cin_high, cin_mid, cin_low)
        self.h2h_0, self.m2m_0, self.l2l_0 = _conv3(cin_high, mid), _conv3(cin_mid, mid), _conv3(cin_low, mid)
        self.bnh_0, self.bnm_0, self.bnl_0 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid), nn.BatchNorm2d(mid)
        self.h2h_1, self.h2m_1, self.m2h_1, self.m2m_1 = _conv3(mid, mid), _conv3(mid, mid), _conv3(mid, mid), _conv3(mid, mid)
        self.m2l_1, self.l2m_1, self.l2l_1 = _conv3(mid, mid), _conv3(mid, mid), _conv3(mid, mid)
        self.bnh_1, self.bnm_1, self.bnl_1 = nn.BatchNorm2d(mid), nn.BatchNorm2d(mid), nn.BatchNorm2d(mid)
        self.h2m_2, self.l2m_2, self.m2m_2, self.bnm_2 = _conv3(mid, mid), _conv3(mid, mid), _conv3(mid, mid), nn.BatchNorm2d(mid)
        self.m2m_3, self.bnm_3 = _conv3(mid, cout), nn.BatchNorm2d(cout)
        self.identity = nn.Conv2d(cin_mid, cout, kernel_size=1)

    def forward(self, in_high: torch.Tensor, in_mid: torch.Tensor, in_low: torch.Tensor) -> torch.Tensor:
        """Exchange information between the three resolutions; return the middle one with a 1 x 1 shortcut."""
        h = F.relu(self.bnh_0(self.h2h_0(in_high)))
        m = F.relu(self.bnm_0(self.m2m_0(in_mid)))
        l = F.relu(self.bnl_0(self.l2l_0(in_low)))
        h, m, l = (F.relu(self.bnh_1(self.h2h_1(h) + self.m2h_1(_up2_nearest(m)))),
                   F.relu(self.bnm_1(self.h2m_1(_down2(h)) + self.m2m_1(m) + self.l2m_1(_up2_nearest(l)))),
                   F.relu(self.bnl_1(self.m2l_1(_down2(m)) + self.l2l_1(l))))
        m = F.relu(self.bnm_2(self.h2m_2(_down2(h)) + self.m2m_2(m) + self.l2m_2(_up2_nearest(l))))
        return F.relu(self.bnm_3(self.m2m_3(m)) + self.identity(in_mid))


class AIM(nn.Module):
    """Aggregate interaction module: each of five levels fused with its neighbours."""

    def __init__(self, cins: tuple[int, ...], couts: tuple[int, ...]):
        super().__init__()
        c0, c1, c2, c3, c4 = cins
        self.units = nn.ModuleList([
            TwoLevelInteraction(c0, c1, couts[0], keep="high"),
            ThreeLevelInteraction(c0, c1, c2, couts[1]),
            ThreeLevelInteraction(c1, c2, c3, couts[2]),
            ThreeLevelInteraction(c2, c3, c4, couts[3]),
            TwoLevelInteraction(c3, c4, couts[4], keep="low"),
        ])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Return the five fused levels (shallowest first)."""
        first, *middle, last = self.units
        out = [first(feats[0], feats[1])]
        out += [unit(*feats[i:i + 3]) for i, unit in enumerate(middle)]
        return out + [last(feats[3], feats[4])]


class SIM(nn.Module):
    """Self-interaction module: full- and half-resolution branches exchanging information twice, residual."""

    def __init__(self, channels: int, low_channels: int):
        super().__init__()
        hc, lc = channels, low_channels
        self.h2l_0, self.h2h_0, self.bnl_0, self.bnh_0 = _conv3(hc, lc), _conv3(hc, hc), nn.BatchNorm2d(lc), nn.BatchNorm2d(hc)
        self.h2h_1, self.h2l_1, self.l2h_1, self.l2l_1 = _conv3(hc, hc), _conv3(hc, lc), _conv3(lc, hc), _conv3(lc, lc)
        self.bnl_1, self.bnh_1 = nn.BatchNorm2d(lc), nn.BatchNorm2d(hc)
        self.h2h_2, self.l2h_2, self.bnh_2 = _conv3(hc, hc), _conv3(lc, hc), nn.BatchNorm2d(hc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus its refinement by the two interacting branches."""
        h = F.relu(self.bnh_0(self.h2h_0(x)))
        l = F.relu(self.bnl_0(self.h2l_0(_down2(x))))
        h, l = (F.relu(self.bnh_1(self.h2h_1(h) + self.l2h_1(_up_to(l, h)))),
                F.relu(self.bnl_1(self.l2l_1(l) + self.h2l_1(_down2(h)))))
        h = F.relu(self.bnh_2(self.h2h_2(h) + self.l2h_2(_up_to(l, h))))
        return h + x


class MINet(nn.Module):
    """MINet-VGG16: VGG-16-BN encoder, aggregate interaction modules, SIM decoder, one full-resolution output."""

    default_loss = "bce_cel"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, width: int = 64,
                 backbone_width: int = 64):
        super().__init__()
        if width % 4:
            raise ValueError("MINet width must be divisible by 4")
        w = width
        self.encoder = vgg16_bn_stages(build_vgg16_bn(pretrained, backbone_weights, base_width=backbone_width))
        self.trans = AIM(tuple(c * backbone_width // 64 for c in VGG16_WIDTHS), (w // 2, w, w, w, w))
        # deepest level (1/16) first
        self.sims = nn.ModuleList([SIM(w, w // 2), SIM(w, w // 2), SIM(w, w // 2), SIM(w, w // 2), SIM(w // 2, w // 4)])
        self.upconvs = nn.ModuleList([conv_bn_relu(w, w), conv_bn_relu(w, w), conv_bn_relu(w, w),
                                      conv_bn_relu(w, w // 2), conv_bn_relu(w // 2, w // 2)])
        self.classifier = nn.Conv2d(w // 2, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[logits]``; eval: the logits (at input size)."""
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        feats = self.trans(feats)
        out = None
        for sim, upconv, lateral in zip(self.sims, self.upconvs, reversed(feats), strict=True):
            out = lateral if out is None else lateral + _up_to(out, lateral)
            out = upconv(sim(out))
        logits = self.classifier(out)
        return [logits] if self.training else logits


@register_model("minet")
def minet(pretrained: bool = True, backbone_weights: str | None = None, width: int = 64, backbone_width: int = 64) -> MINet:
    """MINet with a VGG-16-BN backbone (Pang et al., CVPR 2020), the variant of Table 7 (47.6 M parameters)."""
    return MINet(pretrained=pretrained, backbone_weights=backbone_weights, width=width, backbone_width=backbone_width)
