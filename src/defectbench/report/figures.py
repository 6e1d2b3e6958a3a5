"""The report's figures (matplotlib, no display needed): PR and F-measure curves, qualitative grids.

Qualitative grids are like the paper's figures 5–9 — image, ground truth, then each method's map — with the
images picked automatically: per defect class the best, the median and the worst image by the S-measure
averaged over the methods shown (first seed of each), so both SAM's good cases and its failures appear.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from defectbench.atomic import atomic_write_bytes
from defectbench.report.results import ExperimentResults, ImageInfo, MethodResult, TaskInfo

DPI = 100


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _mean_curve(m: MethodResult, name: str) -> np.ndarray | None:
    curves = [j.curves[name] for j in m.jobs if j.curves is not None]
    return np.mean(np.stack(curves), axis=0) if curves else None


def _style(m: MethodResult) -> dict:
    if m.method_type in ("sam", "sam_prompt"):
        return {"linestyle": "--", "linewidth": 2.0}
    return {"linestyle": "-", "linewidth": 1.4}


def curve_figures(results: ExperimentResults, task: TaskInfo, out_dir: Path) -> list[Path]:
    """Write the PR curve and the F-measure-vs-threshold curve of a task; return their paths."""
    methods = [m for m in results.methods.get(task.key, []) if _mean_curve(m, "precision") is not None]
    if not methods:
        return []
    fig = _figure(5.2, 4.2)
    ax = fig.add_subplot()
    for m in methods:
        ax.plot(_mean_curve(m, "recall"), _mean_curve(m, "precision"), label=m.label, **_style(m))
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR curves — {task.key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    pr = _save(fig, out_dir / f"pr_{task.key}.png")
    fig = _figure(5.2, 4.2)
    ax = fig.add_subplot()
    for m in methods:
        thresholds = m.jobs[0].curves["thresholds"] / 255.0
        ax.plot(thresholds, _mean_curve(m, "fm"), label=m.label, **_style(m))
    ax.set(xlabel="threshold", ylabel="F-measure (β² = 0.3)", xlim=(0, 1), ylim=(0, 1.02),
           title=f"F-measure vs threshold — {task.key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fm = _save(fig, out_dir / f"fm_{task.key}.png")
    return [pr, fm]


def pick_examples(methods: list[MethodResult]) -> list[tuple[str, str, ImageInfo]]:
    """Return ``(class, which, image)`` for the best, median and worst test image of each class (mean S over methods)."""
    firsts = [min(m.jobs, key=lambda j: j.job.seed) for m in methods if m.jobs]
    if not firsts:
        return []
    common = set(firsts[0].images)
    for j in firsts[1:]:
        common &= set(j.images)
    by_class: dict[str, list[tuple[float, str]]] = {}
    for image_id in common:
        info = firsts[0].images[image_id]
        mean_s = float(np.mean([j.images[image_id].S_alpha for j in firsts]))
        by_class.setdefault(info.defect_class or "all", []).append((mean_s, image_id))
    picks = []
    for cls in sorted(by_class):
        ranked = sorted(by_class[cls], key=lambda t: (-t[0], t[1]))
        chosen: list[tuple[str, int]] = [("best", 0), ("median", len(ranked) // 2), ("worst", len(ranked) - 1)]
        seen: set[int] = set()
        for which, idx in chosen:
            if idx in seen:
                continue
            seen.add(idx)
            picks.append((cls, which, firsts[0].images[ranked[idx][1]]))
    return picks


def _read(path: str | None, kind: str) -> np.ndarray | None:
    from defectbench.data.imageio import read_gray8, read_image, read_mask

    if not path or not Path(path).is_file():
        return None
    try:
        if kind == "image":
            return read_image(path)
        if kind == "mask":
            return read_mask(path).astype(np.uint8) * 255
        return read_gray8(path)[0]
    except Exception:  # noqa: BLE001 - a figure panel must not stop the report
        return None


def qualitative_figure(results: ExperimentResults, task: TaskInfo, out_dir: Path) -> Path | None:
    """Write the qualitative grid of a task (rows: best/median/worst image per class; columns: image, GT, methods)."""
    methods = [m for m in results.methods.get(task.key, []) if m.jobs]
    picks = pick_examples(methods)
    if not picks:
        return None
    firsts = [min(m.jobs, key=lambda j: j.job.seed) for m in methods]
    ncols = 2 + len(methods)
    nrows = len(picks)
    fig = _figure(1.25 * ncols + 0.6, 1.25 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    titles = ["image", "ground truth", *(textwrap.fill(m.label, 14) for m in methods)]
    for r, (cls, which, info) in enumerate(picks):
        panels = [_read(info.image_path, "image"), _read(info.mask_path, "mask")]
        panels += [_read(j.images[info.image_id].map_path, "map") for j in firsts]
        for c, arr in enumerate(panels):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if arr is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                ax.imshow(arr, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
            if c >= 2:
                ax.set_xlabel(f"S {firsts[c - 2].images[info.image_id].S_alpha:.2f}", fontsize=6, labelpad=1)
        axes[r][0].set_ylabel(f"{cls}\n{which}\n{info.image_id}", fontsize=6)
    fig.suptitle(f"{task.key}: best, median and worst test image per class (by mean S over methods)", fontsize=8)
    return _save(fig, out_dir / f"qualitative_{task.key}.png")
