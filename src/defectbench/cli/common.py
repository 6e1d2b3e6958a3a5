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


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether that GPU exists is checked when it is used)."""
    from defectbench.runtime import DEVICE_CHOICES, is_device_name

    if not is_device_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use {DEVICE_CHOICES}")
    return text


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto",
               help: str = "where to run models: auto, cpu, cuda or cuda:N (default: auto)") -> None:
    """Add ``--device auto|cpu|cuda|cuda:N``."""
    parser.add_argument("--device", default=default, type=device_name, metavar="DEVICE", help=help)


def _number(kind: type, low: float, inclusive: bool, what: str):
    """An argparse type: a number of ``kind`` above ``low`` (or at it, when ``inclusive``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value != value or (value < low if inclusive else value <= low):  # NaN included
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what
    return parse


positive_int = _number(int, 0, False, "a positive whole number")
non_negative_int = _number(int, 0, True, "a whole number >= 0")
positive_float = _number(float, 0.0, False, "a positive number")
non_negative_float = _number(float, 0.0, True, "a number >= 0")
