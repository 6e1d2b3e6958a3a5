"""Arguments and output helpers shared by the CLI verbs."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

# Rich assumes 80 columns when output is not a terminal; tables of metrics need more.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def add_data_root(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-root`` (else $DEFECTBENCH_DATA, else ./data, else ../shared/datasets)."""
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding the datasets (default: $DEFECTBENCH_DATA, else ./data, else ../shared/datasets)",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    """Add ``--device auto|cpu|cuda``."""
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run models")
