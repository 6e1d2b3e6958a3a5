"""Training wall time: today's training loop against the trainer of commit 2fd6cce (before issue 20's loop), same run.

The reference is that commit's ``src/defectbench/train/`` package, read with ``git show 2fd6cce:<file>`` into a
temporary package (``defectbench_ref_train``) beside today's; every other module (models, losses, checkpoints) is
shared. The reference augments in the training process, reads the loss (``.item()``, ``isfinite``) every step and
writes ``last.pt`` every epoch; today's loop takes its batches from a ``DataLoader`` (``--workers``), reads the loss
every 50 steps and writes ``last.pt`` every ceil(epochs/10) epochs. Both train litenet (random initial weights) on
the same images with the same options (input 224, batch 8, validation on a 10 % hold-out every epoch) for
``--epochs`` epochs. Rounds interleave the runs, rotating which goes first (the machine may be shared), and the
comparison uses medians over rounds (after one untimed warm-up run) of each run's wall time (build, data, every epoch, checkpoints) and of its
epoch seconds after the first (the first is a warm-up: oneDNN builds its kernels), and of the CPU seconds each run
used (its process and its loader workers: on a shared machine the steadier measure of what a run costs).

Usage: ``python benchmarks/train_speed.py [--images 100] [--size 224] [--batch 8] [--epochs 3] [--rounds 3]
[--threads 2] [--workers auto,2] [--data-root DIR] [--commit 2fd6cce]``. ``--workers`` lists today's variants
(``auto`` = the default: 0 on the CPU); the first is the one compared. The last line is ``speedup: X`` (reference
run seconds / today's, medians).
"""

from __future__ import annotations

import argparse
import importlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

REPO = Path(__file__).resolve().parents[1]
REF_PACKAGE = "defectbench_ref_train"


def reference_package(commit: str, into: Path) -> ModuleType:
    """Write ``src/defectbench/train/`` of ``commit`` into ``into/defectbench_ref_train`` and import it."""
    tree = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{commit}:src/defectbench/train/"],
                          check=True, capture_output=True, text=True).stdout.split()
    pkg = into / REF_PACKAGE
    pkg.mkdir(parents=True)
    for name in (n for n in tree if n.endswith(".py")):
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:src/defectbench/train/{name}"],
                              check=True, capture_output=True, text=True).stdout
        text = text.replace("defectbench.train.", f"{REF_PACKAGE}.").replace("from defectbench.train import",
                                                                            f"from {REF_PACKAGE} import")
        (pkg / name).write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module(REF_PACKAGE)


def one_run(package: ModuleType, workers: int | None, args: argparse.Namespace, dataset, work: Path):  # noqa: ANN001, ANN201
    """Train once with ``package`` (reference or today's); return (run seconds, CPU seconds of the run and its loader
    workers, epoch seconds, epoch losses)."""
    overrides = dict(model_kwargs={}, pretrained=False, epochs=args.epochs, batch=args.batch, size=args.size,
                     limit=args.images, threads=args.threads, seed=0, data_root=args.data_root, device="cpu")
    if package.__name__ != REF_PACKAGE:
        overrides["workers"] = workers
    cfg = package.TrainConfig.for_model("litenet", overrides)
    out = Path(tempfile.mkdtemp(dir=work)) / "run"
    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    result = package.train_model(cfg, dataset=dataset, out_dir=out, progress=False)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0 + _children_cpu() - k0  # workers are joined (and counted) when the run ends
    return seconds, cpu, [h["seconds"] for h in result.history], [h["loss"] for h in result.history]


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the numbers."""
    import defectbench.train as ours
    from defectbench.data import load_dataset
    from defectbench.runtime import device_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100, help="first N SD-saliency-900 training images (default 100)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is a warm-up (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every run (default 3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", default="auto", help="today's loader workers, comma-separated variants (auto, 0, 2..)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--commit", default="2fd6cce", help="commit of the reference trainer (default 2fd6cce)")
    args = ap.parse_args(argv)
    variants = [None if w == "auto" else int(w) for w in args.workers.split(",")]

    dataset = load_dataset("sd900", args.data_root)
    print(f"device: {device_description('cpu')}, torch {torch.__version__}, {args.threads} threads")
    print(f"litenet, input {args.size}, batch {args.batch}, first {args.images} SD-saliency-900 training images "
          f"(10 % validation hold-out scored every epoch), {args.epochs} epochs per run, {args.rounds} rounds")
    runs = ["reference", *(f"ours workers={'auto' if w is None else w}" for w in variants)]
    wall: dict[str, list[float]] = {r: [] for r in runs}
    epoch: dict[str, list[float]] = {r: [] for r in runs}
    cpu: dict[str, list[float]] = {r: [] for r in runs}
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_package(args.commit, Path(tmp) / "pkg")
        print(f"reference: {args.commit}:src/defectbench/train/ as {ref.__name__}")
        # untimed: the process's first training pays one-off costs (oneDNN kernels, imports) that no run should carry
        one_run(ours, 0, argparse.Namespace(**{**vars(args), "epochs": 1}), dataset, Path(tmp))
        for r in range(args.rounds):
            order = runs[r % len(runs):] + runs[:r % len(runs)]
            losses = {}
            for name in order:
                package = ref if name == "reference" else ours
                workers = None if name == "reference" else variants[runs.index(name) - 1]
                secs, cpu_s, epochs, losses[name] = one_run(package, workers, args, dataset, Path(tmp))
                wall[name].append(secs)
                cpu[name].append(cpu_s)
                epoch[name].extend(epochs[1:] if len(epochs) > 1 else epochs)
                print(f"round {r + 1} {name:17s}: run {secs:6.1f} s (CPU {cpu_s:6.1f} s), epochs {', '.join(f'{s:.1f}' for s in epochs)} s "
                      f"(losses {', '.join(f'{v:.5f}' for v in losses[name])})", flush=True)
            gap = max(abs(a - b) for name in runs[1:] for a, b in zip(losses["reference"], losses[name]))
            print(f"round {r + 1}: largest difference of the epoch losses to the reference {gap:.2e}")
    med = {name: (statistics.median(wall[name]), statistics.median(epoch[name]), statistics.median(cpu[name]))
           for name in runs}
    for name in runs:
        print(f"median {name:17s}: run {med[name][0]:.1f} s, epoch {med[name][1]:.2f} s, CPU {med[name][2]:.1f} s")
    for name in runs[2:]:
        print(f"speedup ({name}): {med['reference'][0] / med[name][0]:.2f} "
              f"(epoch {med['reference'][1] / med[name][1]:.2f}, CPU {med['reference'][2] / med[name][2]:.2f})")
    print(f"epoch speedup ({runs[1]}): {med['reference'][1] / med[runs[1]][1]:.2f}; "
          f"CPU-time speedup: {med['reference'][2] / med[runs[1]][2]:.2f}")
    print(f"speedup: {med['reference'][0] / med[runs[1]][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
