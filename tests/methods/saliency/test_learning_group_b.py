"""EDN, CorrNet, DACNet, CSEPNet and CPD-VGG really learn: loss falls and S-measure rises on four real images.

Each model runs its own code path from scratch (no ImageNet weights offline) in a width-reduced configuration
(constructor arguments only); see :mod:`tests.methods.saliency.learning_checks` for the protocol.

Marked slow: the backbones keep their full width (ImageNet-shaped), so one step costs seconds on a 2-core CPU
(measured under heavy load: EDN 2.3 s, CorrNet 2.9 s, CPD-VGG 3.3 s, CSEPNet 11 s, DACNet 30 s per step).
"""

from __future__ import annotations

import pytest
import torch

from defectbench.methods.saliency import (  # noqa: F401  (registers the models)
    corrnet,
    cpd,
    create_model,
    csepnet,
    dacnet,
    edn,
)
from tests.conftest import needs_sd900
from tests.methods.saliency.learning_checks import assert_learns

# name -> (width-reduced constructor arguments, input size)
REDUCED = {
    "edn": ({"dec_channels": (16, 16, 32, 32, 32, 32, 32)}, 64),
    "corrnet": ({"channel": 32}, 64),
    "dacnet": ({"width": 64}, 64),
    "csepnet": ({"width": 32}, 64),
    "cpd_vgg": ({"channel": 16}, 64),
}


@pytest.mark.slow
@needs_sd900
@pytest.mark.parametrize("name", sorted(REDUCED))
def test_model_learns_on_real_images(name: str) -> None:
    kwargs, size = REDUCED[name]
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, **kwargs)
    model.model_name = name
    assert_learns(model, size=size)
