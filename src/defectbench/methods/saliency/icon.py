"""ICON (Zhuge, Fan, Liu, Zhang, Xu & Shao, TPAMI 2023): salient object detection via integrity learning.

Architecture as in the paper and its official code (github.com/mczhuge/ICON, ``main/model/icon``), written anew:

* four encoder levels, deepest first, each through a diverse feature aggregation (DFA: a plain 3 x 3 conv, an
  asymmetric ACNet conv (3 x 3 + 3 x 1 + 1 x 3, each with BN) and a dilated conv, concatenated and fused to 64
  channels);
* integrity channel enhancement (ICE): each level concatenated with its neighbours, then channels re-weighted by
  a gating of their L2 norms; two ICE modules, each shared by two levels as in the official code;
* part-whole verification (PWV): primary capsules (8 x 4 x 4 poses) from the three deeper levels, EM routing
  (3 iterations, 3 x 3 kernel, stride 2), reconstruction, and top-down fusion;
* five 3 x 3 prediction heads.

Train mode returns ``[pred4, pred1, pred2, pred3, pose]`` logits (bilinear to input size); eval mode returns
``pred4``, the map ICON's test script saves. Default loss ``"bce_iou_smooth"`` (ICON's ``CPR``: BCE + IoU with +1
smoothing on all five outputs, summed).

Variants (the official ``ICON-V/R/P`` models): ``icon`` = ICON-V, VGG-16 with BatchNorm (torchvision
``vgg16_bn``); ``icon_r`` = ICON-R, ResNet-50; ``icon_p`` = ICON-P, PVTv2-B4 (timm). The defect paper's Table 7
lists ICON with 19.2 M parameters: the official ICON-V counts 19,167,579, ICON-R 33,088,859, ICON-P 65,676,507 and
ICON-S (Swin-B) 92,402,323, so the paper used ICON-V, registered as ``icon``. ICON-S is not registered: its
Swin-B encoder needs a fixed 384 x 384 input and the 22k-pretrained Swin weights.

Deviations from the official code, all without effect on what is computed:

* the official model holds two modules its forward never calls (each ICE's ``conv_mask``, 65 parameters, and
  PWV's ``fuse1``, 41,216); we leave them out, so each variant has 41,346 parameters fewer than the official count;
* the official ICE resizes ``in1`` where it means ``in2`` (its author's comment: "I made a bug ... If you want to
  re-train it, ... use this [line]"); we train from scratch and use the corrected line, so ICE fuses the
  neighbouring levels as the paper describes;
* the official EM routing assumes a square feature grid; ours takes the grid's real height and width, so
  non-square inputs work.

Input sides must be multiples of 32 (:func:`valid_input_size`); ICON trains at 352 (ICON-V/R) and 384 (ICON-P).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.downloads.catalog import backbone
from defectbench.errors import CheckpointError, ConfigError
from defectbench.methods.saliency.backbones import (
    _find_weights,
    build_resnet,
    load_state_dict_file,
)
from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.vgg import build_vgg16_bn, vgg16_bn_stages

PVT_V2_B4_FILE = (backbone("pvt_v2_b4").file_name, backbone("pvt_v2_b4").url)
INPUT_STRIDE = 32


def valid_input_size(size: int | tuple[int, int]) -> None:
    """Raise :class:`ConfigError` unless both sides of ``size`` are positive multiples of 32."""
    sides = (size, size) if isinstance(size, int) else tuple(size)
    if len(sides) != 2 or any(int(s) != s or s < INPUT_STRIDE or s % INPUT_STRIDE for s in sides):
        raise ConfigError(
            f"ICON cannot take input size {size}: its encoders need sides that are multiples of {INPUT_STRIDE} "
            f"(e.g. 352, its native size, 256, 320 or 384); set the training size to one of those"
        )


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return x if x.shape[2:] == tuple(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------------------ encoders


class VGG16BNEncoder(nn.Module):
    """ICON-V's encoder: the five stages of VGG-16-BN (strides 1 .. 16); returns the four deepest, deepest first.

    ``base_width`` (64 in VGG-16) scales every stage's width, for width-reduced test configurations (no weights).
    """

    def __init__(self, pretrained: bool = True, weights_path: str | None = None, base_width: int = 64):
        super().__init__()
        stages = vgg16_bn_stages(build_vgg16_bn(pretrained, weights_path, base_width=base_width))
        self.channels = (8 * base_width, 8 * base_width, 4 * base_width, 2 * base_width)
        for i, stage in enumerate(stages):
            setattr(self, f"conv{i + 1}", stage)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at 1/16, 1/8, 1/4 and 1/2 of the input."""
        e2 = self.conv2(self.conv1(x))
        e3 = self.conv3(e2)
        e4 = self.conv4(e3)
        return [self.conv5(e4), e4, e3, e2]


class ResNet50Encoder(nn.Module):
    """ICON-R's encoder: ResNet-50 without classifier; ``layer4`` .. ``layer1`` outputs, deepest first."""

    channels = (2048, 1024, 512, 256)

    def __init__(self, pretrained: bool = True, weights_path: str | None = None):
        super().__init__()
        net = build_resnet(50, pretrained=pretrained, weights_path=weights_path)
        self.conv1, self.bn1 = net.conv1, net.bn1
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at 1/32, 1/16, 1/8 and 1/4 of the input."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x)), inplace=True), kernel_size=3, stride=2, padding=1)
        out2 = self.layer1(x)
        out3 = self.layer2(out2)
        out4 = self.layer3(out3)
        return [self.layer4(out4), out4, out3, out2]


class PVTv2B4Encoder(nn.Module):
    """ICON-P's encoder: timm's PVTv2-B4 (no classifier); its four stage outputs, deepest first.

    Weights: the official PVTv2 release file (``pvt_v2_b4.pth``), renamed to timm's keys by timm's own filter.
    """

    channels = (512, 320, 128, 64)

    def __init__(self, pretrained: bool = True, weights_path: str | None = None):
        super().__init__()
        import timm
        from timm.models.pvt_v2 import checkpoint_filter_fn

        self.net = timm.create_model("pvt_v2_b4", pretrained=False, num_classes=0)
        if pretrained:
            file_name, url = PVT_V2_B4_FILE
            path = _find_weights(file_name, weights_path, url, "PVTv2-B4")
            raw = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("head.")}
            state = checkpoint_filter_fn(raw, self.net)
            own = self.net.state_dict()
            wrong = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
            extra = [k for k in state if k not in own]
            if wrong or extra:
                raise CheckpointError(f"{path}: not a PVTv2-B4 ImageNet state dict ({len(wrong)} missing or wrong-shaped, "
                                      f"{len(extra)} unexpected tensors, e.g. {(wrong or extra)[0]})")
            self.net.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at 1/32, 1/16, 1/8 and 1/4 of the input."""
        x = self.net.patch_embed(x)
        feats = []
        for stage in self.net.stages:
            x = stage(x)
            feats.append(x)
        return feats[::-1]


# ------------------------------------------------------------------------------------------------- decoder parts


def icon_init(module: nn.Module) -> None:
    """ICON's ``weight_init``: Kaiming-normal (fan-in) convs with zero bias, unit/zero norms (PReLU and the routing's
    Kaiming-uniform ``W`` keep their own initialisation)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv_bn(cin: int, cout: int, kernel: int | tuple[int, int], padding: int | tuple[int, int]) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.BatchNorm2d(cout)


class AsymmetricConv(nn.Module):
    """ACNet's asymmetric convolution block: BN(3 x 3) + BN(3 x 1) + BN(1 x 3), all without bias."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.square_conv, self.square_bn = _conv_bn(cin, cout, 3, 1)
        self.ver_conv, self.ver_bn = _conv_bn(cin, cout, (3, 1), (1, 0))
        self.hor_conv, self.hor_bn = _conv_bn(cin, cout, (1, 3), (0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the three normalised convolutions."""
        return self.square_bn(self.square_conv(x)) + self.ver_bn(self.ver_conv(x)) + self.hor_bn(self.hor_conv(x))


class DFA(nn.Module):
    """Diverse feature aggregation: plain, asymmetric and dilated 3 x 3 convs, concatenated and fused (BN, ReLU)."""

    def __init__(self, cin: int, cout: int = 64):
        super().__init__()
        self.asyConv = AsymmetricConv(cin, cout)
        self.oriConv = nn.Conv2d(cin, cout, 3, padding=1)
        self.atrConv = nn.Sequential(nn.Conv2d(cin, cout, 3, dilation=2, padding=2), nn.BatchNorm2d(cout), nn.PReLU())
        self.conv2d = nn.Conv2d(cout * 3, cout, 3, padding=1)
        self.bn2d = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn(conv([plain, asymmetric, dilated])))``."""
        return F.relu(self.bn2d(self.conv2d(torch.cat([self.oriConv(x), self.asyConv(x), self.atrConv(x)], dim=1))), inplace=True)


class ICE(nn.Module):
    """Integrity channel enhancement: fuse a level with its neighbours, gate channels by their L2 norms."""

    def __init__(self, channels: int = 64, ratio: int = 8):
        super().__init__()
        self.conv_cross = nn.Conv2d(3 * channels, channels, 3, padding=1, bias=False)
        self.bn_cross = nn.BatchNorm2d(channels)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, channels // ratio, 1), nn.LayerNorm([channels // ratio, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(channels // ratio, channels, 1),
        )

    def forward(self, in1: torch.Tensor, in2: torch.Tensor | None = None, in3: torch.Tensor | None = None) -> torch.Tensor:
        """``x * gate(||x||_2)`` with ``x = relu(bn(conv([in1, in2, in3])))``; missing neighbours are ``in1``."""
        in2 = in1 if in2 is None else _resize(in2, in1.shape[2:])
        in3 = in1 if in3 is None else _resize(in3, in1.shape[2:])
        x = F.relu(self.bn_cross(self.conv_cross(torch.cat([in1, in2, in3], dim=1))))
        context = (x.pow(2).sum(dim=(2, 3), keepdim=True) + 1e-5).sqrt()
        return x * self.channel_add_conv(context)


class EMRouting2d(nn.Module):
    """Convolutional EM routing between capsule layers (matrix capsules, ICON's ``EmRouting2d``).

    ``A`` input and ``B`` output capsule types with ``caps_size`` = 4 x 4 poses; votes from a ``kernel`` x
    ``kernel`` window (stride ``stride``); ``iters`` EM iterations with inverse temperature
    ``final_lambda * (1 - 0.95^(i+1))``. Computations as in the official code.
    """

    def __init__(self, A: int, B: int, caps_size: int, kernel: int = 3, stride: int = 1, padding: int = 1,
                 iters: int = 3, final_lambda: float = 1e-2):
        super().__init__()
        self.A, self.B, self.psize = A, B, caps_size
        self.mat_dim = int(caps_size**0.5)
        self.k, self.kk, self.kkA = kernel, kernel**2, kernel**2 * A
        self.stride, self.pad, self.iters, self.final_lambda = stride, padding, iters, final_lambda
        self.W = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(self.kkA, B, self.mat_dim, self.mat_dim)))
        self.beta_u = nn.Parameter(torch.zeros(1, 1, B, 1))
        self.beta_a = nn.Parameter(torch.zeros(1, 1, B))
        self.ln_2pi = math.log(2 * math.pi)

    def m_step(self, v: torch.Tensor, a_in: torch.Tensor, r: torch.Tensor, lambda_: float) -> tuple[torch.Tensor, ...]:
        """Update activations ``a_out``, means ``mu`` and variances from votes ``v`` and assignments ``r``."""
        b, l = v.shape[:2]
        r = r * a_in.view(b, l, -1, 1, 1)
        r_sum = r.sum(dim=2, keepdim=True)
        coeff = r / (r_sum + 1e-12)
        mu = (coeff * v).sum(dim=2, keepdim=True)
        sigma_sq = (coeff * (v - mu) ** 2).sum(dim=2, keepdim=True) + 1e-12
        r_sum, sigma_sq = r_sum.squeeze(2), sigma_sq.squeeze(2)
        cost_h = (self.beta_u + torch.log(sigma_sq.sqrt())) * r_sum
        a_out = torch.sigmoid(lambda_ * (self.beta_a - cost_h.sum(dim=3)))
        return a_out, mu, sigma_sq

    def e_step(self, v: torch.Tensor, a_out: torch.Tensor, mu: torch.Tensor, sigma_sq: torch.Tensor) -> torch.Tensor:
        """Re-assign votes to output capsules (official log-likelihood, including its ``log(sigma^2 ln 2pi)``)."""
        b, l = a_out.shape[:2]
        sigma_sq = sigma_sq.unsqueeze(2)
        ln_p = -0.5 * torch.log(sigma_sq * self.ln_2pi).sum(dim=-1) - ((v - mu) ** 2 / (2 * sigma_sq)).sum(dim=-1)
        return torch.softmax(ln_p + torch.log(a_out.view(b, l, 1, self.B)), dim=-1).unsqueeze(-1)

    def forward(self, a_in: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations ``B x A x H x W`` and poses ``B x (A 16) x H x W`` in; the routed ones out (strided grid)."""
        b, _, h, w = a_in.shape
        oh = (h + 2 * self.pad - self.k) // self.stride + 1
        ow = (w + 2 * self.pad - self.k) // self.stride + 1
        pose = F.unfold(pose, self.k, stride=self.stride, padding=self.pad)
        l = pose.shape[-1]
        pose = pose.view(b, self.A, self.psize, self.kk, l).permute(0, 4, 3, 1, 2).reshape(b, l, self.kkA, 1, self.mat_dim, self.mat_dim)
        v = torch.matmul(pose, self.W).view(b, l, self.kkA, self.B, self.psize)
        a = F.unfold(a_in, self.k, stride=self.stride, padding=self.pad).view(b, self.A, self.kk, l)
        a = a.permute(0, 3, 2, 1).reshape(b, l, self.kkA)
        r = a.new_ones(b, l, self.kkA, self.B, 1)
        for i in range(self.iters):
            a_out, mu, sigma_sq = self.m_step(v, a, r, self.final_lambda * (1 - 0.95 ** (i + 1)))
            if i < self.iters - 1:
                r = self.e_step(v, a_out, mu, sigma_sq)
        pose_out = mu.squeeze(2).reshape(b, l, -1).transpose(1, 2).reshape(b, -1, oh, ow)
        return a_out.transpose(1, 2).reshape(b, -1, oh, ow), pose_out


def _fuse(c: int) -> nn.Sequential:
    """ICON's fusion: 1 x 1 conv, 3 x 3 conv, BN, ReLU (convs with bias)."""
    return nn.Sequential(nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))


class PWV(nn.Module):
    """Part-whole verification: capsules from three levels, EM routing, reconstruction, top-down fusion."""

    def __init__(self, channels: int = 64, num_caps: int = 8):
        super().__init__()
        c = channels
        self.conv_trans = nn.Conv2d(c * 3, c, 3, padding=1, bias=False)
        self.bn_trans = nn.BatchNorm2d(c)
        self.conv_m = nn.Conv2d(c, num_caps, 5, padding=1, bias=False)
        self.conv_pose = nn.Conv2d(c, num_caps * 16, 5, padding=1, bias=False)
        self.bn_m, self.bn_pose = nn.BatchNorm2d(num_caps), nn.BatchNorm2d(num_caps * 16)
        self.emrouting = EMRouting2d(num_caps, num_caps, 16, kernel=3, stride=2, padding=1)
        self.bn_caps = nn.BatchNorm2d(num_caps * 16)
        self.conv_rec, self.bn_rec = nn.Conv2d(num_caps * 16, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        for i in (1, 2, 3):
            setattr(self, f"conv{i}", nn.Conv2d(2 * c, c, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c))
        self.fuse2 = _fuse(c)
        self.fuse3 = _fuse(c)

    def forward(self, in1: torch.Tensor, in2: torch.Tensor, in3: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the three verified levels (all at ``in2``'s size) and the pose map (at the routing's grid)."""
        size = in2.shape[2:]
        in1, in3 = _resize(in1, size), _resize(in3, size)
        fused = F.relu(self.bn_trans(self.conv_trans(torch.cat([in1, in2, in3], dim=1))), inplace=True)
        m, pose = torch.sigmoid(self.bn_m(self.conv_m(fused))), self.bn_pose(self.conv_pose(fused))
        _, pose = self.emrouting(m, pose)
        pose = F.relu(self.bn_rec(self.conv_rec(self.bn_caps(pose))), inplace=True)
        up = _resize(pose, size)
        out1 = F.relu(self.bn1(self.conv1(torch.cat([in1, up], dim=1))), inplace=True)
        out2 = F.relu(self.bn2(self.conv2(torch.cat([in2, up], dim=1))), inplace=True)
        out3 = F.relu(self.bn3(self.conv3(torch.cat([in3, up], dim=1))), inplace=True)
        out2 = self.fuse2(out2 * out1) + out2
        out3 = self.fuse3(out3 * out2) + out3
        return out1, out2, out3, pose


# ------------------------------------------------------------------------------------------------------- network

_ENCODERS = {"vgg": VGG16BNEncoder, "resnet": ResNet50Encoder, "pvt": PVTv2B4Encoder}


class ICON(nn.Module):
    """ICON: an encoder (``"vgg"``, ``"resnet"`` or ``"pvt"``), DFA x 4, ICE x 2 (shared), PWV, five heads.

    ``encoder`` may also be an ``nn.Module`` with a ``channels`` attribute (4 widths, deepest first) returning four
    feature maps deepest first, e.g. ``VGG16BNEncoder(False, base_width=8)``; ``width`` is the decoder's (64). Both
    give the width-reduced configurations the tests train.
    """

    default_loss = "bce_iou_smooth"

    def __init__(self, encoder: str | nn.Module = "vgg", pretrained: bool = True, backbone_weights: str | None = None,
                 width: int = 64):
        super().__init__()
        if isinstance(encoder, str):
            if encoder not in _ENCODERS:
                raise ValueError(f"encoder must be one of {sorted(_ENCODERS)}")
            encoder = _ENCODERS[encoder](pretrained, backbone_weights)
        self.encoder = encoder
        c = encoder.channels
        self.dfa1, self.dfa2, self.dfa3, self.dfa4 = DFA(c[0], width), DFA(c[1], width), DFA(c[2], width), DFA(c[3], width)
        self.ice1, self.ice2 = ICE(width), ICE(width)
        self.pwv = PWV(width)
        self.fuse = _fuse(width)
        for i in range(1, 6):
            setattr(self, f"predtrans{i}", nn.Conv2d(width, 1, 3, padding=1))
        for name, child in self.named_children():
            if name != "encoder":
                icon_init(child)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[pred4, pred1, pred2, pred3, pose]`` logits; eval: ``pred4`` (all at input size)."""
        size = x.shape[2:]
        f1, f2, f3, f4 = self.encoder(x)
        x1, x2, x3, x4 = self.dfa1(f1), self.dfa2(f2), self.dfa3(f3), self.dfa4(f4)
        x1 = self.ice1(x1, in2=x2)
        x2 = self.ice1(x2, in2=x1, in3=x3)
        x3 = self.ice2(x3, in2=x2, in3=x4)
        x4 = self.ice2(x4, in2=x3)
        x1, x2, x3, pose = self.pwv(x1, x2, x3)
        x3 = _resize(x3, x4.shape[2:])
        x4 = self.fuse(x4 * x3) + x4
        pred4 = _resize(self.predtrans4(x4), size)
        if not self.training:
            return pred4
        return [pred4, _resize(self.predtrans1(x1), size), _resize(self.predtrans2(x2), size),
                _resize(self.predtrans3(x3), size), _resize(self.predtrans5(pose), size)]


@register_model("icon")
def icon(pretrained: bool = True, backbone_weights: str | None = None) -> ICON:
    """ICON-V, VGG-16-BN encoder (Zhuge et al., TPAMI 2023): the 19.2 M-parameter variant of the defect paper."""
    return ICON("vgg", pretrained=pretrained, backbone_weights=backbone_weights)


@register_model("icon_r")
def icon_r(pretrained: bool = True, backbone_weights: str | None = None) -> ICON:
    """ICON-R, ResNet-50 encoder (Zhuge et al., TPAMI 2023)."""
    return ICON("resnet", pretrained=pretrained, backbone_weights=backbone_weights)


@register_model("icon_p")
def icon_p(pretrained: bool = True, backbone_weights: str | None = None) -> ICON:
    """ICON-P, PVTv2-B4 encoder (Zhuge et al., TPAMI 2023)."""
    return ICON("pvt", pretrained=pretrained, backbone_weights=backbone_weights)


for _factory in (icon, icon_r, icon_p):
    _factory.valid_input_size = valid_input_size  # type: ignore[attr-defined]  # checked by the trainer before building data
