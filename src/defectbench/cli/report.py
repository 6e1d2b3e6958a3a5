"""``defectbench report``: tables (Markdown, CSV, LaTeX), figures and index.html from an experiment's store."""

from __future__ import annotations

import argparse

from defectbench.cli.common import console


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` verb."""
    p = sub.add_parser("report", help="write an experiment's tables, figures and index.html from its results store")
    p.add_argument("experiment", help="experiment folder, e.g. runs/quick")
    p.add_argument("--out", default=None, help="output folder (default: <experiment>/report)")
    p.add_argument("--no-figures", action="store_true", help="tables only (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report and print where it is."""
    from defectbench.paths import prepare_output_dir
    from defectbench.report import write_report

    if args.out:
        prepare_output_dir(args.out, "report folder")
    index = write_report(args.experiment, args.out, figures=not args.no_figures)
    console.print(f"report: {index}", highlight=False)
    return 0
