"""Training wall time per epoch: today's trainer against the reference trainer of before issue 12, same run.

The reference is the trainer as it was before the speed work: NCHW model, out-of-place input normalisation and
the SSIM term of the hybrid loss computed with a direct 11 x 11 Gaussian convolution (``reference_ssim_map``
below, kept verbatim from that version). Both run :func:`defectbench.train.train_model` on the same images with
the same options (litenet, random initial weights, input 224 by default, batch 8, validation on a 10 % hold-out
every epoch), alternating which goes first, for ``--epochs`` epochs each; an epoch's seconds are those the
trainer records (training steps plus validation). The first epoch of each run is a warm-up (oneDNN builds its
kernels) and is left out of the mean unless only one epoch is run.

Usage: ``python benchmarks/train_speed.py [--images 100] [--size 224] [--batch 8] [--epochs 2] [--rounds 1]
[--threads 2] [--data-root DIR]``. The last line is ``speedup: X`` (reference seconds per epoch / ours).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def reference_ssim_map(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """The SSIM map of the reference trainer: five direct ``window_size``-square Gaussian convolutions."""
    channels = img1.shape[1]
    g = torch.tensor([math.exp(-((x - window_size // 2) ** 2) / (2 * 1.5**2)) for x in range(window_size)],
                     dtype=torch.float64)
    g = g / g.sum()
    window = torch.outer(g, g).float()[None, None].to(img1).expand(channels, 1, window_size, window_size)
    pad = window_size // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    mu1, mu2 = blur(img1), blur(img2)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = blur(img1 * img1) - mu1_sq
    sigma2_sq = blur(img2 * img2) - mu2_sq
    sigma12 = blur(img1 * img2) - mu12
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu12 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def reference_normalize(images_u8: np.ndarray, mean=None, std=None) -> torch.Tensor:  # noqa: ANN001
    """The input normalisation of the reference trainer (out of place)."""
    from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD

    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean or IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std or IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


@contextmanager
def reference_trainer() -> Iterator[None]:
    """Swap the reference's SSIM and normalisation in for the duration of the block."""
    import defectbench.train.data as train_data
    from defectbench.methods.saliency import losses

    saved = losses.ssim_map, train_data.normalize
    losses.ssim_map, train_data.normalize = reference_ssim_map, reference_normalize
    try:
        yield
    finally:
        losses.ssim_map, train_data.normalize = saved


def epoch_seconds(reference: bool, args: argparse.Namespace, dataset, work: Path) -> tuple[list[float], list[float]]:  # noqa: ANN001
    """Train once; return (seconds of each epoch, mean loss of each epoch)."""
    from defectbench.train import TrainConfig, train_model

    overrides = dict(model_kwargs={}, pretrained=False, epochs=args.epochs, batch=args.batch, size=args.size,
                     limit=args.images, threads=args.threads, seed=0, channels_last=not reference,
                     data_root=args.data_root)
    cfg = TrainConfig.for_model("litenet", overrides)
    out = Path(tempfile.mkdtemp(dir=work, prefix="ref-" if reference else "ours-"))
    with reference_trainer() if reference else _nothing():
        result = train_model(cfg, dataset=dataset, out_dir=out, progress=False)
    return [h["seconds"] for h in result.history], [h["loss"] for h in result.history]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the numbers."""
    from defectbench.data import load_dataset
    from defectbench.runtime import device_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100, help="first N SD-saliency-900 training images (default 100)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; the first is a warm-up (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="reference/ours pairs, alternating order (default 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)

    dataset = load_dataset("sd900", args.data_root)
    print(f"device: {device_description('cpu')}, torch {torch.__version__}, {args.threads} threads")
    print(f"litenet, input {args.size}, batch {args.batch}, first {args.images} SD-saliency-900 training images "
          f"(10 % validation hold-out scored every epoch), {args.epochs} epochs per run")
    times: dict[str, list[float]] = {"reference": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ["reference", "ours"] if r % 2 == 0 else ["ours", "reference"]
            losses = {}
            for name in order:
                t0 = time.perf_counter()
                secs, losses[name] = epoch_seconds(name == "reference", args, dataset, Path(tmp))
                timed = secs[1:] if len(secs) > 1 else secs
                times[name].extend(timed)
                print(f"round {r + 1} {name:9s}: epochs {', '.join(f'{s:.1f}' for s in secs)} s "
                      f"(losses {', '.join(f'{v:.5f}' for v in losses[name])}; run {time.perf_counter() - t0:.0f} s)",
                      flush=True)
            gap = max(abs(a - b) for a, b in zip(losses["reference"], losses["ours"]))
            print(f"round {r + 1}: largest difference of the epoch losses {gap:.2e} (same data, same steps)")
    ref, ours = float(np.mean(times["reference"])), float(np.mean(times["ours"]))
    print(f"seconds per epoch: reference {ref:.1f}, ours {ours:.1f}")
    print(f"speedup: {ref / ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
