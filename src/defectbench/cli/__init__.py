"""``defectbench <verb>``: thin command-line wrappers over the library API.

Each verb group lives in its own module (``data``, ``eval``, ``sam``, ``train``, ``bench``, ``report``, ``weights``)
exposing ``register(subparsers)``; handlers import heavy libraries (torch) lazily so that the CLI starts fast.
User errors (:class:`defectbench.errors.DefectbenchError`) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from defectbench import __version__
from defectbench.errors import DefectbenchError

VERB_MODULES = ("data", "eval", "sam", "train", "bench", "report", "export", "weights")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every available verb registered."""
    parser = argparse.ArgumentParser(
        prog="defectbench",
        description="Benchmark SAM and saliency models on industrial surface-defect datasets.",
    )
    parser.add_argument("--version", action="version", version=f"defectbench {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    sub.required = True
    for name in VERB_MODULES:
        importlib.import_module(f"defectbench.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except DefectbenchError as exc:
        print(f"defectbench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system mistake no check caught: still one line naming the path
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"defectbench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("defectbench: interrupted; finished results are kept, run the same command again to resume", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
