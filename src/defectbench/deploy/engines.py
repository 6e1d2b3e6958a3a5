"""Prediction on exported models (ONNX Runtime, OpenVINO) with the interface of ``SaliencyPredictor``.

``ExportedPredictor.predict(image)`` returns the same float map in [0, 1] at the image's size as the PyTorch
predictor: the same resize and normalisation go in and the same bilinear upsampling and sigmoid come out; only
the network runs on another engine. ``load_predictor`` is the one factory the CLI calls for every engine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from defectbench import __version__
from defectbench.deploy.export import (
    ExportError,
    check_size,
    export_checkpoint,
    read_metadata,
    require,
    sha256_file,
)

ENGINES = ("torch", "onnxruntime", "openvino")
FAST_ENGINES = ("openvino", "onnxruntime")  # fastest first (benchmarks/export_speed.py)
EXPORTED_SUFFIXES = (".onnx", ".xml")
CACHE_ENV = "DEFECTBENCH_CACHE"


class _OnnxRuntimeNetwork:
    """An ONNX file in an ONNX Runtime CPU session: normalised batch in, logits out."""

    def __init__(self, path: Path, threads: int | None) -> None:
        if path.suffix.lower() != ".onnx":
            raise ExportError(f"{path}: onnxruntime runs .onnx files, not OpenVINO IR; use --engine openvino "
                              "or export with --format onnx")
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = list(self.session.get_inputs()[0].shape)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Return ``B x 1 x S x S`` float32 logits."""
        return self.session.run(None, {self.input_name: batch})[0]


class _OpenVinoNetwork:
    """An OpenVINO IR (or ONNX) file compiled for the CPU at fp32 (OpenVINO's default may be bf16 on new CPUs)."""

    def __init__(self, path: Path, threads: int | None, precision: str = "f32") -> None:
        ov = require("openvino")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        model = core.read_model(str(path))
        self.input_shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Return ``B x 1 x S x S`` float32 logits."""
        self.request.infer({0: batch})
        return np.array(self.request.get_output_tensor(0).data, copy=True)


class ExportedPredictor:
    """An exported saliency model on ONNX Runtime or OpenVINO: ``predict(image) -> float map`` like ``SaliencyPredictor``."""

    oracle = False

    def __init__(self, path: str | Path, engine: str = "onnxruntime", threads: int | None = None,
                 expected_size: int | None = None, expected_model: str | None = None, precision: str = "f32") -> None:
        """Load ``path`` (``.onnx`` or OpenVINO ``.xml``) on ``engine``; ``precision`` (OpenVINO only): f32 or bf16."""
        if engine not in ("onnxruntime", "openvino"):
            raise ExportError(f"engine {engine!r} does not run exported files; use onnxruntime or openvino")
        self.path = Path(path).expanduser()
        self.metadata = read_metadata(self.path)
        check_compatible(self.metadata, self.path, expected_size, expected_model)
        self.engine, self.device = engine, "cpu"
        self.name = self.metadata["model"]
        self.size = int(self.metadata["input_size"])
        self.mean, self.std = tuple(self.metadata["mean"]), tuple(self.metadata["std"])
        self.dynamic_batch = bool(self.metadata["dynamic_batch"])
        self.network = (_OnnxRuntimeNetwork(self.path, threads) if engine == "onnxruntime"
                        else _OpenVinoNetwork(self.path, threads, precision))
        graph_size = self.network.input_shape[-2:]
        if any(d is not None and not isinstance(d, str) and d != self.size for d in graph_size):
            raise ExportError(f"{self.path}: its graph takes {graph_size} inputs but its metadata says {self.size}; "
                              "the file was edited — export it again")

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a normalised ``B x 3 x S x S`` float32 batch (one image at a time when static batch 1)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.dynamic_batch or len(batch) == 1:
            return self.network(batch)
        return np.concatenate([self.network(batch[i:i + 1]) for i in range(len(batch))])

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return float32 maps in [0, 1], each of its image's size."""
        import torch

        from defectbench.methods.saliency.predictor import logits_to_maps, prepare_batch

        batch = prepare_batch(images, self.size, self.mean, self.std).numpy()
        return logits_to_maps(torch.from_numpy(self.logits(batch)), [img.shape[:2] for img in images])

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """Return the saliency map of one image: float32 ``HxW`` in [0, 1] (``gt`` is never read)."""
        return self.predict_batch([image])[0]

    def record(self) -> dict[str, Any]:
        """What the model is, which engine runs it and where the file and its weights came from."""
        meta = self.metadata
        return {"type": "sod", "model": self.name, "input_size": self.size, "mean": list(self.mean),
                "std": list(self.std), "engine": self.engine, "exported_file": str(self.path),
                "dynamic_batch": self.dynamic_batch, "exporter": meta.get("exporter"),
                "precision": meta.get("precision", "fp32"),
                **({"calibration": meta["calibration"]} if "calibration" in meta else {}),
                "checkpoint": (meta.get("source") or {}).get("checkpoint"),
                "training": (meta.get("record") or {}).get("config")}


def check_compatible(meta: dict[str, Any], path: Path, size: int | None = None, model: str | None = None) -> None:
    """Raise one clear :class:`ExportError` if an export is from another defectbench version, size or model."""
    if meta.get("defectbench_version") != __version__:
        raise ExportError(f"{path}: exported by defectbench {meta.get('defectbench_version')}, this is {__version__}; "
                          "export it again with this version (`defectbench export`)")
    if size is not None and int(size) != int(meta["input_size"]):
        raise ExportError(f"{path}: exported for input size {meta['input_size']}, not {size}; export again with "
                          f"--size {size} or drop --size")
    if model is not None and model != meta["model"]:
        raise ExportError(f"{path}: holds model {meta['model']!r}, not {model!r}; pass the right --model or file")


def default_cache_dir() -> Path:
    """Return where exports made on the fly are kept: ``$DEFECTBENCH_CACHE/exported`` or ``~/.cache/defectbench/exported``."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "defectbench"
    return root / "exported"


def cached_export(checkpoint: Path, engine: str, size: int | None, expected_model: str | None,
                  cache_dir: str | Path | None = None) -> Path:
    """Return an export of ``checkpoint`` for ``engine``, made once and reused (keyed by the file's sha256 and size)."""
    import torch

    fmt = "onnx" if engine == "onnxruntime" else "openvino"
    key = f"{sha256_file(checkpoint)[:16]}-{size or 'trained'}-{__version__}-torch{torch.__version__}"
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = folder / f"{key}{'.onnx' if fmt == 'onnx' else '.xml'}"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        export_checkpoint(checkpoint, path, fmt, size=size, dynamic_batch=True, expected_model=expected_model)
    return path


def fastest_engine() -> str:
    """Return the fastest installed CPU engine for exported models (OpenVINO, else ONNX Runtime)."""
    import importlib.util

    for engine in FAST_ENGINES:
        if importlib.util.find_spec(engine) is not None:
            return engine
    raise ExportError("the fast CPU path (--optimize) runs an exported copy on OpenVINO or ONNX Runtime, and neither "
                      "is installed; install the deploy extra: pip install -e '.[deploy]' (or drop --optimize)")


def load_predictor(source: str | Path | None = None, engine: str = "torch", *, model: str | None = None,
                   weights: str | None = None, size: int | None = None, threads: int | None = None,
                   device: str = "cpu", optimize: bool = False, cache_dir: str | Path | None = None) -> Any:
    """Return a predictor (``predict``, ``predict_batch``, ``name``, ``size``) for any engine.

    ``source`` is a checkpoint (``.pt``) or an exported ``.onnx`` / ``.xml`` file; or give ``model`` and
    shipped ``weights`` (e.g. ``litenet``, ``sd900``). A checkpoint run on ``onnxruntime`` / ``openvino`` is
    exported once (dynamic batch) into ``cache_dir`` and reused. ``size`` overrides the checkpoint's input size
    (torch, or a new export) and must match an exported file's. ``optimize`` (CPU, engine ``torch``): run an
    exported copy on the fastest installed engine instead (:func:`fastest_engine`), about 2.4x eager batch 1;
    ``device`` applies to torch only.
    """
    from defectbench.methods.saliency.checkpoint import shipped_weights_path

    if engine not in ENGINES:
        raise ExportError(f"unknown engine {engine!r}; use one of: {', '.join(ENGINES)}")
    if optimize and engine == "torch" and device == "cpu":
        engine = fastest_engine()
    if source is None:
        if not (model and weights):
            raise ExportError("give a checkpoint or exported file, or --model with shipped --weights (e.g. litenet sd900)")
        source = shipped_weights_path(model, weights)
    source = Path(source).expanduser()
    if source.suffix.lower() in EXPORTED_SUFFIXES:
        if engine == "torch":
            raise ExportError(f"{source}: an exported model runs on --engine onnxruntime or openvino, not torch "
                              "(torch runs the checkpoint it was exported from)")
        return ExportedPredictor(source, engine, threads=threads, expected_size=size, expected_model=model)
    if engine == "torch":
        return _torch_predictor(source, model, size, device)
    if not source.is_file():
        from defectbench.errors import CheckpointError

        raise CheckpointError(f"{source}: checkpoint file not found")
    path = cached_export(source, engine, size, model, cache_dir)
    return ExportedPredictor(path, engine, threads=threads, expected_size=size, expected_model=model)


def _torch_predictor(checkpoint: Path, model: str | None, size: int | None, device: str) -> Any:
    """Return a ``SaliencyPredictor`` of a checkpoint, at ``size`` when given."""
    from defectbench.methods.saliency.checkpoint import load_trained
    from defectbench.methods.saliency.predictor import SaliencyPredictor

    network, info = load_trained(checkpoint, model)
    size = info["input_size"] if size is None else check_size(size, info["model"])
    return SaliencyPredictor(network, size, info["mean"], info["std"], name=info["model"], device=device)
