"""PatchCore's nearest-neighbour search: torch.cdist over query chunks (the default engine) against faiss's exact
``IndexFlatL2`` (``nn_engine: faiss``), on one image's patches and memory banks of the sizes configs/anomaly.yaml fits.

Each case is one image's queries (``(S / 8)^2`` patches at input S) against a bank of the given rows, in the feature
width of the backbone (152 for EfficientNet-Lite0 layers 2+3, 168 for Lite2); random features (the search's cost
does not depend on their values). Both engines run in the same process with the same thread count, in interleaved
rounds (:func:`defectbench.bench.speed.interleaved_fps`, median of the rounds), and must return the same distances
(max difference printed).

    .venv/bin/python benchmarks/anomaly_knn_speed.py [--threads 1] [--rounds 5]

The last line is ``speedup: X`` = torch searches per second / faiss searches per second at the first (Lite0) bank.
"""

from __future__ import annotations

import argparse

import torch

CASES = ((256, 4875, 152), (256, 4875, 168), (256, 48750, 152))  # input size, bank rows, feature width


def main() -> None:
    """Time both engines on each case and print a table, then the speedup line."""
    from defectbench.bench.speed import interleaved_fps
    from defectbench.methods.anomaly.knn import NearestNeighbours
    from defectbench.runtime import device_description

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{device_description('cpu')}, {args.threads} thread(s)")
    print("| queries | bank | width | torch.cdist searches/s | faiss IndexFlatL2 searches/s | torch / faiss | max |diff| |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    first = None
    for size, rows, width in CASES:
        gen = torch.Generator().manual_seed(0)
        bank, queries = torch.randn(rows, width, generator=gen), torch.randn((size // 8) ** 2, width, generator=gen)
        engines = {name: NearestNeighbours(bank, name) for name in ("torch", "faiss")}
        diff = float((engines["torch"].distances(queries) - engines["faiss"].distances(queries)).abs().max())
        fps = interleaved_fps({n: (lambda e=e: e.distances(queries)) for n, e in engines.items()}, args.rounds,
                              args.iters, warmup=2)
        ratio = fps["torch"] / fps["faiss"]
        first = ratio if first is None else first
        print(f"| {queries.shape[0]} | {rows} | {width} | {fps['torch']:.1f} | {fps['faiss']:.1f} | {ratio:.2f} | {diff:.1e} |")
    print(f"speedup: {first:.2f}")


if __name__ == "__main__":
    main()
