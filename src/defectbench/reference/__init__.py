"""The paper's published numbers (Song et al. 2024, tables 3-7), shipped as package data.

``paper_accuracy.csv``: one row per (table, dataset, split, method) with S_alpha, MAE, max_E, weighted_F, max_F
(empty cells where the paper prints "-"). ``paper_efficiency.csv``: Table 7 (model MB, parameters in millions,
FPS on an RTX 3080).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

from defectbench.metrics.aggregate import PAPER_METRICS

METRICS = tuple(PAPER_METRICS)

# (our dataset registry name, our test split) -> (paper table number, paper dataset name, paper split label)
PAPER_TABLES: dict[tuple[str, str], tuple[int, str, str]] = {
    ("sd900", "test"): (3, "SD-saliency-900", "540:360"),
    ("mt", "1to1-test"): (4, "MT", "1:1"),
    ("nrsd", "test"): (5, "NRSD-MN", "2086:1130"),
    ("mt", "7to3-test"): (6, "MT", "7:3"),
}


@dataclass(frozen=True)
class PaperRow:
    """One published accuracy row: a method's five scores on one dataset split (None where not reported)."""

    table: int
    dataset: str
    split: str
    method: str
    venue: str
    type: str
    scores: dict[str, float | None]


@dataclass(frozen=True)
class PaperSpeed:
    """One published efficiency row (Table 7, RTX 3080)."""

    method: str
    model_mb: float
    params_m: float
    fps: float


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _num(text: str) -> float | None:
    text = text.strip()
    return float(text) if text and text not in ("-", "–") else None


def paper_accuracy() -> list[PaperRow]:
    """Return every published accuracy row of tables 3-6."""
    return [
        PaperRow(int(r["table"]), r["dataset"], r["split"], r["method"], r["venue"], r["type"],
                 {m: _num(r[m]) for m in METRICS})
        for r in _read_csv("paper_accuracy.csv")
    ]


def paper_efficiency() -> list[PaperSpeed]:
    """Return the published Table 7 rows (model size, parameters, FPS on an RTX 3080)."""
    return [
        PaperSpeed(r["method"], float(r["model_mb"]), float(r["params_m"]), float(r["fps_rtx3080"]))
        for r in _read_csv("paper_efficiency.csv")
    ]


def paper_table_for(dataset: str, test_split: str) -> int | None:
    """Return the number of the paper's table that matches our dataset and test split (None if none does)."""
    entry = PAPER_TABLES.get((dataset, test_split))
    return entry[0] if entry else None


def paper_rows_for(dataset: str, test_split: str) -> list[PaperRow]:
    """Return the paper's published rows for our dataset/test split (empty when the paper has no such table)."""
    entry = PAPER_TABLES.get((dataset, test_split))
    if entry is None:
        return []
    table = entry[0]
    return [r for r in paper_accuracy() if r.table == table]
