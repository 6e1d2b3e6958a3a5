"""Trainable saliency models: registry, backbones and one module per architecture."""

from defectbench.methods.saliency.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    create_model,
    list_models,
    register_model,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "create_model", "list_models", "register_model"]
