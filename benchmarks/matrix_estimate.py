"""An ESTIMATE of the paper matrix's GPU time and disk on one modern GPU and on N GPUs (nothing is trained or run).

For every job of the config (``defectbench.bench.expand_jobs``): FLOPs of its model counted with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device (the registered model with random weights at its
training input size, batch 1; SAM ViT-H from the official architecture at 1024 x 1024: image encoder plus one mask
decoder call per batch of 64 prompt points), times the images it sees, divided by an assumed sustained throughput
(:data:`ASSUMED`, printed with the table). The N-GPU makespan is list scheduling of the jobs in the shared job order
(:mod:`defectbench.bench.schedule`: SAM selections after the job computing their proposals, speed jobs last).
Disk: checkpoints, maps, SAM's proposal cache. FLOP counts only cover matrix products and convolutions; data
loading, element-wise layers and Python overheads enter through the assumptions only.

    .venv/bin/python benchmarks/matrix_estimate.py [configs/paper.yaml] [--gpus 1,2,4,8] [--flops-cache FILE]
"""

from __future__ import annotations

import argparse
import heapq
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

# What the estimate assumes about one modern GPU (an H100 SXM: 989 dense bf16 / 495 dense tf32 / 67 fp32 TFLOPS peak).
ASSUMED = {
    "train_tflops": 120.0,  # sustained, bf16 autocast training of small-batch convnets/ViTs (~12 % of the bf16 peak)
    "infer_tflops": 40.0,  # saliency-model prediction in fp32 (cuDNN convolutions may use TF32)
    "sam_tflops": 40.0,  # SAM ViT-H in fp32 (the toolkit runs SAM without autocast): ~60 % of the fp32 peak
    "amg_post_s_per_batch": 0.015,  # automatic-mask post-processing per 64-point batch (upsampling, stability, NMS, RLE)
    "loader_images_per_s": 800.0,  # CPU data pipeline (decode + augmentation) cap while training
    "score_s_per_image": 0.005,  # metrics per image on the CPU (README: 0.94 ms at 200 x 200 with 2 workers)
    "job_overhead_s": 20.0,  # per job: worker start, dataset load, model build, checkpoint writes
    "speed_job_extra_s": 30.0,  # per speed job on top of its timing budget (warm-up, model build)
    "masks_per_image": 40,  # SAM proposals kept per image after its thresholds
    "cache_bytes_per_mask": 70_000,  # 256 x 256 float16 logits (131 kB) compressed ~2x, plus the RLE mask
    "map_bytes_per_pixel": 0.5,  # an 8-bit PNG saliency map, compressed
    "checkpoint_bytes_per_param": 4 * 4,  # best.pt (fp32 weights) + last.pt (weights + AdamW's two moments)
}
# images (and mean pixels per image) of each dataset's splits; split files shipped with the package, NRSD-MN's
# published 2086 / 1130 split (its image size is an assumption: the data is not here)
SPLITS = {"sd900": {"train": 540, "test": 360}, "mt": {"1to1-train": 196, "1to1-test": 196, "7to3-train": 274,
          "7to3-test": 118, "free": 952}, "nrsd": {"train": 2086, "test": 1130}}
PIXELS = {"sd900": 200 * 200, "mt": 106_267, "nrsd": 400 * 400}
SAM_SIZE, POINTS, POINTS_PER_BATCH = 1024, 32 * 32, 64


# -- FLOPs ----------------------------------------------------------------------------------------------------
def count_flops(build, make_inputs) -> tuple[float, int]:
    """Forward FLOPs and parameter count of ``build()`` on the meta device (no weights, no memory)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build().eval()
        params = sum(p.numel() for p in model.parameters())
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            make_inputs(model)
    return float(counter.get_total_flops()), int(params)


def saliency_flops(name: str, size: int) -> tuple[float, int]:
    """Forward FLOPs (batch 1, ``size`` x ``size``) and parameters of a registered saliency model, random weights."""
    import torch

    from defectbench.methods.saliency.registry import create_model, model_factory

    kwargs = {"pretrained": False} if "pretrained" in inspect.signature(model_factory(name)).parameters else {}
    return count_flops(lambda: create_model(name, **kwargs), lambda m: m(torch.empty(1, 3, size, size)))


def sam_flops(model: str = "vit_h") -> dict[str, float]:
    """FLOPs of SAM's image encoder at 1024 and of one mask-decoder call on 64 points; parameters."""
    import torch
    from segment_anything import sam_model_registry

    build = lambda: sam_model_registry[model](checkpoint=None)  # noqa: E731
    enc, params = count_flops(build, lambda m: m.image_encoder(torch.empty(1, 3, SAM_SIZE, SAM_SIZE)))

    def decode(m) -> None:
        emb = torch.empty(1, 256, 64, 64)
        m.mask_decoder(image_embeddings=emb, image_pe=torch.empty(1, 256, 64, 64),
                       sparse_prompt_embeddings=torch.empty(POINTS_PER_BATCH, 2, 256),
                       dense_prompt_embeddings=torch.empty(POINTS_PER_BATCH, 256, 64, 64), multimask_output=True)

    dec, _ = count_flops(build, decode)
    return {"encoder": enc, "decoder_batch": dec, "params": params}


def flops_table(needs: dict[str, tuple[str, int]], cache: Path | None) -> dict[str, dict[str, float]]:
    """FLOPs per model key (``sod:<model>@<size>`` or ``sam:<model>``), counted once and kept in ``cache``."""
    known = json.loads(cache.read_text()) if cache and cache.is_file() else {}
    for key, (kind, arg) in needs.items():
        if key in known:
            continue
        if kind == "sam":
            known[key] = sam_flops(str(arg))
        else:
            name, size = key.split(":", 1)[1].rsplit("@", 1)
            f, p = saliency_flops(name, int(size))
            known[key] = {"forward": f, "params": p}
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(known, indent=1, sort_keys=True))
    return known


# -- per-job costs --------------------------------------------------------------------------------------------
@dataclass
class JobCost:
    """One job's estimated GPU seconds and disk bytes, with what they are made of."""

    job_id: str
    kind: str
    seconds: float
    disk: dict[str, float] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    waits_for: str | None = None


def _count(dataset: str, split: str | None) -> int:
    return SPLITS[dataset].get(split or "", 0) if split else 0


def job_costs(jobs: list, flops: dict[str, dict[str, float]], a: dict[str, float] = ASSUMED) -> list[JobCost]:
    """Return the estimated cost of every job (SAM proposals counted once per task/model, by the first job needing them)."""
    from defectbench.bench.schedule import leaders, proposal_group, sequential_order

    waits = leaders(jobs)
    have: dict[str, set[str]] = {}  # proposal group -> splits whose proposals are cached
    out = []
    for job in sequential_order(jobs):
        m = job.method
        if job.kind == "speed":
            spec = job.speed
            out.append(JobCost(job.id, "speed", spec.max_seconds + a["speed_job_extra_s"]))
            continue
        t = job.task
        n_train, n_test = _count(t.dataset, t.train), _count(t.dataset, t.test)
        n_extra = sum(_count(t.dataset, s) for s in t.extra)
        if m.type == "sod":
            size = int(m.options.get("train", {}).get("size", 352))
            epochs = int(m.options.get("train", {}).get("epochs", 30))
            f = flops[f"sod:{m.options['model']}@{size}"]
            trained = 0.9 * n_train * epochs  # val_fraction 0.1: a tenth of the split validates every epoch
            train_s = max(3 * f["forward"] * trained / (a["train_tflops"] * 1e12), trained / a["loader_images_per_s"])
            val_s = f["forward"] * 0.1 * n_train * epochs / (a["infer_tflops"] * 1e12)
            n_eval = n_test + n_extra
            infer_s = f["forward"] * n_eval / (a["infer_tflops"] * 1e12)
            score_s = n_eval * a["score_s_per_image"]
            parts = {"train": train_s, "validate": val_s, "predict": infer_s, "score": score_s}
            disk = {"checkpoints": f["params"] * a["checkpoint_bytes_per_param"],
                    "checkpoint_writes": f["params"] * 4 * 3 * epochs,  # last.pt every epoch (save_every 1)
                    "maps": n_eval * PIXELS[t.dataset] * a["map_bytes_per_pixel"]}
        elif m.type == "sam":
            f = flops[f"sam:{m.options['model']}"]
            group = proposal_group(job) or job.id
            needed = {t.test, *([] if m.uses_gt else t.extra), *([t.train] if m.options.get("select") == "learned" else [])}
            new = [s for s in needed if s and s not in have.setdefault(group, set())]
            have[group].update(new)
            n_new = sum(_count(t.dataset, s) for s in new)
            per_image = ((f["encoder"] + POINTS / POINTS_PER_BATCH * f["decoder_batch"]) / (a["sam_tflops"] * 1e12)
                         + POINTS / POINTS_PER_BATCH * a["amg_post_s_per_batch"])
            n_eval = n_test + (0 if m.uses_gt else n_extra)
            parts = {"proposals": n_new * per_image, "select+score": n_eval * (a["score_s_per_image"] + 0.01)}
            disk = {"proposal_cache": n_new * a["masks_per_image"] * a["cache_bytes_per_mask"],
                    "maps": n_eval * PIXELS[t.dataset] * a["map_bytes_per_pixel"]}
        else:  # maps / anomaly: CPU-light, scored only
            parts = {"score": (n_test + n_extra) * a["score_s_per_image"]}
            disk = {}
        out.append(JobCost(job.id, m.type, sum(parts.values()) + a["job_overhead_s"], disk, parts, waits.get(job.id)))
    return out


# -- N GPUs ---------------------------------------------------------------------------------------------------
def makespan(costs: list[JobCost], n: int) -> float:
    """Finish time of list scheduling on ``n`` devices: jobs in order, each to the first free device, a job waiting
    for another (SAM selections) not before that one ended, speed jobs after every other job ended."""
    free = [0.0] * n
    heapq.heapify(free)
    ended: dict[str, float] = {}
    evals_end = 0.0
    for c in costs:
        device_free = heapq.heappop(free)
        start = max(device_free, ended.get(c.waits_for, 0.0) if c.waits_for else 0.0)
        if c.kind == "speed":
            start = max(start, evals_end)
        end = start + c.seconds
        ended[c.job_id] = end
        if c.kind != "speed":
            evals_end = max(evals_end, end)
        heapq.heappush(free, end)
    return max(free) if costs else 0.0


def _h(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _gb(b: float) -> str:
    return f"{b / 1e9:.1f} GB"


def main() -> None:
    """Print the per-method table, the totals on 1 and N GPUs, the disk, and the assumptions."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", nargs="?", default="configs/paper.yaml")
    p.add_argument("--gpus", default="1,2,4,8", help="device counts to schedule on (default: 1,2,4,8)")
    p.add_argument("--flops-cache", type=Path, default=Path(__file__).parent / "results" / "model_flops.json")
    args = p.parse_args()
    from defectbench.bench import expand_jobs, load_config

    jobs = expand_jobs(load_config(args.config))
    needs: dict[str, tuple[str, int]] = {}
    for j in jobs:
        if j.kind != "eval":
            continue
        if j.method.type == "sod":
            size = int(j.method.options.get("train", {}).get("size", 352))
            needs[f"sod:{j.method.options['model']}@{size}"] = ("sod", size)
        elif j.method.type == "sam":
            needs[f"sam:{j.method.options['model']}"] = ("sam", j.method.options["model"])
    flops = flops_table(needs, args.flops_cache)
    costs = job_costs(jobs, flops)

    by_method: dict[str, list[JobCost]] = {}
    by_id = {j.id: j for j in jobs}
    for c in costs:
        by_method.setdefault("speed jobs" if c.kind == "speed" else by_id[c.job_id].method.name, []).append(c)
    print(f"ESTIMATE (not a measurement) of {args.config}: {len(jobs)} jobs on one modern GPU (H100-class)\n")
    print("| method | jobs | GFLOPs / image (fwd) | params (M) | GPU time | of which | disk |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, cs in by_method.items():
        j0 = by_id[cs[0].job_id]
        if cs[0].kind == "sod":
            f = flops[f"sod:{j0.method.options['model']}@{j0.method.options['train']['size']}"]
            gf, pm = f"{f['forward'] / 1e9:.0f} @{j0.method.options['train']['size']}", f"{f['params'] / 1e6:.1f}"
        elif cs[0].kind == "sam":
            f = flops[f"sam:{j0.method.options['model']}"]
            gf = f"{(f['encoder'] + POINTS / POINTS_PER_BATCH * f['decoder_batch']) / 1e9:.0f} @1024"
            pm = f"{f['params'] / 1e6:.0f}"
        else:
            gf = pm = ""
        parts: dict[str, float] = {}
        for c in cs:
            for k, v in c.parts.items():
                parts[k] = parts.get(k, 0.0) + v
        shown = ", ".join(f"{k} {_h(v)}" for k, v in parts.items() if v >= 60)
        disk = sum(v for c in cs for k, v in c.disk.items() if k != "checkpoint_writes")
        print(f"| {name} | {len(cs)} | {gf} | {pm} | {_h(sum(c.seconds for c in cs))} | {shown} | {_gb(disk)} |")
    total = sum(c.seconds for c in costs)
    print(f"\ntotal GPU time: {_h(total)} (sum of jobs)")
    longest = max((c.seconds for c in costs), default=0.0)
    print(f"longest job: {_h(longest)} ({max(costs, key=lambda c: c.seconds).job_id})" if costs else "no jobs")
    print("| GPUs | makespan (list scheduling, shared job order) | speed-up | lower bound max(total / N, longest job) |")
    print("| ---: | ---: | ---: | ---: |")
    for n in (int(x) for x in args.gpus.split(",")):
        span = makespan(costs, n)
        bound = max(total / n, longest)
        print(f"| {n} | {_h(span)} | {total / span:.1f}x | {_h(bound)} |" if span else f"| {n} | 0 | | |")
    kinds: dict[str, float] = {}
    for c in costs:
        for k, v in c.disk.items():
            kinds[k] = kinds.get(k, 0.0) + v
    kept = sum(v for k, v in kinds.items() if k != "checkpoint_writes")
    print(f"\ndisk kept: {_gb(kept)} = " + ", ".join(f"{k} {_gb(v)}" for k, v in kinds.items() if k != "checkpoint_writes")
          + f"; written by last.pt saves at save_every 1: {_gb(kinds.get('checkpoint_writes', 0))} "
            f"(save_every = epochs/10: {_gb(kinds.get('checkpoint_writes', 0) / 10)})")
    print("\nassumptions: " + ", ".join(f"{k} {v:g}" for k, v in ASSUMED.items()))


if __name__ == "__main__":
    main()
