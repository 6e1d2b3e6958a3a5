"""Res2Net-50 v1b (26w x 4s), the backbone of C2FNet, with ImageNet weights from a local copy of the official file.

Res2Net (Gao et al., TPAMI 2021) replaces the 3 x 3 convolution of each ResNet bottleneck by ``scale`` groups of
``width`` channels processed hierarchically: split ``i`` is convolved after adding the previous group's output, the
last split passes through untouched. The "v1b" variant of the official code (github.com/Res2Net/Res2Net-PretrainedModels,
``res2net_v1b.py``; the copy C2FNet ships in ``lib/Res2Net_v1b.py``) adds, written anew here:

* a deep stem: three 3 x 3 convolutions (3 -> 32 -> 32 -> 64, the first with stride 2) instead of one 7 x 7;
* average-pool downsampling in the shortcut: ``AvgPool2d(stride, ceil_mode=True, count_include_pad=False)``, then a
  1 x 1 convolution with stride 1 and BN;
* in the first block of each stage ("stage" blocks) every split's 3 x 3 convolution carries the stride, the splits
  are not chained, and the last split goes through a 3 x 3 average pool with that stride.

timm's ``res2net50_26w_4s`` is the plain v1 network (7 x 7 stem, strided 1 x 1 shortcut), and its ``res2net50d`` has
other weights and key names; neither loads the official v1b file, so the network is written here with the official
parameter names (``conv1.0``, ``layer1.0.convs.0``, ``downsample.1`` ...) and the file loads with every key and shape
checked. Weights come from ``weights_path`` (CLI ``--backbone-weights``) or the official
``res2net50_v1b_26w_4s-3cf99910.pth`` in the checkpoints folder (checked against the hash prefix in its name); the
error names the official URL.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from defectbench.downloads.catalog import backbone
from defectbench.methods.saliency.backbones import _find_weights, load_exact, load_state_dict_file

RES2NET50_V1B_FILE = (backbone("res2net50_v1b").file_name, backbone("res2net50_v1b").url)
RES2NET50_LAYERS = (3, 4, 6, 3)


class Bottle2neck(nn.Module):
    """Res2Net bottleneck: 1 x 1 reduce, ``scale`` hierarchical 3 x 3 splits, 1 x 1 expand (x4), residual."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 base_width: int = 26, scale: int = 4, first_of_stage: bool = False):
        super().__init__()
        if scale < 2:
            raise ValueError("Res2Net scale must be >= 2")
        width = planes * base_width // 64  # floor(planes * base_width / 64)
        self.width, self.scale, self.first_of_stage = width, scale, first_of_stage
        self.conv1 = nn.Conv2d(cin, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False) for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if first_of_stage else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn3(conv3(splits)) + shortcut(x))``."""
        out = F.relu(self.bn1(self.conv1(x)))
        splits = torch.split(out, self.width, dim=1)
        pieces = []
        sp = splits[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i > 0:
                sp = splits[i] if self.first_of_stage else sp + splits[i]
            sp = F.relu(bn(conv(sp)))
            pieces.append(sp)
        last = splits[self.scale - 1]
        pieces.append(self.pool(last) if self.pool is not None else last)
        out = self.bn3(self.conv3(torch.cat(pieces, dim=1)))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class Res2NetV1b(nn.Module):
    """Res2Net v1b: deep stem, max-pool, four stages of :class:`Bottle2neck`, global pool and classifier.

    ``num_classes=None`` builds the feature trunk alone (no ``fc``), the form the saliency models use.
    """

    def __init__(self, layers: tuple[int, int, int, int] = RES2NET50_LAYERS, base_width: int = 26, scale: int = 4,
                 num_classes: int | None = 1000):
        super().__init__()
        self.base_width, self.scale = base_width, scale
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(64)
        self._cin = 64
        self.layer1 = self._make_stage(64, layers[0], stride=1)
        self.layer2 = self._make_stage(128, layers[1], stride=2)
        self.layer3 = self._make_stage(256, layers[2], stride=2)
        self.layer4 = self._make_stage(512, layers[3], stride=2)
        self.fc = None if num_classes is None else nn.Linear(512 * Bottle2neck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        cout = planes * Bottle2neck.expansion
        downsample = None
        if stride != 1 or self._cin != cout:
            downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(self._cin, cout, kernel_size=1, bias=False),
                nn.BatchNorm2d(cout),
            )
        kw = {"base_width": self.base_width, "scale": self.scale}
        stage = [Bottle2neck(self._cin, planes, stride, downsample, first_of_stage=True, **kw)]
        self._cin = cout
        stage += [Bottle2neck(cout, planes, **kw) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Deep stem, BN, ReLU and the 3 x 3 max-pool: the 1/4-resolution, 64-channel input of ``layer1``."""
        x = F.relu(self.bn1(self.conv1(x)))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outputs of ``layer1``..``layer4``: 1/4 (256 ch), 1/8 (512), 1/16 (1024), 1/32 (2048)."""
        x1 = self.layer1(self.stem(x))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        return x1, x2, x3, self.layer4(x3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits (needs the classifier)."""
        if self.fc is None:
            raise RuntimeError("this Res2Net was built without a classifier (num_classes=None); use features()")
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x)[3], 1), 1))


def build_res2net50_v1b(pretrained: bool = True, weights_path: str | Path | None = None,
                        classifier: bool = True) -> Res2NetV1b:
    """Return Res2Net-50 v1b 26w x 4s, with the official ImageNet weights when ``pretrained``.

    ``classifier=False`` leaves out the 1000-class ``fc`` (2,049,000 parameters a saliency model never uses); the
    official file's ``fc`` tensors are then ignored.
    """
    net = Res2NetV1b(num_classes=1000 if classifier else None)
    if pretrained:
        file_name, url = RES2NET50_V1B_FILE
        path = _find_weights(file_name, weights_path, url, "Res2Net-50 v1b")
        unused = () if classifier else ("fc.",)  # a classifier the net was built without
        state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith(unused)}
        load_exact(net, state, path, "a Res2Net-50 v1b 26w_4s ImageNet state dict")
    return net
