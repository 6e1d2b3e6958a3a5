"""Checks every SOD baseline's tests share: output shapes in both modes, which train output eval returns, all
parameters reached by the paper loss."""

from __future__ import annotations

import torch

from defectbench.methods.saliency.losses import create_loss


def check_forward_shapes(model: torch.nn.Module, size: tuple[int, int], n_train_outputs: int) -> None:
    """Train mode gives ``n_train_outputs`` finite maps at input size; eval mode gives one map tensor."""
    x = torch.randn(2, 3, *size)
    model.train()
    with torch.no_grad():
        outs = model(x)
    assert isinstance(outs, list) and len(outs) == n_train_outputs
    for o in outs:
        assert o.shape == (2, 1, *size) and torch.isfinite(o).all()
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, *size)


def train_and_eval_outputs(model: torch.nn.Module) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Return the train-mode outputs and the eval-mode map of one input, BatchNorm in inference mode for both."""
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        main = model(x)
        model.train()
        for m in model.modules():  # keep BN in inference mode so both passes compute the same function
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        outs = model(x)
    model.eval()
    return outs, main


def unused_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters that get no gradient from the model's default loss on a random batch."""
    model.train()
    model.zero_grad()
    target = (torch.rand(2, 1, 64, 64) > 0.8).float()
    create_loss(model.default_loss)(model(torch.randn(2, 3, 64, 64)), target).backward()
    return [n for n, p in model.named_parameters() if p.grad is None]


def check_state_dict_round_trip(model: torch.nn.Module, rebuild, size: tuple[int, int] = (64, 64)) -> None:
    """A state dict saved and loaded into a differently seeded ``rebuild()`` gives the same tensors and outputs."""
    import io

    # BatchNorm statistics as after a first training batch: at initialisation (running variance 1) some deep random
    # networks overflow in eval mode (GCPANet gives NaN), and NaN never equals NaN; real statistics also make the
    # round trip carry non-trivial buffers. Without this the test passed only after another test had trained the model
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, *size))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(5)
    other = rebuild()
    other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    for (ka, a), (kb, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(a, b), ka
    model.eval()
    other.eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        out = model(x)
        assert torch.isfinite(out).all()
        assert torch.equal(out, other(x))
