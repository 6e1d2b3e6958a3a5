"""Reports from an experiment's results store: Markdown, CSV and LaTeX tables, figures and a static ``index.html``.

    from defectbench.report import write_report
    index = write_report("runs/quick")          # -> runs/quick/report/index.html

Everything comes from ``runs/<experiment>/results.sqlite`` (and the maps it points to, for the qualitative
grids); the paper's published numbers ship with the package (:mod:`defectbench.reference`).
"""

from __future__ import annotations

from pathlib import Path

from defectbench.atomic import atomic_write_text
from defectbench.report.build import (
    anomaly_table,
    class_tables,
    efficiency_table,
    false_alarm_table,
    leak_table,
    main_table,
    summary_table,
    task_title,
)
from defectbench.report.figures import curve_figures, qualitative_figure
from defectbench.report.label_axis import label_table, labels_needed_table, learning_curve_figure
from defectbench.report.prompts import choice_table, interactive_figure, interactive_table
from defectbench.report.robustness import robustness_table
from defectbench.report.html import Section, jobs_html, render_index
from defectbench.report.results import ExperimentResults, load_results
from defectbench.report.tables import Column, Table

__all__ = ["ExperimentResults", "build_tables", "load_results", "write_report"]


def jobs_table(results: ExperimentResults) -> Table:
    """Every job of the matrix with its status, time and error."""
    from defectbench.formatting import format_seconds

    table = Table("jobs", "Jobs of the experiment", [Column("job", "Job"), Column("status", "Status"),
                                                      Column("time", "Time"), Column("images", "Images"),
                                                      Column("note", "Note")])
    for j in results.jobs:
        table.add(j.status, False, job=j.job_id, status=j.status, time=format_seconds(j.seconds),
                  images=str(j.n_images or ""), note=j.error or "")
    return table


def build_tables(results: ExperimentResults) -> dict[str, list[Table]]:
    """Return the report's tables by section (``summary``, one per task key, ``efficiency``, ``jobs``)."""
    out: dict[str, list[Table]] = {}
    s = summary_table(results)
    if s is not None:
        out["summary"] = [s]
    for task in results.tasks:
        tables = [main_table(results, task), *class_tables(results, task)]
        tables += [false_alarm_table(results, task, split) for split in results.false_alarm_splits(task.key)]
        anomaly = anomaly_table(results, task)
        if anomaly is not None:
            tables.append(anomaly)
        leak = leak_table(results, task)
        if leak is not None:
            tables.append(leak)
        tables += [t for t in (label_table(results, task), labels_needed_table(results, task),
                               robustness_table(results, task), interactive_table(results, task),
                               choice_table(results, task)) if t is not None]
        out[task.key] = tables
    e = efficiency_table(results)
    if e is not None:
        out["efficiency"] = [e]
    out["jobs"] = [jobs_table(results)]
    return out


def write_report(experiment_dir: str | Path, out_dir: str | Path | None = None, figures: bool = True) -> Path:
    """Write the report of an experiment (default: ``<experiment>/report/``); return the path of ``index.html``."""
    results = load_results(experiment_dir)
    out = Path(out_dir) if out_dir is not None else results.experiment_dir / "report"
    tables_dir, fig_dir = out / "tables", out / "figures"
    by_section = build_tables(results)
    all_tables = [t for ts in by_section.values() for t in ts]
    for t in all_tables:
        atomic_write_text(tables_dir / f"{t.key}.md", t.to_markdown())
        atomic_write_text(tables_dir / f"{t.key}.csv", t.to_csv())
        atomic_write_text(tables_dir / f"{t.key}.tex", t.to_latex())
    atomic_write_text(out / "tables.md", f"# defectbench report: {results.experiment_dir.name}\n\n"
                      + "\n".join(t.to_markdown() for t in all_tables))
    atomic_write_text(out / "tables.tex", "% requires \\usepackage{booktabs}\n" + "\n".join(t.to_latex() for t in all_tables))
    sections: list[Section] = []
    if "summary" in by_section:
        sections.append(Section("Where SAM stands", "summary", by_section["summary"]))
    for task in results.tasks:
        sec = Section(task_title(task), f"task-{task.key}", by_section.get(task.key, []))
        if figures:
            for p in curve_figures(results, task, fig_dir):
                kind = "Precision-recall curves" if p.name.startswith("pr_") else "F-measure against threshold"
                sec.figures.append((f"figures/{p.name}", f"{kind}, {task.key} (mean over images; seeds averaged)"))
            lc = learning_curve_figure(results, task, fig_dir)
            if lc is not None:
                sec.figures.append((f"figures/{lc.name}", f"Learning curves, {task.key}: metrics against labelled "
                                    "training images (log axis; mean ± std over seeds), SAM zero-shot as lines"))
            it = interactive_figure(results, task, fig_dir)
            if it is not None:
                sec.figures.append((f"figures/{it.name}", f"Interactive points, {task.key}: metrics against the number "
                                    "of points (ORACLE: each point placed where the ground-truth error is largest)"))
            q = qualitative_figure(results, task, fig_dir)
            if q is not None:
                sec.figures.append((f"figures/{q.name}", f"Qualitative comparison, {task.key}: best, median and worst "
                                    "test image of each class"))
        sections.append(sec)
    if "efficiency" in by_section:
        sections.append(Section("Efficiency (Table 7)", "efficiency", by_section["efficiency"]))
    sections.append(Section("Jobs", "jobs", by_section["jobs"], text=jobs_html(results)))
    downloads = ["tables.md", "tables.tex"]
    downloads += [f"tables/{t.key}.{ext}" for t in all_tables for ext in ("md", "csv", "tex")]
    downloads += [src for s in sections for src, _ in s.figures]
    index = out / "index.html"
    atomic_write_text(index, render_index(results, sections, downloads))
    return index
