"""The prompt rows' extras: the interactive K-point curve (a table and a figure) and the mask-choice table.

An interactive ``sam_prompt`` job stores, with its record, the paper's metrics of the map after each point
(``info["curve"]``); every prompt job stores both mask choices' mean Jaccard (``info["choices"]``).
"""

from __future__ import annotations

from pathlib import Path

from defectbench.report.results import ExperimentResults, MethodResult, Stat, TaskInfo
from defectbench.report.tables import Cell, Column, Table

SAM_TYPES = ("sam", "sam_prompt")
CURVE_METRICS = ("S_alpha", "max_F", "MAE")
HEADERS = {"S_alpha": "S_α ↑", "max_F": "max F ↑", "MAE": "MAE ↓", "max_E": "max E ↑", "weighted_F": "weighted F ↑"}


def curve_methods(results: ExperimentResults, task: TaskInfo) -> list[MethodResult]:
    """The task's methods whose jobs carry a K-point curve."""
    return [m for m in results.methods.get(task.key, []) if any(j.job.info.get("curve") for j in m.jobs)]


def curve_stats(m: MethodResult, metric: str) -> list[tuple[int, Stat]]:
    """``(points, mean ± std over seeds)`` of one metric along a method's curve."""
    ks = sorted({int(k) for j in m.jobs for k in (j.job.info.get("curve") or {})})
    out = []
    for k in ks:
        s = Stat.of([j.job.info["curve"][str(k)][metric] for j in m.jobs
                     if metric in (j.job.info.get("curve") or {}).get(str(k), {})])
        if s is not None:
            out.append((k, s))
    return out


def interactive_table(results: ExperimentResults, task: TaskInfo) -> Table | None:
    """Metrics after 1..K interactive points (SAM's protocol: each point where the error is largest)."""
    methods = curve_methods(results, task)
    if not methods:
        return None
    k_max = max(k for m in methods for k, _ in curve_stats(m, "S_alpha"))
    cols = [Column("method", "Method"), Column("metric", "Metric"),
            *[Column(f"k{k}", f"{k} pt", None) for k in range(1, k_max + 1)]]
    table = Table(f"interactive_{task.key}", f"Interactive points (ORACLE: clicks placed from the test ground truth) "
                  f"— {task.key}", cols)
    for m in methods:
        for metric in CURVE_METRICS:
            pts = dict(curve_stats(m, metric))
            table.add("ours", False, method=m.label, metric=HEADERS[metric],
                      **{f"k{k}": Cell(pts[k].mean, pts[k].std) if k in pts else Cell() for k in range(1, k_max + 1)})
    table.notes = ["Point 1 at the interior point of the largest defect farthest from its border; each next point at "
                   "the centre of the largest error region of the previous mask (positive if missed, negative if "
                   "false), decoded with the previous low-resolution mask as input (SAM's paper, section 7.1)."]
    return table


def choice_table(results: ExperimentResults, task: TaskInfo) -> Table | None:
    """Both mask choices of every prompt row: mean Jaccard of SAM's pick and of the oracle pick, how often they agree."""
    rows = [(m, j.job.info.get("choices")) for m in results.methods.get(task.key, []) if m.method_type == "sam_prompt"
            for j in m.jobs[:1]]
    rows = [(m, c) for m, c in rows if c and c.get("prompts_with_gt")]
    if not rows:
        return None
    cols = [Column("method", "Method"), Column("n", "Prompts"), Column("js", "J, SAM's pick", None),
            Column("jo", "J, oracle pick (best of 3)", None), Column("same", "same mask", None)]
    table = Table(f"mask_choice_{task.key}", f"SAM's mask choice against the best of its three masks — {task.key}", cols)
    for m, c in rows:
        table.add("ours", False, method=m.label, n=str(c["prompts_with_gt"]), js=c["jaccard_sam_pick"],
                  jo=c["jaccard_oracle_pick"], same=c["same_pick"])
    table.notes = ["Per prompt: Jaccard of the mask SAM scores highest and of the best of its three masks against the "
                   "prompt's target (its ground-truth component; the whole ground truth for box-all and prompts from a "
                   "model), first seed; the first point of interactive rows."]
    return table


def interactive_figure(results: ExperimentResults, task: TaskInfo, out_dir: Path) -> Path | None:
    """Each metric against the number of interactive points (mean ± std over seeds)."""
    methods = curve_methods(results, task)
    if not methods:
        return None
    from defectbench.report.figures import _figure, _save

    fig = _figure(11.0, 3.6)
    axes = fig.subplots(1, len(CURVE_METRICS))
    for ax, metric in zip(axes, CURVE_METRICS):
        for m in methods:
            pts = curve_stats(m, metric)
            xs, mean = [p[0] for p in pts], [p[1].mean for p in pts]
            std = [p[1].std or 0.0 for p in pts]
            line, = ax.plot(xs, mean, marker="o", linewidth=1.6, label=m.label)
            ax.fill_between(xs, [a - s for a, s in zip(mean, std)], [a + s for a, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.2)
        ax.set(xlabel="points", ylabel=HEADERS[metric].rstrip(" ↑↓"), title=f"{HEADERS[metric]} — {task.key}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    return _save(fig, out_dir / f"interactive_{task.key}.png")
