"""Arguments and output helpers shared by the CLI verbs."""

from __future__ import annotations

import argparse

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


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
