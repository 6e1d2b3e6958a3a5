"""Registry of trainable saliency (SOD) models, the timm pattern: one file per architecture.

Conventions every registered model follows:

* input: ``B x 3 x H x W`` float tensor, RGB, normalised with ImageNet mean/std (:data:`IMAGENET_MEAN`,
  :data:`IMAGENET_STD`); any ``H, W`` divisible by 32;
* ``model.train()`` forward returns a list of logit tensors ``[main, *side_outputs]``, each ``B x 1 x H x W``
  at input resolution (side outputs for deep supervision where the model's paper uses them);
* ``model.eval()`` forward returns the main logits ``B x 1 x H x W``;
* ``model.default_loss`` names the paper's loss in :mod:`defectbench.methods.saliency.losses`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from defectbench.errors import DefectbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator that registers a model factory under ``name``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = factory
        return factory

    return deco


def list_models() -> list[str]:
    """Return the names of all registered saliency models, sorted."""
    return sorted(_MODELS)


def model_factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered under ``name`` (its signature lists the model's keyword arguments)."""
    if name not in _MODELS:
        raise DefectbenchError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name]


def check_input_size(name: str, size: int | tuple[int, int]) -> None:
    """Raise ConfigError if model ``name`` cannot take inputs of ``size`` (a factory's ``valid_input_size``)."""
    check = getattr(model_factory(name), "valid_input_size", None)
    if check is not None:
        check(size)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name (keyword arguments go to its factory)."""
    if name not in _MODELS:
        raise DefectbenchError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    model = _MODELS[name](**kwargs)
    model.model_name = name
    return model
