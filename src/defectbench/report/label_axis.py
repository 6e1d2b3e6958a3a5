"""The labelled-images axis in the report: a table per task, "labels needed to beat SAM", and the learning curves.

SAM's zero-shot rows are the reference: the SAM rows this run measured on the task (every selection), otherwise the
paper's SAM row of the matching table, labelled as the paper's. "Labels needed" interpolates the mean metric of
the sizes linearly on a log axis between the last size below SAM and the first at or beyond it; when the smallest
size already beats SAM it reads "fewer than N", when no size does, "more than N".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from defectbench.reference import paper_rows_for
from defectbench.report.results import HIGHER_BETTER, METRICS, ExperimentResults, MethodResult, Stat, TaskInfo
from defectbench.report.tables import Cell, Column, Table

HEADERS = {"S_alpha": "S_α ↑", "MAE": "MAE ↓", "max_E": "max E ↑", "weighted_F": "weighted F ↑", "max_F": "max F ↑"}
CURVE_METRICS = ("S_alpha", "weighted_F", "max_F")


@dataclass
class Reference:
    """A horizontal line of the learning curves: a SAM row (measured here or published) or another full-data row."""

    label: str
    scores: dict[str, float | None]
    kind: str  # "sam" (measured), "paper" (the paper's SAM row), "other" (e.g. shipped weights), "anomaly"


def size_of(m: MethodResult) -> int | None:
    """The number of labelled images of a labels-axis result (``all`` = the size its jobs recorded)."""
    if m.labels is None:
        return None
    if m.labels != "all":
        return int(m.labels)
    for j in m.jobs:
        plan = j.job.info.get("labels")
        if isinstance(plan, dict) and plan.get("labels"):
            return int(plan["labels"])
    return None


def curve_points(runs: dict[str, MethodResult], metric: str) -> list[tuple[int, Stat]]:
    """The (labelled images, mean ± std over seeds) points of one method's learning curve, by size."""
    points = []
    for m in runs.values():
        n, stat = size_of(m), m.stat(metric)
        if n is not None and stat is not None:
            points.append((n, stat))
    return sorted(points, key=lambda p: p[0])


def sam_references(results: ExperimentResults, task: TaskInfo) -> list[Reference]:
    """SAM's lines for a task: its measured SAM rows, else the paper's SAM row (empty when neither exists)."""
    measured = [Reference(m.label, {k: (s.mean if (s := m.stat(k)) else None) for k in METRICS}, "sam")
                for m in results.methods.get(task.key, []) if m.method_type == "sam" and m.jobs]
    if measured:
        return measured
    return [Reference(f"{r.method} (paper, Table {r.table})", dict(r.scores), "paper")
            for r in paper_rows_for(task.dataset_name, task.test_split) if r.method.upper().startswith("SAM")]


def labels_needed(points: list[tuple[int, Stat]], target: float, higher_better: bool) -> str:
    """How many labelled images reach ``target``: log-linear interpolation between the sizes around the crossing."""
    if not points:
        return "–"
    beats = [(p[1].mean >= target) if higher_better else (p[1].mean <= target) for p in points]
    if beats[0]:
        return f"fewer than {points[0][0]}" if points[0][1].mean != target else str(points[0][0])
    for i in range(1, len(points)):
        if beats[i]:
            (x0, s0), (x1, s1) = points[i - 1], points[i]
            t = (target - s0.mean) / (s1.mean - s0.mean)
            return f"≈ {round(math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0))))}"
    return f"more than {points[-1][0]}"


def label_table(results: ExperimentResults, task: TaskInfo) -> Table | None:
    """Every size of the labels axis: the five metrics (mean ± std over seeds), seeds and training length."""
    runs = results.label_runs.get(task.key)
    if not runs:
        return None
    cols = [Column("method", "Method"), Column("labels", "Labelled images"), Column("seeds", "Seeds"),
            Column("schedule", "Training"), *[Column(k, HEADERS[k], HIGHER_BETTER[k]) for k in METRICS]]
    table = Table(f"labels_{task.key}", f"Labelled training images — {task.key}", cols)
    for method, by_size in runs.items():
        for m in sorted(by_size.values(), key=lambda r: size_of(r) or 0):
            plan = next((j.job.info.get("labels") for j in m.jobs if isinstance(j.job.info.get("labels"), dict)), {})
            schedule = f"{plan.get('epochs')} epochs, {plan.get('steps')} steps" if plan else ""
            if plan and plan.get("n_val"):
                schedule += f", val {plan['n_val']}"
            table.add(method, True, method=m.label, labels=f"{size_of(m)}" + (" (all)" if m.labels == "all" else ""),
                      seeds=",".join(str(s) for s in sorted(m.seeds)), schedule=schedule,
                      **{k: Cell() if (s := m.stat(k)) is None else Cell(s.mean, s.std) for k in METRICS})
    for ref in [*sam_references(results, task), *_other_references(results, task)]:
        table.add("reference", False, method=ref.label, labels=REFERENCE_LABELS.get(ref.kind, "0 (zero-shot)"),
                  **{k: ref.scores.get(k) for k in METRICS})
    table.group_titles = {"reference": "References (SAM zero-shot; full-data rows; rows fitted on defect-free images only)"}
    table.notes = [
        "Subsets: nested, stratified by defect class, seeded (defectbench.data.splits.label_subset); each size trains "
        "for about the same number of optimizer steps with a floor of epochs (the task's labels rule, in each job's "
        "record); subsets below the rule's val_min keep their last epoch.",
        "Mean ± sample standard deviation over seeds; the seed picks both the subset and the initialisation.",
    ]
    return table


#: the "Labelled images" cell of a reference row, by its kind (SAM rows: zero-shot)
REFERENCE_LABELS = {"other": "all", "anomaly": "0 (defect-free images only)"}


def _other_references(results: ExperimentResults, task: TaskInfo) -> list[Reference]:
    """Full-data rows of the task not on the labels axis and not SAM (e.g. the shipped weights)."""
    axis = set(results.label_runs.get(task.key, {}))
    return [Reference(m.label, {k: (s.mean if (s := m.stat(k)) else None) for k in METRICS},
                      "anomaly" if m.method_type == "anomaly" else "other")
            for m in results.methods.get(task.key, []) if m.method_type != "sam" and m.method not in axis]


def labels_needed_table(results: ExperimentResults, task: TaskInfo) -> Table | None:
    """Per method of the labels axis and SAM reference: labelled images needed to beat SAM on each metric."""
    runs = results.label_runs.get(task.key)
    refs = sam_references(results, task)
    if not runs or not refs:
        return None
    cols = [Column("method", "Method"), Column("sam", "Against"), *[Column(k, HEADERS[k]) for k in METRICS]]
    table = Table(f"labels_needed_{task.key}", f"Labelled images needed to beat SAM zero-shot — {task.key}", cols)
    for method, by_size in runs.items():
        label = next(iter(by_size.values())).label.split(" @ ")[0]
        for ref in refs:
            cells = {}
            for k in METRICS:
                target = ref.scores.get(k)
                cells[k] = Cell(text="–" if target is None else
                                labels_needed(curve_points(by_size, k), float(target), HIGHER_BETTER[k]))
            table.add("ours", False, method=label, sam=ref.label + (" = {:.3f} S_α".format(ref.scores["S_alpha"])
                                                                     if ref.scores.get("S_alpha") is not None else ""),
                      **cells)
    table.notes = ["Interpolated linearly on a log axis of labelled images between the two sizes around the crossing "
                   "of the mean curve (over seeds) with SAM's value; 'fewer than N': the smallest size already beats "
                   "SAM; 'more than N': no size does."]
    if refs[0].kind == "paper":
        table.notes.append("SAM: the paper's published row (its oracle mask selection); this run measured no SAM row "
                           "(no SAM checkpoint here).")
    return table


def learning_curve_figure(results: ExperimentResults, task: TaskInfo, out_dir: Path) -> Path | None:
    """S-measure, weighted F and max F against labelled images (log axis, mean ± std band), SAM as lines."""
    runs = results.label_runs.get(task.key)
    if not runs:
        return None
    from defectbench.report.figures import _figure, _save

    fig = _figure(12.0, 3.8)
    axes = fig.subplots(1, len(CURVE_METRICS))
    refs = [*sam_references(results, task), *_other_references(results, task)]
    for ax, metric in zip(axes, CURVE_METRICS):
        for method, by_size in runs.items():
            pts = curve_points(by_size, metric)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            mean = [p[1].mean for p in pts]
            std = [p[1].std or 0.0 for p in pts]
            line, = ax.plot(xs, mean, marker="o", linewidth=1.6, label=next(iter(by_size.values())).label.split(" @ ")[0])
            ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.2)
        for ref in refs:
            value = ref.scores.get(metric)
            if value is not None:
                style = {"sam": "--", "paper": "-.", "other": ":", "anomaly": (0, (1, 3))}[ref.kind]
                ax.axhline(float(value), linestyle=style, linewidth=1.3, color="k" if ref.kind in ("sam", "paper") else "0.4",
                           label=ref.label)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="labelled training images", ylabel=HEADERS[metric].rstrip(" ↑"), title=f"{HEADERS[metric]} — {task.key}")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7, loc="lower right")
    return _save(fig, out_dir / f"labels_{task.key}.png")
