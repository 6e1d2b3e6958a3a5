"""INT8 post-training quantisation of an OpenVINO export with NNCF, calibrated on training images.

The fp32 OpenVINO IR written by :func:`defectbench.deploy.export.export_model` is quantised by
``nncf.quantize`` (NNCF's default preset: symmetric 8-bit weights and activations, per-channel weights, fast
bias correction) on images of the model's *training* split, prepared exactly as prediction prepares them (resize,
ImageNet normalisation). The result is another self-describing IR: the same metadata plus ``precision: int8`` and
where the calibration images came from. NNCF is the optional ``int8`` extra (``pip install 'defectbench[int8]'``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.deploy.export import METADATA_KEY, metadata_json, quiet_cuda_home_warning, read_metadata
from defectbench.errors import ExportError

DEFAULT_CALIBRATION_IMAGES = 300  # NNCF's default subset size


def _require_nncf() -> Any:
    """Import NNCF, or raise one clear line naming the extra."""
    quiet_cuda_home_warning()
    try:
        import nncf
    except ImportError:
        raise ExportError("INT8 quantisation needs NNCF, which is not installed; pip install 'defectbench[int8]'") from None
    return nncf


def calibration_batches(images: Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float],
                        limit: int = DEFAULT_CALIBRATION_IMAGES) -> list[np.ndarray]:
    """Return up to ``limit`` evenly spaced images as normalised ``1 x 3 x S x S`` float32 batches."""
    from defectbench.methods.saliency.predictor import prepare_batch

    if not images:
        raise ExportError("INT8 calibration needs at least one image; the calibration split is empty")
    return [prepare_batch([images[i]], size, mean, std).numpy() for i in evenly_spaced(len(images), limit)]


def evenly_spaced(n: int, limit: int) -> list[int]:
    """Return up to ``limit`` indices spread evenly over ``range(n)`` (first and last included), ascending."""
    return np.unique(np.linspace(0, n - 1, num=min(limit, n)).round().astype(int)).tolist() if n > 0 else []


def _int8_path(source: Path, out: str | Path) -> Path:
    """Return ``out`` when it is an ``.xml`` file, else ``<source stem>-int8.xml`` inside the folder ``out``."""
    out = Path(out).expanduser()
    path = out if out.suffix.lower() == ".xml" else out / f"{source.stem}-int8.xml"
    if out.suffix.lower() in (".onnx", ".pt", ".bin") or (out.is_file() and out.suffix.lower() != ".xml"):
        raise ExportError(f"--out {out}: an INT8 export is written as *.xml; give a folder or a *.xml file name")
    if path.resolve() == source.resolve():
        raise ExportError(f"--out {out}: would overwrite the fp32 export it is made from; choose another name")
    return path


def quantize_openvino(source: str | Path, out: str | Path, images: Sequence[np.ndarray],
                      calibration: dict[str, Any] | None = None, limit: int = DEFAULT_CALIBRATION_IMAGES) -> Path:
    """Quantise the fp32 OpenVINO export ``source`` to INT8 on ``images``; write and return the new ``.xml``.

    ``calibration`` (e.g. ``{"dataset": "sd900", "split": "train"}``) is recorded in the metadata with the number
    of images used. ``out`` is a folder (default name ``<model>-<tag>-<size>-int8.xml``) or an ``.xml`` file.
    """
    source = Path(source).expanduser()
    meta = read_metadata(source)
    if source.suffix.lower() != ".xml":
        raise ExportError(f"{source}: INT8 quantisation takes an OpenVINO export (.xml); export with --format openvino")
    if meta.get("precision", "fp32") != "fp32":
        raise ExportError(f"{source}: already quantised ({meta['precision']}); quantise the fp32 export")
    nncf = _require_nncf()
    import openvino as ov

    batches = calibration_batches(images, int(meta["input_size"]), meta["mean"], meta["std"], limit)
    model = ov.Core().read_model(str(source))
    quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))
    meta = {**meta, "precision": "int8",
            "calibration": {**(calibration or {}), "images": len(batches), "tool": f"nncf {nncf.__version__}"}}
    quantized.set_rt_info(metadata_json(meta), [METADATA_KEY])
    path = _int8_path(source, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        staged.with_suffix(".bin").replace(path.with_suffix(".bin"))
        staged.replace(path)  # the .xml last, as for fp32 exports
    return path
