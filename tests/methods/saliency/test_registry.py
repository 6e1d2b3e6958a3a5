"""Every registered saliency model follows the registry's conventions at two input sizes."""

from __future__ import annotations

import pytest
import torch

from defectbench.errors import DefectbenchError
from defectbench.methods.saliency import create_model, list_models
from defectbench.methods.saliency.checkpoint import build_model

SIZES = [(64, 64), (64, 96)]  # square and not square


def test_models_are_registered() -> None:
    assert {"litenet", "edrnet", "cpd", "f3net"} <= set(list_models())
    with pytest.raises(DefectbenchError, match="unknown model 'nope'.*litenet"):
        create_model("nope")


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_at_two_sizes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, {}, pretrained=False)
    assert model.model_name == name
    assert isinstance(getattr(model, "default_loss", None), str)
    # BatchNorm statistics as after a first training batch: at initialisation (running variance 1) a deep random
    # ResNet's activations grow without bound in eval mode, and GCPANet's feature products overflow to inf
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, *SIZES[0]))
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        model.eval()
        with torch.no_grad():
            out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1, h, w)
        assert torch.isfinite(out).all()
        model.train()
        outs = model(x)
        assert isinstance(outs, (list, tuple)) and len(outs) >= 1
        for o in outs:
            assert o.shape == (2, 1, h, w)
        # the main train-mode output is the eval output's counterpart: same dtype, gradients flow
        outs[0].float().mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
