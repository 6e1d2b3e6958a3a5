"""The corruption axis in the report: each method's five metrics on the corrupted test images and the drop from clean."""

from __future__ import annotations

from defectbench.report.results import HIGHER_BETTER, METRICS, ExperimentResults, MethodResult, TaskInfo
from defectbench.report.tables import Cell, Column, Table

SHORT = {"S_alpha": "S_α", "MAE": "MAE", "max_E": "max E", "weighted_F": "wF", "max_F": "max F"}


def _value(m: MethodResult | None, k: str) -> float | None:
    s = m.stat(k) if m is not None else None
    return None if s is None else s.mean


def robustness_table(results: ExperimentResults, task: TaskInfo) -> Table | None:
    """Per method: the clean row, then one row per corruption with the metrics and their change from clean."""
    by_corruption = results.corrupted.get(task.key)
    if not by_corruption:
        return None
    cols = [Column("method", "Method"), Column("corruption", "Test images")]
    for k in METRICS:
        cols += [Column(k, f"{SHORT[k]} {'↑' if HIGHER_BETTER[k] else '↓'}", HIGHER_BETTER[k]),
                 Column(f"d_{k}", f"Δ {SHORT[k]}")]
    table = Table(f"robustness_{task.key}", f"Robustness to test-time corruptions — {task.key}", cols)
    clean = {m.method: m for m in results.methods.get(task.key, [])}
    names = list(by_corruption)
    methods: dict[str, str] = {}
    for rows in by_corruption.values():
        for m in rows:
            if m.jobs:
                methods.setdefault(m.method, m.label)
    if not methods:
        return None
    for method, label in methods.items():
        base = clean.get(method)
        table.add(method, False, method=label, corruption="clean",
                  **{k: _value(base, k) for k in METRICS}, **{f"d_{k}": Cell(text="") for k in METRICS})
        for name in names:
            m = next((r for r in by_corruption[name] if r.method == method and r.jobs), None)
            cells: dict[str, Cell | float | None] = {}
            for k in METRICS:
                v, b = _value(m, k), _value(base, k)
                s = m.stat(k) if m is not None else None
                cells[k] = Cell() if v is None else Cell(v, s.std if s else None)
                cells[f"d_{k}"] = Cell(text="–" if v is None or b is None else f"{v - b:+.3f}")
            table.add(method, True, method=label, corruption=name, **cells)
    table.notes = ["Corrupted test images: the clean images under each corruption (defectbench.data.corruptions: "
                   "seeded per image, the same pixels for every method); masks unchanged. Δ: corrupted minus clean "
                   "(negative is worse for ↑ columns, positive is worse for MAE). Best value per method in bold."]
    table.mark_best()
    return table
