"""Deployment of trained saliency models: export to ONNX and OpenVINO IR, and prediction on those engines.

``export_checkpoint`` / ``export_model`` write one self-describing file (input size, mean/std, model name,
defectbench version and the training run's record are embedded); ``load_predictor`` returns a predictor with the
``SaliencyPredictor`` interface for any engine (``torch``, ``onnxruntime``, ``openvino``). The engines are the
optional ``deploy`` extra (``onnx``, ``onnxruntime``, ``openvino``); importing this package needs none of them.
"""

from defectbench.deploy.engines import ENGINES, ExportedPredictor, load_predictor
from defectbench.deploy.export import FORMATS, export_checkpoint, export_model, read_metadata

__all__ = ["ENGINES", "FORMATS", "ExportedPredictor", "export_checkpoint", "export_model", "load_predictor",
           "read_metadata"]
