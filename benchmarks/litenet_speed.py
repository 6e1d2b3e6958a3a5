"""litenet speed: frames per second at batch 1 on this CPU, against EDRNet (ResNet-34) measured in the same run.

Both models run in eval mode under ``torch.inference_mode`` with the same thread count (default 2) on a
fixed ``1 x 3 x S x S`` input; timing rounds alternate between the two models so that load from other
processes hits both alike, and the median round is reported. Also printed: parameters, fp32 size, and the
end-to-end rate of ``SaliencyPredictor.predict`` on a 200 x 200 grayscale image (resize, network, upsample).

    .venv/bin/python benchmarks/litenet_speed.py [--size 224] [--threads 2] [--rounds 7] [--iters 20]

The issue's target is >= 50 FPS at batch 1 on this 2-core CPU. The last line is ``speedup: X`` =
litenet FPS / EDRNet FPS (EDRNet is the paper's defect-specific reference, 32 FPS on an RTX 3080).
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--size", type=int, default=224, help="litenet input size (EDRNet runs at 224, its paper's size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--weights", default="sd900", help="shipped litenet weights to time (any works; speed only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from defectbench.methods.saliency import create_model
    from defectbench.train import SaliencyPredictor
    from defectbench.train.record import count_parameters

    try:
        lite = SaliencyPredictor.from_shipped("litenet", args.weights)
        litenet = lite.model
        source = f"shipped weights {args.weights!r}"
    except Exception:  # noqa: BLE001 - weights not shipped yet: speed does not depend on the values
        litenet = create_model("litenet", pretrained=False).eval()
        lite = SaliencyPredictor(litenet, args.size)
        source = "random weights"
    edrnet = create_model("edrnet", pretrained=False).eval()

    res = fps_rounds({"litenet": (litenet, torch.randn(1, 3, args.size, args.size)),
                      "edrnet": (edrnet, torch.randn(1, 3, 224, 224))}, args.rounds, args.iters)

    img = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    lite.predict(img)
    t0 = time.perf_counter()
    n = args.iters * 2
    for _ in range(n):
        lite.predict(img)
    e2e = n / (time.perf_counter() - t0)

    def mb(m: torch.nn.Module) -> float:
        return sum(p.numel() * p.element_size() for p in m.state_dict().values()) / 2**20

    print(f"CPU threads {args.threads}; litenet ({source}) input {args.size}x{args.size}; EDRNet input 224x224")
    print(f"{'model':10s} {'params (M)':>10s} {'fp32 MB':>8s} {'FPS b1':>8s}")
    for name, model in (("litenet", litenet), ("edrnet", edrnet)):
        print(f"{name:10s} {count_parameters(model) / 1e6:10.2f} {mb(model):8.1f} {res[name]:8.1f}")
    print(f"litenet end to end (200x200 gray image -> map, SaliencyPredictor.predict): {e2e:.1f} FPS")
    print(f"target >= 50 FPS batch 1: {'met' if res['litenet'] >= 50 else 'NOT met'} ({res['litenet']:.1f} FPS)")
    print(f"speedup: {res['litenet'] / res['edrnet']:.2f}")


if __name__ == "__main__":
    main()
