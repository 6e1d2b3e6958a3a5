"""The one progress-bar set-up of defectbench (rich): same columns everywhere, on standard error, or nothing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any


def make_progress(enabled: bool = True, transient: bool = True, console: Any | None = None,
                  extra_columns: tuple[Any, ...] = (), units: str = "items") -> Any:
    """Return a rich ``Progress`` with defectbench's columns (description, bar, done/total — or bytes and rate when
    ``units="bytes"`` —, time spent and left, then ``extra_columns``), on stderr unless another ``console`` is given."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    if console is None:
        console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    counts = (DownloadColumn(), TransferSpeedColumn()) if units == "bytes" else (MofNCompleteColumn(),)
    return Progress(TextColumn("{task.description}"), BarColumn(), *counts, TimeElapsedColumn(),
                    TimeRemainingColumn(), *extra_columns, console=console, transient=transient, disable=not enabled)


@contextlib.contextmanager
def counting_bar(description: str, total: int, enabled: bool = True, transient: bool = True) -> Iterator[Callable[[int], None]]:
    """A context yielding ``advance(n)`` for one bar of ``total`` steps (a no-op when not ``enabled``)."""
    if not enabled:
        yield lambda n: None
        return
    with make_progress(True, transient) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
