"""Speed of our automatic mask generator against the official ``SamAutomaticMaskGenerator``, same masks.

Both generators run on the same images with the same SAM ViT-B weights in one process (alternating which
goes first). Without official weights (none can be downloaded here) the official ViT-B architecture is
randomly initialised (seeded). Random weights produce near-duplicate masks that SAM's filters and NMS
collapse to one or two per image, so by default the score thresholds are set to 0 and the NMS IoU to 1.0:
every one of the 32 x 32 x 3 = 3072 masks per image is kept and compared. Reported: seconds per image,
masks per image for both, and the mean (and minimum) IoU of each official mask with its best match among
ours (searched among our masks from the same prompt point, a lower bound of the best match over all).

Usage: ``python benchmarks/amg_speed.py [--images 2] [--checkpoint sam_vit_b_01ec64.pth] [--data-root DIR]``.
The last line is ``speedup: X`` (official seconds / our seconds, summed over the images).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the numbers."""
    from defectbench.data import load_dataset, to_rgb
    from defectbench.methods.sam.checkpoints import load_model
    from defectbench.methods.sam.generator import AmgParams, FastMaskGenerator, OfficialMaskGenerator
    from defectbench.methods.sam.proposals import best_match_iou
    from defectbench.runtime import device_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2, help="number of SD-saliency-900 test images (default 2)")
    ap.add_argument("--checkpoint", default=None, help="official sam_vit_b_01ec64.pth (default: random weights)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--published-filters", action="store_true",
                    help="keep SAM's published thresholds (0.88 / 0.95 / NMS 0.7) instead of 0 / 0 / 1.0")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    seed = 0
    model, info = load_model("vit_b", args.checkpoint, "cpu", random_seed=None if args.checkpoint else seed)
    overrides = {"points_per_side": args.points_per_side}
    if not args.published_filters:
        overrides.update(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    params = AmgParams.for_model("vit_b", overrides)
    ds = load_dataset("sd900", args.data_root)
    samples = ds.split("test")[:: max(1, 120)][: args.images]
    print(f"device: {device_description('cpu')}, torch threads {torch.get_num_threads()}")
    print(f"weights: {info.label}; images: {', '.join(s.id for s in samples)} (SD-saliency-900 test)")
    print(f"settings: points_per_side {params.points_per_side}, pred_iou_thresh {params.pred_iou_thresh}, "
          f"stability_score_thresh {params.stability_score_thresh}, box_nms_thresh {params.box_nms_thresh}"
          + ("" if args.published_filters else " (filters off so that every mask is compared)"))
    official = OfficialMaskGenerator(model, "sam", params)
    ours = FastMaskGenerator(model, "sam", params, keep_logits=False)
    t_off = t_ours = 0.0
    all_best: list[np.ndarray] = []
    for k, s in enumerate(samples):
        image = to_rgb(s.image())
        runs = [("official", official), ("ours", ours)]
        if k % 2:
            runs.reverse()
        out, secs = {}, {}
        for name, gen in runs:
            print(f"[{s.id}] {name} generator ...", flush=True)
            t0 = time.perf_counter()
            with torch.no_grad():
                out[name] = gen.generate(image)
            secs[name] = time.perf_counter() - t0
            print(f"[{s.id}] {name}: {secs[name]:.1f} s, {len(out[name])} masks", flush=True)
        t_off += secs["official"]
        t_ours += secs["ours"]
        best = best_match_iou(out["official"], out["ours"])
        all_best.append(best)
        print(f"[{s.id}] masks per image: official {len(out['official'])}, ours {len(out['ours'])}; "
              f"best-match IoU mean {best.mean():.5f}, min {best.min():.5f}", flush=True)
    best = np.concatenate(all_best)
    n = len(samples)
    print(f"seconds per image: official {t_off / n:.1f}, ours {t_ours / n:.1f} "
          f"(ours: encoder {ours.timings.get('encode', 0) / n:.1f}, decoder {ours.timings.get('decode', 0) / n:.1f}, "
          f"upscaling {ours.timings.get('upscale', 0) / n:.1f}, post-processing {ours.timings.get('postprocess', 0) / n:.1f})")
    print(f"mean best-match IoU over {len(best)} official masks: {best.mean():.5f} (min {best.min():.5f})")
    print(f"speedup: {t_off / t_ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
