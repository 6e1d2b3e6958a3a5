"""``defectbench data info|split|fetch``: inspect datasets, regenerate split files, download datasets."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from defectbench.cli.common import add_data_root, console


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` verb group."""
    p = sub.add_parser("data", help="dataset information, split files and downloads")
    verbs = p.add_subparsers(dest="data_verb", metavar="<info|split|fetch>")
    verbs.required = True

    info = verbs.add_parser("info", help="counts per class and split, image sizes, mask coverage")
    info.add_argument("name", help="sd900, mt, nrsd or folder:<path>")
    add_data_root(info)
    info.set_defaults(func=run_info)

    split = verbs.add_parser("split", help="regenerate the split files from the data (bit-identical to the shipped ones)")
    split.add_argument("names", nargs="*", default=["sd900", "mt"], help="datasets (default: sd900 mt)")
    split.add_argument("--out", help="write the files here instead of checking them against the shipped ones")
    add_data_root(split)
    split.set_defaults(func=run_split)

    fetch = verbs.add_parser("fetch", help="download a dataset from its public GitHub repository")
    fetch.add_argument("name", choices=("sd900", "mt", "nrsd"))
    fetch.add_argument("--data-root", default=None, help="where to put it (default: $DEFECTBENCH_DATA, else ./data)")
    fetch.add_argument("--no-verify", action="store_true", help="keep the download even if its checksum differs")
    fetch.set_defaults(func=run_fetch)


def run_info(args: argparse.Namespace) -> int:
    """Print dataset statistics."""
    from rich.table import Table

    from defectbench.data import load_dataset
    from defectbench.data.info import dataset_info

    ds = load_dataset(args.name, args.data_root)
    info = dataset_info(ds)
    console.print(f"[bold]{info.title}[/] at {info.root}: {info.n_images} images")
    classes = sorted({c for row in info.counts.values() for c in row})
    t = Table(title="images per split and class")
    t.add_column("split")
    for c in classes:
        t.add_column(c, justify="right")
    t.add_column("total", justify="right")
    for split, row in info.counts.items():
        t.add_row(split, *(str(row.get(c, 0)) for c in classes), str(sum(row.values())))
    console.print(t)
    sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in info.sizes.most_common(5))
    more = f" and {len(info.sizes) - 5} other sizes" if len(info.sizes) > 5 else ""
    console.print(f"image sizes: {sizes}{more}")
    c = Table(title="defect pixels per image (share of the image)")
    for col in ("class", "mean", "median", "min", "max", "empty masks"):
        c.add_column(col, justify="right")
    for cls, st in info.coverage.items():
        c.add_row(cls, f"{st['mean']:.4f}", f"{st['median']:.4f}", f"{st['min']:.4f}", f"{st['max']:.4f}", str(st["empty"]))
    console.print(c)
    return 0


def run_split(args: argparse.Namespace) -> int:
    """Regenerate split files; without --out, compare with the shipped files and fail on any difference."""
    from defectbench.data import load_dataset, mt, sd900
    from defectbench.data.splits import split_dir, write_splits

    modules = {"sd900": sd900, "mt": mt}
    status = 0
    for name in args.names:
        if name not in modules:
            console.print(f"{name}: its split comes from the published folder layout; nothing to regenerate")
            continue
        ds = load_dataset(name, args.data_root)
        splits = modules[name].expected_splits(ds)
        if args.out:
            for path in write_splits(name, splits, Path(args.out)):
                console.print(f"wrote {path}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_splits(name, splits, Path(tmp)):
                shipped = split_dir() / path.name
                same = shipped.is_file() and shipped.read_bytes() == path.read_bytes()
                console.print(f"{path.name}: {'identical to the shipped file' if same else 'DIFFERS from the shipped file'}")
                status |= 0 if same else 1
    return status


def run_fetch(args: argparse.Namespace) -> int:
    """Download a dataset."""
    import os

    from defectbench.data.fetch import fetch

    root = args.data_root or os.environ.get("DEFECTBENCH_DATA") or "data"
    path = fetch(args.name, root, progress=True, verify=not args.no_verify)
    console.print(f"{args.name}: unpacked and verified at {path}")
    return 0
