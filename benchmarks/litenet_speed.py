"""litenet speed: frames per second at batch 1 on this CPU, against EDRNet (ResNet-34) measured in the same run.

Every model runs in eval mode under ``torch.inference_mode`` with the same thread count (default 2) on a fixed
``1 x 3 x S x S`` input (litenet at the input size stored with its shipped weights, EDRNet at 224), both as
eager PyTorch and as ``--optimize`` (traced, frozen, BatchNorm folded, channels-last:
:func:`defectbench.methods.saliency.predictor.optimize_for_cpu`). Timing rounds alternate between the models so that load
from other processes hits all alike; the median round is reported. Also printed: parameters, fp32 size, and
the end-to-end rate of ``SaliencyPredictor.predict`` on a 200 x 200 grayscale image (resize, network, upsample).

    .venv/bin/python benchmarks/litenet_speed.py [--weights sd900] [--threads 2] [--rounds 7] [--iters 20]

The issue's target is >= 50 FPS at batch 1 on this 2-core CPU. The last line is ``speedup: X`` =
optimized litenet FPS / optimized EDRNet FPS (EDRNet: the paper's defect-specific reference, 32 FPS on an
RTX 3080).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch


def fps_rounds(runs: dict[str, tuple[torch.nn.Module, torch.Tensor]], rounds: int, iters: int) -> dict[str, float]:
    """Return the median over ``rounds`` of each model's frames per second; rounds interleave the models."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for model, x in runs.values():
            for _ in range(5):
                model(x)
        for _ in range(rounds):
            for name, (model, x) in runs.items():
                t0 = time.perf_counter()
                for _ in range(iters):
                    model(x)
                rates[name].append(iters / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> None:
    """Measure and print the table and the speed-up line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="sd900", help="shipped litenet weights (sets model and input size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from defectbench.methods.saliency import create_model
    from defectbench.methods.saliency.predictor import SaliencyPredictor
    from defectbench.methods.saliency.checkpoint import read_checkpoint, shipped_weights_path
    from defectbench.methods.saliency.predictor import optimize_for_cpu
    from defectbench.bench.speed import count_parameters, state_dict_mb

    lite = SaliencyPredictor.from_shipped("litenet", args.weights)
    size, litenet = lite.size, lite.model
    kwargs = read_checkpoint(shipped_weights_path("litenet", args.weights))["model_kwargs"]
    edrnet = create_model("edrnet", pretrained=False).eval()
    x_lite = torch.randn(1, 3, size, size)
    x_ref = torch.randn(1, 3, 224, 224)
    cl = torch.channels_last
    runs = {
        "litenet": (litenet, x_lite),
        "litenet --optimize": (optimize_for_cpu(copy.deepcopy(litenet), size), x_lite.contiguous(memory_format=cl)),
        "edrnet": (edrnet, x_ref),
        "edrnet --optimize": (optimize_for_cpu(copy.deepcopy(edrnet), 224),
                              x_ref.contiguous(memory_format=cl)),
    }
    fps = fps_rounds(runs, args.rounds, args.iters)

    img = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    fast = SaliencyPredictor.from_shipped("litenet", args.weights, optimize=True)
    fast.predict(img)
    t0 = time.perf_counter()
    n = args.iters * 2
    for _ in range(n):
        fast.predict(img)
    e2e = n / (time.perf_counter() - t0)

    print(f"CPU threads {args.threads}; litenet (weights {args.weights!r}, {kwargs}) input {size}x{size}; "
          f"EDRNet (ResNet-34) input 224x224; median of {args.rounds} interleaved rounds")
    print(f"{'model':20s} {'params (M)':>10s} {'fp32 MB':>8s} {'FPS b1':>8s}")  # MB: 10^6 bytes, as in Table 7
    for name, (model, _) in runs.items():
        ref = litenet if name.startswith("litenet") else edrnet
        print(f"{name:20s} {count_parameters(ref):10.2f} {state_dict_mb(ref):8.1f} {fps[name]:8.1f}")
    print(f"litenet --optimize end to end (200x200 gray image -> map, SaliencyPredictor.predict): {e2e:.1f} FPS")
    best = fps["litenet --optimize"]
    print(f"target >= 50 FPS batch 1: {'met' if best >= 50 else 'NOT met'} ({best:.1f} FPS with --optimize)")
    print(f"speedup: {best / fps['edrnet --optimize']:.2f}")



if __name__ == "__main__":
    main()
