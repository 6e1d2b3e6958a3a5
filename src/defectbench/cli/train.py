"""``defectbench train`` and ``defectbench predict``: thin wrappers over :mod:`defectbench.train`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from defectbench.cli.common import (add_data_root, add_device, console, err_console, non_negative_float,
                                    non_negative_int, positive_float, positive_int)
from defectbench.errors import ConfigError

# CLI flag (dest) -> TrainConfig field, for the options a user gives explicitly
_FLAG_FIELDS = {
    "dataset": "dataset", "split": "split", "epochs": "epochs", "batch": "batch", "size": "size",
    "train_sizes": "train_sizes", "seed": "seed",
    "lr": "lr", "ema_decay": "ema_decay", "optimizer": "optimizer", "schedule": "schedule", "weight_decay": "weight_decay",
    "warmup_epochs": "warmup_epochs", "val_fraction": "val_fraction", "select_metric": "select_metric",
    "loss": "loss", "threads": "threads", "limit": "limit", "labels": "labels", "backbone_weights": "backbone_weights",
    "data_root": "data_root", "init_from": "init_from", "amp": "amp", "workers": "workers", "save_every": "save_every",
    "log_every": "log_every",
}


def size_list(text: str) -> tuple[int, ...]:
    """Parse ``--train-sizes``: comma-separated positive multiples of 32."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(v < 32 or v % 32 for v in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated multiples of 32, e.g. 256,320,384")
    return sizes


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``predict`` verbs."""
    p = sub.add_parser("train", help="train a saliency model (resumable; best/last checkpoints and run.json in --out)")
    p.add_argument("--model", required=True, help="registered model name (litenet, edrnet, cpd, f3net, ...)")
    p.add_argument("--dataset", default=None, help="dataset to train on (default sd900)")
    p.add_argument("--split", default=None, help="training split (default train; MT: 1to1-train or 7to3-train)")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch", type=positive_int, default=None)
    p.add_argument("--size", type=positive_int, default=None, help="square input size, divisible by 32 (default 224)")
    p.add_argument("--train-sizes", type=size_list, default=None, metavar="S1,S2,...",
                   help="multi-scale training: each batch at one of these sizes (multiples of 32), e.g. 256,320,384; "
                        "validation and the checkpoint use --size")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, help="run folder (best.pt, last.pt, run.json, train.log)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--config", help="YAML file of training options (keys of TrainConfig); flags override it")
    p.add_argument("--model-args", default=None, help='JSON dict of model keyword arguments, e.g. \'{"variant": 1}\'')
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--ema-decay", type=non_negative_float, default=None,
                   help="exponential moving average of the weights, e.g. 0.99 (default 0: off); best.pt holds the average")
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), default=None)
    p.add_argument("--schedule", choices=("cosine", "poly", "step", "constant", "triangle"), default=None)
    p.add_argument("--weight-decay", type=non_negative_float, default=None)
    p.add_argument("--warmup-epochs", type=non_negative_float, default=None)
    p.add_argument("--loss", default=None, help="loss name (default: the model's paper loss)")
    p.add_argument("--val-fraction", type=float, default=None, help="held-out part of the training split (default 0.1)")
    p.add_argument("--select-metric", choices=("S_alpha", "MAE", "weighted_F"), default=None,
                   help="validation metric that picks best.pt (default S_alpha)")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (fine-tuning, e.g. at a larger --size)")
    p.add_argument("--backbone-weights", default=None, help="local ImageNet weights file of the backbone")
    p.add_argument("--no-pretrained", action="store_true",
                   help="train the backbone from scratch (no ImageNet weights; recorded in run.json)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default 2)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images (smoke tests)")
    p.add_argument("--labels", type=positive_int, default=None,
                   help="train on N labelled images: the class-stratified subset of --seed, nested across N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one log line per epoch only)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default=None,
                   help="CUDA mixed precision (default auto: bf16 on GPUs with native bf16, compute capability >= 8.0; "
                        "else fp16 with a gradient scaler; never on the CPU)")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="loader processes that decode and augment the images (default: 0 on the CPU, min(4, cpus) "
                        "with a GPU); never changes the result")
    p.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                   help="write last.pt every N epochs and after the last (default ceil(epochs/10)); "
                        "--resume continues from the last one written")
    p.add_argument("--log-every", type=positive_int, default=None, metavar="STEPS",
                   help="read the loss on the host (and check it is finite) every STEPS steps (default 50)")
    add_data_root(p)
    add_device(p)
    p.set_defaults(func=run_train, device=None)

    q = sub.add_parser("predict", help="write 8-bit saliency maps (one PNG per image, image's own size)")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint (best.pt) or a file written by `defectbench export` (.onnx, .xml)")
    src.add_argument("--weights", help="weights shipped in the package: sd900 or mt (needs --model)")
    q.add_argument("--model", default=None, help="model name (required with --weights; checked against --checkpoint)")
    inp = q.add_mutually_exclusive_group(required=True)
    inp.add_argument("--input", help="folder of images")
    inp.add_argument("--dataset", help="predict the images of a dataset split instead (with --split)")
    q.add_argument("--split", default="test", help="split of --dataset (default test)")
    q.add_argument("--out", required=True, help="folder for the maps")
    q.add_argument("--batch", type=positive_int, default=8, help="images per forward pass (default 8)")
    q.add_argument("--engine", default="torch", choices=("torch", "onnxruntime", "openvino"),
                   help="torch, or an exported model on onnxruntime/openvino (a .pt is exported once and cached)")
    q.add_argument("--size", type=positive_int, default=None,
                   help="input size (default: the checkpoint's or exported file's)")
    q.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    q.add_argument("--into-existing", action="store_true",
                   help="write maps into a folder that holds other files (never over a file this command did not write)")
    q.add_argument("--optimize", action="store_true",
                   help="CPU: run an exported copy on OpenVINO (else ONNX Runtime), exported once and cached; about 2.4x "
                        "faster than torch batch 1 (needs the deploy extra)")
    add_data_root(q)
    add_device(q)
    q.set_defaults(func=run_predict)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from defectbench.train.config import load_config_file

    out: dict[str, Any] = load_config_file(args.config) if args.config else {}
    for flag, name in _FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[name] = value
    if args.model_args:
        try:
            kwargs = json.loads(args.model_args)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--model-args is not valid JSON ({exc.msg})") from None
        if not isinstance(kwargs, dict):
            raise ConfigError("--model-args must be a JSON object, e.g. '{\"variant\": 1}'")
        out["model_kwargs"] = kwargs
    if args.no_pretrained:
        out["pretrained"] = False
    if args.device is not None:
        out["device"] = args.device
    return out


def _recorded_config(path: Any) -> dict[str, Any]:
    """Return the training options recorded in a run's ``run.json`` (empty when unreadable)."""
    try:
        config = json.loads(path.read_text()).get("config")
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in config.items() if k != "model"} if isinstance(config, dict) else {}


def run_train(args: argparse.Namespace) -> int:
    """Train (or resume) and print where the checkpoints are."""
    from pathlib import Path

    from defectbench.train import TrainConfig, train_model

    overrides = _overrides(args)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir() or not out.exists() and any(a.exists() and not a.is_dir() for a in out.parents):
        from defectbench.paths import prepare_output_dir

        prepare_output_dir(out, "--out run folder")  # raises the one-line reason
    recorded = out / "run.json"
    if args.resume and recorded.is_file():
        # resume with the run's own options; flags given on the command line still apply (and are checked)
        overrides = {**_recorded_config(recorded), **overrides}
    cfg = TrainConfig.for_model(args.model, overrides, source=args.config or "command line")
    if not cfg.pretrained:
        err_console.print("note: --no-pretrained: the backbone starts from random weights (recorded in run.json)")
    log_path = Path(args.out) / "train.log"

    def log(msg: str) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)  # the trainer made (and locked) it; not before
        console.print(msg, highlight=False)
        with open(log_path, "a") as fh:
            fh.write(msg + "\n")

    result = train_model(cfg, out_dir=args.out, resume=args.resume, progress=not args.no_progress, log=log,
                         console=console)
    best = ", ".join(f"{k} {v:.4f}" for k, v in result.best_scores.items())
    console.print(f"best epoch {result.best_epoch} (validation {best}); checkpoints: {result.best_checkpoint}, "
                  f"{result.last_checkpoint}", highlight=False)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Predict maps for a folder or a dataset split (inputs and the output folder are checked before a model loads)."""
    import torch

    from defectbench.errors import DefectbenchError
    from defectbench.runtime import resolve_device
    from defectbench.methods.saliency.predictor import check_maps_folder, input_images, predict_paths

    if args.weights and not args.model:
        raise DefectbenchError("--weights needs --model (e.g. --model litenet --weights sd900)")
    if args.dataset:
        from defectbench.data import load_dataset

        paths = [s.image_path for s in load_dataset(args.dataset, args.data_root).split(args.split)]
    else:
        paths = input_images(args.input)
    check_maps_folder(args.out, paths, args.into_existing)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    from defectbench.deploy import load_predictor

    predictor = load_predictor(args.checkpoint, args.engine, model=args.model, weights=args.weights, size=args.size,
                               threads=args.threads, device=device, optimize=args.optimize)
    written = predict_paths(predictor, paths, args.out, batch=args.batch, into_existing=args.into_existing)
    console.print(f"wrote {len(written)} maps to {args.out} ({predictor.name}, input size {predictor.size})", highlight=False)
    return 0
