"""Export a trained saliency model to ONNX or OpenVINO IR: one file that carries everything prediction needs.

The network is exported as it runs in eval mode (``B x 3 x S x S`` ImageNet-normalised input, ``B x 1 x S x S``
logits); resizing, normalisation and the sigmoid stay in Python, shared with the PyTorch predictor, so that every
engine sees the same tensors. The graph comes from ``torch.onnx.export`` (the ``torch.export``-based exporter by
default; the deprecated TorchScript one on request) and OpenVINO IR is converted from that ONNX graph, so both
engines run the same operators. Every export is checked on a fixed input against PyTorch before it is written.

Embedded metadata (ONNX ``metadata_props`` / OpenVINO ``rt_info``, key ``defectbench``, one JSON string): format
and version, defectbench and torch versions, model name and kwargs, input size, mean/std, batch mode, exporter,
opset, where the weights came from (file name and sha256) and the training run's record (the checkpoint's meta).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from defectbench import __version__
from defectbench.atomic import atomic_write_bytes

from defectbench.errors import ExportError

FORMATS = ("onnx", "openvino")
EXPORTERS = ("dynamo", "torchscript")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}
METADATA_KEY = "defectbench"
METADATA_FORMAT = "defectbench-exported-saliency"
METADATA_VERSION = 1
OPSET = 18
MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 32, 4096, 32
VERIFY_TOLERANCE = 1e-3  # on logits, relative to max(1, |logit|): catches a wrong graph, not float rounding
INSTALL_HINT = "pip install 'defectbench[deploy]' (onnx, onnxruntime, openvino)"


def quiet_cuda_home_warning() -> None:
    """Silence torch's "No CUDA runtime is found" log line, which NNCF (imported by OpenVINO when present) triggers."""
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    if log.level == logging.NOTSET:
        log.setLevel(logging.ERROR)


def require(module: str) -> Any:
    """Import an optional engine package, or raise one clear :class:`ExportError` naming the extra to install."""
    import importlib

    quiet_cuda_home_warning()
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{module} is not installed; {INSTALL_HINT}") from None


def check_size(size: int, model_name: str) -> int:
    """Return ``size`` if a registered saliency model can take it (a multiple of 32 in [32, 4096]), else raise."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ExportError(f"input size {size!r} for {model_name!r} is not an integer")
    size = int(size)
    if size % SIZE_MULTIPLE or not MIN_SIZE <= size <= MAX_SIZE:
        raise ExportError(f"input size {size} cannot be taken by {model_name!r}: saliency models need a multiple of "
                          f"{SIZE_MULTIPLE} between {MIN_SIZE} and {MAX_SIZE} (e.g. --size {max(MIN_SIZE, size // 32 * 32)})")
    return size


def default_file_name(model_name: str, size: int, fmt: str, dynamic_batch: bool, tag: str | None = None) -> str:
    """Return the default file name of an export, e.g. ``litenet-sd900-320.onnx`` or ``litenet-320-dynamic.xml``."""
    parts = [model_name, *([tag] if tag else []), str(size), *(["dynamic"] if dynamic_batch else [])]
    return "-".join(parts) + SUFFIXES[fmt]


def output_path(out: str | Path, model_name: str, size: int, fmt: str, dynamic_batch: bool, tag: str | None = None) -> Path:
    """Return the file to write: ``out`` itself when it ends in the format's suffix, else a default name inside it."""
    out = Path(out).expanduser()
    if out.suffix.lower() == SUFFIXES[fmt]:
        return out
    if out.suffix.lower() in {s for s in SUFFIXES.values()} or out.is_file():
        raise ExportError(f"--out {out}: a {fmt} export is written as *{SUFFIXES[fmt]}; give a folder or a "
                          f"*{SUFFIXES[fmt]} file name")
    return out / default_file_name(model_name, size, fmt, dynamic_batch, tag)


def example_input(size: int, batch: int = 1) -> Any:
    """Return a fixed pseudo-image ``torch.Tensor`` batch (normalised-range values) to trace and verify an export."""
    import torch

    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, size, size, generator=gen)


def main_logits(output: Any) -> Any:
    """Return the main logits of a model output (eval forward returns a tensor; some return a list)."""
    return output[0] if isinstance(output, (list, tuple)) else output


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata_json(meta: dict[str, Any]) -> str:
    """Return the metadata as one JSON string (arrays and paths in a training record become plain values)."""
    def plain(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)

    return json.dumps(meta, default=plain, sort_keys=True)


def build_metadata(info: dict[str, Any], size: int, fmt: str, dynamic_batch: bool, exporter: str,
                   source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the metadata embedded in an export (see the module docstring)."""
    import torch

    return {
        "format": METADATA_FORMAT, "format_version": METADATA_VERSION, "defectbench_version": __version__,
        "engine_format": fmt, "model": info["model"], "model_kwargs": dict(info.get("model_kwargs") or {}),
        "input_size": int(size), "trained_input_size": int(info.get("input_size", size)),
        "mean": [float(v) for v in info["mean"]], "std": [float(v) for v in info["std"]],
        "dynamic_batch": bool(dynamic_batch), "input_name": "image", "output_name": "logits",
        "exporter": exporter, "opset": OPSET, "torch_version": torch.__version__,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), "source": dict(source or {}),
        "record": info.get("meta") or {},
    }


def _torch_onnx_export(model: Any, x: Any, path: Path, dynamic_batch: bool, exporter: str) -> None:
    """Write the raw ONNX graph of ``model`` traced on ``x`` (quietly: the exporter's progress lines are dropped)."""
    import torch

    kwargs: dict[str, Any] = {"input_names": ["image"], "output_names": ["logits"], "opset_version": OPSET}
    if exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=False, optimize=True, verbose=False)
        if dynamic_batch:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    else:
        kwargs.update(dynamo=False, do_constant_folding=True)
        if dynamic_batch:
            kwargs["dynamic_axes"] = {"image": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), **kwargs)


def _check_close(name: str, got: np.ndarray, want: np.ndarray) -> float:
    """Return the largest absolute difference of two logit arrays, raising if the export is wrong."""
    if got.shape != want.shape:
        raise ExportError(f"{name}: exported graph gives logits of shape {got.shape}, PyTorch {want.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    if not diff <= VERIFY_TOLERANCE * max(1.0, float(np.max(np.abs(want)))):
        raise ExportError(f"{name}: exported graph differs from PyTorch (max |logit difference| {diff:.3g}); "
                          "this model does not export faithfully — use --engine torch")
    return diff


def _export_onnx_verified(model: Any, info: dict[str, Any], size: int, dynamic_batch: bool, exporter: str,
                          work: Path) -> tuple[Path, Any, np.ndarray]:
    """Export to ``work`` and check it with ONNX Runtime; return ``(raw path, example input, PyTorch logits)``."""
    import torch

    name = info["model"]
    x = example_input(size, batch=2 if dynamic_batch else 1)
    model = model.float().cpu().eval()
    try:
        with torch.no_grad():
            want = main_logits(model(x)).numpy()
    except Exception as exc:  # noqa: BLE001 - any failure here means the model cannot take this input
        raise ExportError(f"model {name!r} cannot take input size {size} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    if want.shape != (x.shape[0], 1, size, size):
        raise ExportError(f"model {name!r} gives logits of shape {tuple(want.shape)} at input size {size}; "
                          f"prediction needs B x 1 x {size} x {size}")
    raw = work / "raw.onnx"
    try:
        _torch_onnx_export(model, x, raw, dynamic_batch, exporter)
    except Exception as exc:  # noqa: BLE001 - exporter failures are many and deep; report the first line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        raise ExportError(f"model {name!r} could not be exported to ONNX with the {exporter} exporter "
                          f"({type(exc).__name__}: {first}); try --exporter {other}") from None
    ort = require("onnxruntime")
    session = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    _check_close(f"{name} (onnxruntime)", session.run(None, {session.get_inputs()[0].name: x.numpy()})[0], want)
    return raw, x, want


def export_model(model: Any, info: dict[str, Any], out: str | Path, fmt: str = "onnx", size: int | None = None,
                 dynamic_batch: bool = False, exporter: str = "dynamo", source: dict[str, Any] | None = None,
                 tag: str | None = None) -> Path:
    """Export an eval-mode model with its checkpoint ``info`` (name, kwargs, input_size, mean, std, meta); return the file.

    ``out`` is a folder (a default file name is chosen) or a ``.onnx`` / ``.xml`` file. The export is static
    batch 1 unless ``dynamic_batch``. ``size`` defaults to the checkpoint's input size.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; use one of: {', '.join(EXPORTERS)}")
    size = check_size(info["input_size"] if size is None else size, info["model"])
    onnx = require("onnx")
    path = output_path(out, info["model"], size, fmt, dynamic_batch, tag)
    meta = build_metadata(info, size, fmt, dynamic_batch, exporter, source)
    with tempfile.TemporaryDirectory(prefix="defectbench-export-") as tmp:
        raw, x, want = _export_onnx_verified(model, info, size, dynamic_batch, exporter, Path(tmp))
        if fmt == "onnx":
            proto = onnx.load(str(raw))
            del proto.metadata_props[:]
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, metadata_json(meta)
            proto.doc_string = f"defectbench {__version__}: {info['model']} saliency logits, input {size}x{size}"
            onnx.checker.check_model(proto)
            atomic_write_bytes(path, proto.SerializeToString())
        else:
            _write_openvino(raw, meta, path, x.numpy(), want)
    return path


def _write_openvino(onnx_path: Path, meta: dict[str, Any], path: Path, x: np.ndarray, want: np.ndarray) -> None:
    """Convert a checked ONNX graph to OpenVINO IR (fp32 weights), check it, and write ``.xml`` + ``.bin``."""
    ov = require("openvino")
    model = ov.convert_model(str(onnx_path))
    model.set_rt_info(metadata_json(meta), [METADATA_KEY])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    _check_close(f"{meta['model']} (openvino)", compiled(x)[0], want)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        staged.with_suffix(".bin").replace(path.with_suffix(".bin"))
        staged.replace(path)  # the .xml last: a reader finds either the old pair's xml or the new complete pair


def onnx_to_openvino(onnx_path: str | Path, out: str | Path) -> Path:
    """Convert a defectbench ONNX export to OpenVINO IR with the same metadata (checked against ONNX Runtime)."""
    onnx_path = Path(onnx_path).expanduser()
    meta = {**read_metadata(onnx_path), "engine_format": "openvino", "converted_from": onnx_path.name}
    size, dynamic = int(meta["input_size"]), bool(meta["dynamic_batch"])
    path = output_path(out, meta["model"], size, "openvino", dynamic)
    x = example_input(size, batch=2 if dynamic else 1).numpy()
    session = require("onnxruntime").InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    _write_openvino(onnx_path, meta, path, x, want)
    return path


def export_checkpoint(checkpoint: str | Path, out: str | Path, fmt: str = "onnx", size: int | None = None,
                      dynamic_batch: bool = False, expected_model: str | None = None, exporter: str = "dynamo",
                      tag: str | None = None) -> Path:
    """Export a checkpoint written by ``defectbench train`` (or shipped weights) to ``fmt``; return the file written."""
    from defectbench.methods.saliency.checkpoint import load_trained

    model, info = load_trained(checkpoint, expected_model)
    source = {"checkpoint": Path(checkpoint).name, "sha256": sha256_file(checkpoint)}
    return export_model(model, info, out, fmt, size, dynamic_batch, exporter, source, tag)


def _onnx_metadata(path: Path) -> dict[str, str]:
    onnx = require("onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ExportError(f"{path}: not a readable ONNX file ({type(exc).__name__}); export it again") from None
    return {p.key: p.value for p in proto.metadata_props}


def _openvino_metadata(path: Path) -> dict[str, str]:
    ov = require("openvino")
    if not path.with_suffix(".bin").is_file():
        raise ExportError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing beside it; export it again")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ExportError(f"{path}: not a readable OpenVINO IR file ({type(exc).__name__}); export it again") from None
    if not model.has_rt_info([METADATA_KEY]):
        return {}
    return {METADATA_KEY: model.get_rt_info([METADATA_KEY]).astype(str)}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Return the defectbench metadata of an exported ``.onnx`` or ``.xml`` file; raise if missing, foreign or newer."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"{path}: exported model file not found")
    suffix = path.suffix.lower()
    if suffix not in (".onnx", ".xml"):
        raise ExportError(f"{path}: not an exported model (.onnx or OpenVINO .xml)")
    props = _onnx_metadata(path) if suffix == ".onnx" else _openvino_metadata(path)
    try:
        meta = json.loads(props[METADATA_KEY])
    except (KeyError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
        raise ExportError(f"{path}: not exported by defectbench (no {METADATA_KEY!r} metadata: input size, mean/std "
                          "unknown); export it with `defectbench export`")
    if int(meta.get("format_version", 0)) > METADATA_VERSION:
        raise ExportError(f"{path}: written by a newer defectbench ({meta.get('defectbench_version')}, export format "
                          f"{meta['format_version']}); upgrade defectbench or export again with this one")
    return meta
