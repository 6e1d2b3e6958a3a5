"""``defectbench eval``: score a folder of saliency maps against ground-truth masks."""

from __future__ import annotations

import argparse
import csv
import io

from defectbench.cli.common import add_data_root, console, err_console, positive_int

COLUMNS = ("n", "S_alpha", "MAE", "max_E", "mean_E", "adp_E", "weighted_F", "max_F", "mean_F", "adp_F")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` verb."""
    p = sub.add_parser("eval", help="score saliency maps against ground-truth masks (PySODMetrics definitions)")
    p.add_argument("--pred", required=True, help="folder of saliency maps (8-bit PNG or any image; matched to masks by stem)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gt", help="folder of ground-truth masks")
    src.add_argument("--dataset", help="take the masks from a dataset split instead (sd900, mt, nrsd, folder:<path>)")
    p.add_argument("--split", default="test", help="split of --dataset to score (default: test)")
    add_data_root(p)
    p.add_argument("--json", help="write the summary (and per-class / per-split rows) to this JSON file")
    p.add_argument("--csv", help="write one row per image to this CSV file")
    p.add_argument("--by-class", action="store_true", help="print one row per defect class too")
    p.add_argument("--workers", type=positive_int, default=None, help="worker processes (default: CPU cores)")
    p.add_argument("--resize", action="store_true", help="resize maps to their mask's size (bilinear) instead of failing")
    p.set_defaults(func=run)


def format_table(result, by_class: bool) -> "rich.table.Table":  # noqa: F821
    """Return a rich table of the summary, per-split rows and optionally per-class rows."""
    from rich.table import Table

    table = Table(title="defectbench eval", show_lines=False)
    table.add_column("rows")
    for c in COLUMNS:
        table.add_column(c, justify="right")

    def add(name: str, row: dict) -> None:
        table.add_row(name, *(str(row[c]) if c == "n" else f"{row[c]:.4f}" for c in COLUMNS))

    add("all", result.summary)
    if len(result.by_split) > 1:
        for name, row in result.by_split.items():
            add(f"split {name}", row)
    if by_class:
        for name, row in result.by_class.items():
            add(f"class {name}", row)
    return table


def run(args: argparse.Namespace) -> int:
    """Evaluate and print / write the results."""
    from defectbench.atomic import atomic_write_json, atomic_write_text
    from defectbench.evaluate import evaluate_folders, evaluate_split
    from defectbench.paths import prepare_output_file

    for flag, path in (("--json", args.json), ("--csv", args.csv)):  # checked before the work, not after
        if path:
            prepare_output_file(path, f"{flag} file")
    if args.gt:
        result = evaluate_folders(args.pred, args.gt, workers=args.workers, resize=args.resize, progress=True)
    else:
        from defectbench.data import load_dataset

        ds = load_dataset(args.dataset, args.data_root)
        result = evaluate_split(args.pred, ds, args.split, workers=args.workers, resize=args.resize, progress=True)
    console.print(format_table(result, args.by_class))
    for note in result.notes:
        err_console.print(f"[bold red]{note}[/]" if note.startswith("WARNING") else f"note: {note}", highlight=False)
    if args.json:
        atomic_write_json(args.json, result.to_json())
    if args.csv:
        rows = result.rows()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(args.csv, buf.getvalue())
    return 0
