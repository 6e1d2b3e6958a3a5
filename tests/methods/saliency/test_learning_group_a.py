"""SCRN, MINet, GCPANet and C2FNet really learn: two real SD-saliency-900 images, 64 x 64, from scratch.

Each model is a width-reduced configuration of its own code path (same modules, backbone and loss; narrower decoder,
and for MINet a narrower VGG, whose full width at 64 x 64 costs 14x a ResNet-50) so the four checks stay cheap.
:func:`~tests.methods.saliency.learning_checks.assert_learns` stops as soon as the loss is below half its start and
the mean S-measure has risen by 0.15. SCRN draws its decoder from N(0, 0.01) (its paper's initialisation), so its
near-zero logits need a larger step (lr 1e-2) to move within the bound.

Cost measured here (idle 2-core Intel Xeon, two threads, wall seconds of the training loop): SCRN 30 steps 8.0 s,
MINet 36 steps 3.7 s, GCPANet 6 steps 1.3 s, C2FNet 30 steps 7.8 s.
"""

from __future__ import annotations

import pytest
import torch

from defectbench.methods.saliency import c2fnet as _c2fnet  # noqa: F401  (registers the models)
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency import gcpanet as _gcpanet  # noqa: F401
from defectbench.methods.saliency import minet as _minet  # noqa: F401
from defectbench.methods.saliency import scrn as _scrn  # noqa: F401
from tests.conftest import needs_sd900
from tests.methods.saliency.learning_checks import assert_learns

CASES = {
    "scrn": ({"channel": 16}, 1e-2),
    "minet": ({"width": 16, "backbone_width": 16}, 3e-3),
    "gcpanet": ({"channel": 32}, 3e-3),
    "c2fnet": ({"channel": 16}, 3e-3),
}


@needs_sd900
@pytest.mark.parametrize("name", list(CASES))
def test_model_learns_on_real_images(name: str) -> None:
    kwargs, lr = CASES[name]
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, **kwargs)
    result = assert_learns(model, size=64, max_steps=60, lr=lr)
    assert result.steps < 60  # both bars were cleared before the bound
