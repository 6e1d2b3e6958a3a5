"""Encoder backbones with ImageNet weights loaded from local files (nothing downloads at run time).

* ResNet-34 / ResNet-50 (torchvision): weights from ``--backbone-weights PATH`` or
  ``$DEFECTBENCH_CHECKPOINTS/<official torchvision file name>``. Training without them needs an explicit
  ``pretrained=False`` (CLI ``--no-pretrained``), which the run record states.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from defectbench.errors import CheckpointError
from defectbench.paths import checkpoints_dir

RESNET_FILES = {
    34: ("resnet34-b627a593.pth", "https://download.pytorch.org/models/resnet34-b627a593.pth"),
    50: ("resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
}


def _find_weights(file_name: str, weights_path: str | Path | None, url: str, what: str) -> Path:
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: backbone weights file not found")
        return path
    folder = checkpoints_dir()
    if folder is not None and (folder / file_name).is_file():
        return folder / file_name
    raise CheckpointError(
        f"{what} ImageNet weights not found: download {url} into $DEFECTBENCH_CHECKPOINTS "
        f"(or pass --backbone-weights PATH), or train from scratch with --no-pretrained"
    )


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a .pth/.pt file, unwrapping common containers; clear error if unreadable."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means a bad file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}); the file is truncated or of another format") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: does not hold a state dict")
    return obj


def build_resnet(depth: int, pretrained: bool = True, weights_path: str | Path | None = None) -> nn.Module:
    """Return a torchvision ResNet-34/50, with ImageNet weights from a local file when ``pretrained``."""
    import torchvision

    if depth not in RESNET_FILES:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_FILES)}")
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    if pretrained:
        file_name, url = RESNET_FILES[depth]
        path = _find_weights(file_name, weights_path, url, f"ResNet-{depth}")
        state = load_state_dict_file(path)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: not a ResNet-{depth} ImageNet state dict ({len(missing)} missing, {len(unexpected)} unexpected keys)"
            )
    return net
