"""Every registered saliency model exports to ONNX (random weights, input 64, static batch 1) and gives PyTorch's
logits on ONNX Runtime, or is listed in CANNOT_EXPORT with the reason. New models join the sweep automatically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectbench.errors import DefectbenchError
from defectbench.methods.saliency import list_models
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD

# model name -> why it cannot be exported (each entry must still fail, and name a registered model)
CANNOT_EXPORT: dict[str, str] = {
    "vst": "torch.onnx (torch.export-based) gives logits 0.53 off PyTorch's (ONNX Runtime and OpenVINO agree with each "
           "other, so the graph itself is wrong; F.fold/F.unfold alone export exactly); the TorchScript exporter fails on "
           "col2im. export_model's check refuses it with an ExportError, so VST runs on --engine torch only",
}
SIZE = 64


def test_cannot_export_list_names_registered_models() -> None:
    assert set(CANNOT_EXPORT) <= set(list_models()), "remove entries of models that are no longer registered"
    assert all(len(reason) > 10 for reason in CANNOT_EXPORT.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_registered_model_exports_and_matches(name, tmp_path, engines_installed) -> None:
    import onnxruntime as ort

    from defectbench.deploy.export import export_model, read_metadata
    from defectbench.methods.saliency.checkpoint import build_model

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_model(name, {}, pretrained=False).train()
    with torch.no_grad():  # BatchNorm statistics of a first batch: at init GCPANet's eval output overflows to NaN
        model(torch.randn(2, 3, SIZE, SIZE))
    model.eval()
    info = {"model": name, "model_kwargs": {}, "input_size": SIZE, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "meta": {}}
    if name in CANNOT_EXPORT:
        with pytest.raises(DefectbenchError):
            export_model(model, info, tmp_path, "onnx")
        pytest.xfail(CANNOT_EXPORT[name])
    path = export_model(model, info, tmp_path, "onnx")
    assert path.name == f"{name}-{SIZE}.onnx" and read_metadata(path)["model"] == name
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
    want = (want[0] if isinstance(want, (list, tuple)) else want).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == want.shape == (1, 1, SIZE, SIZE)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    assert want.std() > 0  # a real map, not a constant the graph could fake
