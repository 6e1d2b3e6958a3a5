"""Checkpoints of trained saliency models: everything ``predict`` needs (model name, kwargs, input size,
normalisation, weights) plus, in ``last.pt``, the full training state for bit-for-bit ``--resume``."""

from __future__ import annotations

import inspect
import io
import random
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from defectbench.atomic import atomic_write_bytes
from defectbench.errors import CheckpointError
from defectbench.methods.saliency.backbones import state_dict_mismatch

FORMAT = "defectbench-saliency-checkpoint"
VERSION = 1
WEIGHTS_PACKAGE = "defectbench.weights"
SHIPPED = {"sd900": "SD-saliency-900 (540 training images)", "mt": "MT (1to1-train split)"}


def build_model(name: str, kwargs: dict[str, Any], pretrained: bool | None = None, backbone_weights: str | None = None) -> nn.Module:
    """Create a registered model; ``pretrained``/``backbone_weights`` are passed only to factories that take them."""
    import defectbench.methods.saliency  # noqa: F401 - registers every model
    from defectbench.methods.saliency.registry import create_model, model_factory

    kwargs = dict(kwargs)
    params = inspect.signature(model_factory(name)).parameters
    if pretrained is not None and "pretrained" in params:
        kwargs["pretrained"] = pretrained
    if backbone_weights is not None:
        key = "backbone_weights" if "backbone_weights" in params else "weights_path" if "weights_path" in params else None
        if key is None:
            raise CheckpointError(f"model {name!r} takes no backbone weights file")
        kwargs[key] = backbone_weights
    return create_model(name, **kwargs)


def _numpy_state() -> list[Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def _set_numpy_state(state: list[Any]) -> None:
    kind, keys, pos, has_gauss, gauss = state
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def rng_state() -> dict[str, Any]:
    """Capture the Python, NumPy and torch global random states."""
    py = random.getstate()
    return {"python": [py[0], list(py[1]), py[2]], "numpy": _numpy_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def make_checkpoint(model: nn.Module, model_name: str, model_kwargs: dict[str, Any], size: int,
                    mean: tuple[float, ...], std: tuple[float, ...], meta: dict[str, Any] | None = None,
                    train_state: dict[str, Any] | None = None, half: bool = False) -> dict[str, Any]:
    """Return the checkpoint dict of a model (fp16 weights when ``half``; buffers such as BN counts stay exact)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT, "version": VERSION, "model": model_name, "model_kwargs": dict(model_kwargs),
        "input_size": int(size), "mean": list(mean), "std": list(std), "state_dict": state, "meta": dict(meta or {}),
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def save_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a kill never leaves a half-written file)."""
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | Path, expected_model: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint file; one clear :class:`CheckpointError` line if it is missing, corrupt or foreign."""
    from defectbench.torch_io import load_weights_only

    path = Path(path).expanduser()
    ckpt = load_weights_only(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a defectbench saliency checkpoint (a bare state dict or another tool's file); "
                              "use a best.pt/last.pt written by `defectbench train`")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: written by a newer defectbench (format version {ckpt['version']}); upgrade defectbench")
    if expected_model is not None and ckpt["model"] != expected_model:
        raise CheckpointError(f"{path}: checkpoint holds model {ckpt['model']!r}, not {expected_model!r}; pass the right --model or checkpoint")
    return ckpt


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path, model_name: str) -> None:
    """Load a state dict strictly (cast to the model's dtypes); a mismatch becomes one clear line."""
    own = model.state_dict()
    problem = state_dict_mismatch(own, state)
    if problem:
        raise CheckpointError(f"{source}: weights do not fit model {model_name!r} ({problem}); the checkpoint is for "
                              "another model or version")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_trained(checkpoint: str | Path | dict[str, Any], expected_model: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Return ``(model in eval mode, info)`` from a checkpoint path or dict; ``info`` holds name, kwargs, size, mean, std, meta."""
    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint, expected_model)
    source = "checkpoint" if isinstance(checkpoint, dict) else checkpoint
    try:
        model = build_model(ckpt["model"], ckpt["model_kwargs"], pretrained=False)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - unknown model or bad kwargs from a foreign file
        raise CheckpointError(f"{source}: cannot build model {ckpt.get('model')!r} ({exc})") from None
    load_weights(model, ckpt["state_dict"], source, ckpt["model"])
    model.eval()
    info = {k: ckpt[k] for k in ("model", "model_kwargs", "input_size", "mean", "std", "meta")}
    return model, info


def export_weights(checkpoint: str | Path, out_path: str | Path, half: bool = True,
                   extra_meta: dict[str, Any] | None = None) -> Path:
    """Write a deployable copy of a checkpoint: weights only (fp16 when ``half``), no training state."""
    model, info = load_trained(checkpoint)
    meta = {**info["meta"], **(extra_meta or {}), "exported_from": Path(checkpoint).name, "half": half}
    save_checkpoint(out_path, make_checkpoint(model, info["model"], info["model_kwargs"], info["input_size"],
                                              tuple(info["mean"]), tuple(info["std"]), meta=meta, half=half))
    return Path(out_path)


def shipped_weights_path(model: str, name: str) -> Path:
    """Return the path of weights shipped inside the package, e.g. ``litenet`` trained on ``sd900``."""
    folder = Path(str(resources.files(WEIGHTS_PACKAGE)))
    path = folder / f"{model}_{name}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in folder.glob("*.pt"))
        raise CheckpointError(f"no shipped weights {name!r} for model {model!r}; shipped: {', '.join(have) or 'none'} "
                              f"(or pass --checkpoint PATH)")
    return path
