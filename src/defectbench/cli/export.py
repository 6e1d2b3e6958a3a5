"""``defectbench export``: write a trained saliency model as ONNX or OpenVINO IR (or a light PyTorch weights file)."""

from __future__ import annotations

import argparse

from defectbench.cli.common import add_data_root, console, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` verb."""
    p = sub.add_parser("export", help="export a trained model to ONNX / OpenVINO IR (metadata embedded) or fp16 weights")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint written by `defectbench train` (best.pt)")
    src.add_argument("--weights", help="weights shipped in the package: sd900 or mt (needs --model)")
    p.add_argument("--model", default=None, help="model name (required with --weights; checked against --checkpoint)")
    p.add_argument("--format", default="onnx", choices=("onnx", "openvino", "pt"),
                   help="onnx (.onnx), openvino (.xml + .bin, fp32) or pt (weights only, no training state)")
    p.add_argument("--out", required=True,
                   help="folder (a default file name is chosen) or the file to write (.onnx, .xml, .pt)")
    p.add_argument("--size", type=int, default=None, help="square input size, multiple of 32 (default: the checkpoint's)")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: static batch 1)")
    p.add_argument("--exporter", default="dynamo", choices=("dynamo", "torchscript"),
                   help="torch.onnx exporter: dynamo (torch.export-based, default) or the deprecated torchscript one")
    p.add_argument("--fp32", action="store_true", help="--format pt: keep fp32 weights (default fp16, half the size)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--int8", action="store_true",
                   help="--format openvino: INT8 post-training quantisation (NNCF), calibrated on the training split")
    p.add_argument("--calibration-dataset", default=None,
                   help="--int8: dataset of the calibration images (default: the one the checkpoint was trained on)")
    p.add_argument("--calibration-split", default=None,
                   help="--int8: its split (default: the checkpoint's training split; never use a test split)")
    p.add_argument("--calibration-images", type=positive_int, default=300,
                   help="--int8: at most this many images, evenly spaced over the split (default 300)")
    add_data_root(p)
    p.set_defaults(func=run_export)


def _checkpoint_path(args: argparse.Namespace) -> tuple[str, str | None]:
    """Return ``(checkpoint path, file-name tag)`` for ``--checkpoint`` or shipped ``--weights``."""
    from defectbench.errors import DefectbenchError
    from defectbench.methods.saliency.checkpoint import shipped_weights_path

    if args.weights:
        if not args.model:
            raise DefectbenchError("--weights needs --model (e.g. --model litenet --weights sd900)")
        return str(shipped_weights_path(args.model, args.weights)), args.weights
    return args.checkpoint, None


def _export_pt(checkpoint: str, args: argparse.Namespace) -> int:
    """Write a weights-only ``.pt`` (fp16 unless ``--fp32``)."""
    from pathlib import Path

    from defectbench.errors import DefectbenchError
    from defectbench.methods.saliency.checkpoint import export_weights, read_checkpoint

    if args.size is not None or args.dynamic_batch:
        raise DefectbenchError("--size and --dynamic-batch apply to --format onnx/openvino, not pt")
    out = Path(args.out)
    if out.suffix != ".pt":
        out = out / f"{read_checkpoint(checkpoint, args.model)['model']}.pt"
    path = export_weights(checkpoint, out, half=not args.fp32)
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB, {'fp32' if args.fp32 else 'fp16'})", highlight=False)
    return 0


def _calibration_images(checkpoint: str, args: argparse.Namespace) -> tuple[list, dict[str, str]]:
    """Return the calibration images and where they came from (the checkpoint's training split by default)."""
    from defectbench.data import load_dataset
    from defectbench.errors import DefectbenchError
    from defectbench.methods.saliency.checkpoint import read_checkpoint

    meta = read_checkpoint(checkpoint, args.model).get("meta") or {}
    dataset = args.calibration_dataset or meta.get("dataset")
    split = args.calibration_split or (meta.get("split") if dataset == meta.get("dataset") else None)
    if not dataset or not split:
        raise DefectbenchError(f"{checkpoint}: no training dataset/split recorded; pass --calibration-dataset and "
                               "--calibration-split (a training split)")
    if "test" in split:
        raise DefectbenchError(f"--calibration-split {split}: calibrating on a test split would tune the model to the "
                               "images it is scored on; use a training split")
    from defectbench.deploy.quantize import evenly_spaced

    samples = load_dataset(dataset, args.data_root).split(split)
    picks = evenly_spaced(len(samples), args.calibration_images)  # decode only the images calibration uses
    console.print(f"INT8: calibrating on {len(picks)} of {len(samples)} images of {dataset}/{split}, evenly spaced",
                  highlight=False)
    return [samples[i].image() for i in picks], {"dataset": dataset, "split": split}


def _export_int8(checkpoint: str, tag: str | None, args: argparse.Namespace) -> int:
    """Export fp32 OpenVINO IR to a temporary folder, quantise it to INT8 into ``--out``."""
    import tempfile

    from defectbench.deploy.export import export_checkpoint
    from defectbench.deploy.quantize import quantize_openvino
    from defectbench.errors import DefectbenchError

    if args.format != "openvino":
        raise DefectbenchError(f"--int8 needs --format openvino (not {args.format})")
    images, where = _calibration_images(checkpoint, args)
    with tempfile.TemporaryDirectory(prefix="defectbench-int8-") as tmp:
        fp32 = export_checkpoint(checkpoint, tmp, "openvino", size=args.size, dynamic_batch=args.dynamic_batch,
                                 expected_model=args.model, exporter=args.exporter, tag=tag)
        path = quantize_openvino(fp32, args.out, images, where, limit=args.calibration_images)
    total = path.stat().st_size + path.with_suffix(".bin").stat().st_size
    console.print(f"wrote {path} ({total / 2**20:.1f} MB, INT8)", highlight=False)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    import torch

    from defectbench.deploy.export import export_checkpoint, read_metadata

    torch.set_num_threads(args.threads)
    checkpoint, tag = _checkpoint_path(args)
    if args.format == "pt":
        return _export_pt(checkpoint, args)
    if args.int8:
        return _export_int8(checkpoint, tag, args)
    path = export_checkpoint(checkpoint, args.out, args.format, size=args.size, dynamic_batch=args.dynamic_batch,
                             expected_model=args.model, exporter=args.exporter, tag=tag)
    meta = read_metadata(path)
    total = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if args.format == "openvino" else 0)
    batch = "dynamic batch" if meta["dynamic_batch"] else "batch 1"
    console.print(f"wrote {path} ({total / 2**20:.1f} MB; {meta['model']}, input {meta['input_size']}, {batch}, "
                  f"checked against PyTorch)", highlight=False)
    return 0
