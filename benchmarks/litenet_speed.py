"""litenet speed: frames per second at batch 1 on this CPU, against EDRNet (ResNet-34) measured in the same run.

Every network runs with the same thread count (default 2) on a fixed ``1 x 3 x S x S`` input (litenet at the
input size stored with its weights, EDRNet at 224), both as eager PyTorch (``torch.inference_mode``) and on the
fast CPU path, ``--optimize``: an exported copy (static batch 1, fp32) on the fastest installed engine,
:func:`defectbench.deploy.engines.fastest_engine` (OpenVINO, else ONNX Runtime). Timing rounds alternate between
the networks so that load from other processes hits all alike; the median round is reported. Also printed:
parameters, fp32 size, and the end-to-end rate of ``load_predictor(..., optimize=True).predict`` on a 200 x 200
grayscale image (resize, network, upsample) for each litenet.

``--checkpoint FILE`` adds a candidate litenet (e.g. a new training's ``best.pt``) beside the shipped one, so
that "at least 0.8x the shipped model" is measured in one run.

    .venv/bin/python benchmarks/litenet_speed.py [--weights sd900] [--checkpoint best.pt] [--threads 2]
        [--rounds 7] [--iters 20]

The last line is ``speedup: X`` = litenet ``--optimize`` FPS / EDRNet ``--optimize`` FPS (EDRNet: the paper's
defect-specific reference, 32 FPS on an RTX 3080); with ``--checkpoint``, the candidate's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def end_to_end_fps(predictor: object, iters: int) -> float:
    """Return ``predict`` calls per second on a 200 x 200 grayscale image."""
    img = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    predictor.predict(img)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for _ in range(iters):
        predictor.predict(img)  # type: ignore[attr-defined]
    return iters / (time.perf_counter() - t0)


def main() -> None:
    """Measure and print the table and the speed-up line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="sd900", help="shipped litenet weights (sets model and input size)")
    parser.add_argument("--checkpoint", default=None, help="a candidate litenet checkpoint timed beside the shipped one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from defectbench.bench.speed import count_parameters, interleaved_fps, state_dict_mb
    from defectbench.deploy import ExportedPredictor, export_model, load_predictor
    from defectbench.deploy.engines import fastest_engine
    from defectbench.methods.saliency import create_model
    from defectbench.methods.saliency.checkpoint import load_trained, shipped_weights_path
    from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD

    engine = fastest_engine()
    sources = {"litenet": shipped_weights_path("litenet", args.weights)}
    if args.checkpoint:
        sources["candidate"] = Path(args.checkpoint)
    networks: dict[str, tuple[torch.nn.Module, dict]] = {name: load_trained(path, "litenet")
                                                         for name, path in sources.items()}
    networks["edrnet"] = (create_model("edrnet", pretrained=False).eval(),
                          {"model": "edrnet", "input_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD})
    runs: dict[str, Callable[[], object]] = {}
    with tempfile.TemporaryDirectory(prefix="litenet-speed-") as tmp:
        for name, (model, info) in networks.items():
            size = int(info["input_size"])
            x = torch.randn(1, 3, size, size)
            fast = ExportedPredictor(export_model(model, info, Path(tmp) / name, "openvino" if engine == "openvino"
                                                  else "onnx"), engine, threads=args.threads)
            xn = x.numpy()
            runs[name] = lambda model=model, x=x: model(x)
            runs[f"{name} --optimize"] = lambda fast=fast, xn=xn: fast.logits(xn)
        fps = interleaved_fps(runs, args.rounds, args.iters)
    e2e = {name: end_to_end_fps(load_predictor(path, model="litenet", threads=args.threads, optimize=True),
                                args.iters * 2) for name, path in sources.items()}

    sizes = ", ".join(f"{name} input {info['input_size']} {info.get('model_kwargs') or {}}"
                      for name, (_, info) in networks.items())
    print(f"CPU threads {args.threads}; --optimize = {engine} fp32; {sizes}; median of {args.rounds} interleaved rounds")
    print(f"{'network':22s} {'params (M)':>10s} {'fp32 MB':>8s} {'FPS b1':>8s}")  # MB: 10^6 bytes, as in Table 7
    for name in runs:
        model = networks[name.split()[0]][0]
        print(f"{name:22s} {count_parameters(model):10.2f} {state_dict_mb(model):8.1f} {fps[name]:8.1f}")
    for name, rate in e2e.items():
        print(f"{name} --optimize end to end (200x200 gray image -> map, predict): {rate:.1f} FPS")
    best = "candidate" if args.checkpoint else "litenet"
    if args.checkpoint:
        print(f"candidate / shipped, end to end: {e2e['candidate'] / e2e['litenet']:.2f} (issue 12 target >= 0.8)")
    print(f"speedup: {fps[f'{best} --optimize'] / fps['edrnet --optimize']:.2f}")


if __name__ == "__main__":
    main()
