"""Trainable saliency models: registry, backbones and one module per architecture."""

from defectbench.methods.saliency.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    create_model,
    list_models,
    register_model,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "create_model", "list_models", "register_model"]
# model modules register themselves on import (one file per architecture)
from defectbench.methods.saliency import cpd, edrnet, f3net  # noqa: F401,E402  (registers models)
from defectbench.methods.saliency import litenet  # noqa: F401,E402
from defectbench.methods.saliency import c2fnet, corrnet, csepnet, dacnet, edn, gcpanet, icon, minet, scrn, vst  # noqa: F401,E402
