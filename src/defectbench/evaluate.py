"""Scoring maps on disk: match maps to masks by stem, read them by one rule, score in parallel, aggregate.

This layer sits above :mod:`defectbench.data` (files, naming rules) and :mod:`defectbench.metrics` (arrays in,
numbers out). Bad input never gives a silently wrong number. Every problem is collected and reported in one
message: maps without a mask (extra), masks without a map (missing), two files with the same stem, unreadable
or corrupt files, size mismatches (unless ``resize=True``: the map is resized to the mask with bilinear
interpolation, as the SOD evaluation toolkits do). Maps stored as 16-bit or colour images, and label masks, are
converted by the documented rules of :mod:`defectbench.data.imageio` and listed in ``notes``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from defectbench.data.imageio import images_by_stem, read_gray8, read_map_for_mask, read_mask_noted
from defectbench.errors import DataError
from defectbench.metrics.aggregate import SUMMARY_KEYS, aggregate
from defectbench.metrics.core import ImageScores, score_image
from defectbench.progress import counting_bar

PER_IMAGE_KEYS = SUMMARY_KEYS[1:]


@dataclass
class Pair:
    """One map to score: its id (stem), the map file, the mask file (None = all background)."""

    id: str
    pred: Path
    gt: Path | None
    defect_class: str | None = None
    split: str | None = None


@dataclass
class EvalResult:
    """Per-image scores, dataset summary, optional per-class and per-split summaries, and notes."""

    per_image: list[tuple[str, ImageScores]]
    summary: dict[str, float]
    pairs: list[Pair]
    notes: list[str] = field(default_factory=list)
    by_class: dict[str, dict[str, float]] = field(default_factory=dict)
    by_split: dict[str, dict[str, float]] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """Return one dict per image: id, class, split and the per-image metrics."""
        out = []
        for pair, (_, s) in zip(self.pairs, self.per_image):
            out.append({"id": pair.id, "class": pair.defect_class or "", "split": pair.split or "", **s.scalars()})
        return out

    def to_json(self) -> dict:
        """Return the JSON document written by ``defectbench eval --json``."""
        return {**self.summary, "by_class": self.by_class, "by_split": self.by_split, "notes": self.notes}


LISTED = 5
MAX_ERROR_LINES = 20


def _listing(paths: Sequence[str], limit: int = LISTED) -> str:
    """The first ``limit`` names, then how many more."""
    items = list(paths)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def match_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> Matched:
    """Pair every mask in ``gt_dir`` with the map of the same stem in ``pred_dir``; mismatches go to ``problems``."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds = images_by_stem(pred_dir, "prediction folder")
    gts = images_by_stem(gt_dir, "ground-truth folder")
    if not gts:
        raise DataError(f"{gt_dir}: no mask images found")
    return _check_pairs(preds, [Pair(stem, preds.get(stem, Path()), path) for stem, path in sorted(gts.items())], pred_dir)


class Matched(list):
    """The pairs that have a map, and what did not match (``problems``, reported with any read errors)."""

    def __init__(self, pairs: Iterable[Pair], problems: list[str]) -> None:
        super().__init__(pairs)
        self.problems = problems


def _check_pairs(preds: dict[str, Path], pairs: list[Pair], pred_dir: Path) -> Matched:
    wanted = {p.id for p in pairs}
    missing = sorted(p.id for p in pairs if p.id not in preds)
    extra = sorted(preds[s].name for s in preds if s not in wanted)
    problems = []
    if missing:
        problems.append(f"{len(missing)} masks have no map in {pred_dir} (matched by file stem): {_listing(missing)}")
    if extra:
        problems.append(f"{len(extra)} maps in {pred_dir} have no mask (matched by file stem): {_listing(extra)}")
    return Matched([p for p in pairs if p.id in preds], problems)


def match_dataset(pred_dir: str | os.PathLike, samples: Sequence, split: str | None = None) -> Matched:
    """Pair the maps in ``pred_dir`` with the masks of dataset samples (extra maps are an error)."""
    pred_dir = Path(pred_dir)
    preds = images_by_stem(pred_dir, "prediction folder")
    pairs = [Pair(s.id, preds.get(s.id, Path()), s.mask_path, s.defect_class, split) for s in samples]
    return _check_pairs(preds, pairs, pred_dir)


def _read_pair(pair: Pair, resize: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if pair.gt is None:  # no mask file: all background, at the map's own size
        pred, notes = read_gray8(pair.pred)
        return pred, np.zeros(pred.shape, dtype=bool), notes
    gt, gt_notes = read_mask_noted(pair.gt)
    pred, notes = read_map_for_mask(pair.pred, gt.shape, resize)
    return pred, gt, notes + [f"mask {n}" for n in gt_notes]


def _score_chunk(args: tuple[list[Pair], bool]) -> list[tuple[str, ImageScores | None, list[str], str | None]]:
    pairs, resize = args
    out = []
    for pair in pairs:
        try:
            pred, gt, notes = _read_pair(pair, resize)
        except DataError as exc:
            out.append((pair.id, None, [], str(exc)))
            continue
        out.append((pair.id, score_image(pred, gt), notes, None))
    return out


def default_workers() -> int:
    """Return the default number of worker processes: the usable CPU cores (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def score_pairs(pairs: Sequence[Pair], workers: int | None = None, resize: bool = False, progress: bool = True) -> tuple[list[tuple[str, ImageScores]], list[str]]:
    """Score every pair (in parallel); raise one DataError naming every unreadable or mismatched file."""
    workers = default_workers() if workers is None else max(1, workers)
    chunk = 32
    chunks = [(list(pairs[i : i + chunk]), resize) for i in range(0, len(pairs), chunk)]
    results: list[tuple[str, ImageScores | None, list[str], str | None]] = []
    with counting_bar("scoring", len(pairs), progress) as advance:
        if workers == 1 or len(chunks) == 1:
            for c in chunks:
                part = _score_chunk(c)
                results += part
                advance(len(part))
        else:
            ctx = get_context("fork") if hasattr(os, "fork") else get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                for part in pool.map(_score_chunk, chunks):
                    results += part
                    advance(len(part))
    errors = [err for _, _, _, err in results if err]
    problems = list(getattr(pairs, "problems", []))
    if errors:
        shown = errors[:MAX_ERROR_LINES] + ([f"... and {len(errors) - MAX_ERROR_LINES} more"] if len(errors) > MAX_ERROR_LINES else [])
        problems.append(f"{len(errors)} of {len(pairs)} images could not be scored:\n    " + "\n    ".join(shown))
    if problems:
        raise DataError("cannot score these maps:\n  " + "\n  ".join(problems))
    notes_by_kind: dict[str, list[str]] = {}
    for pair, (_, _, notes, _) in zip(pairs, results):
        for n in notes:
            notes_by_kind.setdefault(n, []).append(pair.pred.name)
    notes = [f"{len(files)} maps: {kind}: {_listing(files)}" for kind, files in notes_by_kind.items()]
    return [(i, s) for i, s, _, _ in results], notes


SD900_STEM = re.compile(r"^(In|Pa|Sc)_(\d+)$")


def infer_known_dataset(pairs: Sequence[Pair]) -> None:
    """Fill in class and split of pairs whose stems identify SD-saliency-900 or MT images (from the split files)."""
    from defectbench.data.splits import read_split, sd900_is_train, split_file

    if all(SD900_STEM.match(p.id) and 1 <= int(SD900_STEM.match(p.id).group(2)) <= 300 for p in pairs):
        for p in pairs:
            p.defect_class = p.defect_class or p.id.split("_")[0]
            p.split = p.split or ("train" if sd900_is_train(p.id) else "test")
        return
    mt_train = set(read_split(split_file("mt", "1to1-train")))
    mt_test = set(read_split(split_file("mt", "1to1-test")))
    mt_free = set(read_split(split_file("mt", "free")))
    if all(p.id in mt_train | mt_test | mt_free for p in pairs):
        for p in pairs:
            if p.split is None:
                p.split = "1to1-train" if p.id in mt_train else "1to1-test" if p.id in mt_test else "free"
            if p.id in mt_free:
                p.defect_class = p.defect_class or "Free"


def _group(per_image: list[tuple[str, ImageScores]], keys: list[str | None]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[ImageScores]] = {}
    for (_, s), k in zip(per_image, keys):
        if k:
            groups.setdefault(k, []).append(s)
    return {k: aggregate(v) for k, v in sorted(groups.items())} if len(groups) > 0 else {}


def summarise(pairs: list[Pair], per_image: list[tuple[str, ImageScores]], notes: list[str]) -> EvalResult:
    """Aggregate per-image scores into an :class:`EvalResult` with per-class and per-split rows."""
    result = EvalResult(per_image, aggregate([s for _, s in per_image]), pairs, notes)
    result.by_class = _group(per_image, [p.defect_class for p in pairs])
    result.by_split = _group(per_image, [p.split for p in pairs])
    train = [p for p in pairs if p.split and "train" in p.split]
    if train:
        result.notes.insert(0, (
            f"WARNING: {len(train)} of {len(pairs)} scored images belong to a TRAINING split "
            f"({train[0].split}); numbers that include them are not test scores — read the per-split rows"
        ))
    return result


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, workers: int | None = None,
                     resize: bool = False, progress: bool = False) -> EvalResult:
    """Score every map in ``pred_dir`` against the mask of the same stem in ``gt_dir``."""
    pairs = match_folders(pred_dir, gt_dir)
    infer_known_dataset(pairs)
    per_image, notes = score_pairs(pairs, workers, resize, progress)
    return summarise(pairs, per_image, notes)


def evaluate_split(pred_dir: str | os.PathLike, dataset, split: str, workers: int | None = None,
                   resize: bool = False, progress: bool = False) -> EvalResult:
    """Score the maps in ``pred_dir`` against the masks of one split of a loaded dataset."""
    pairs = match_dataset(pred_dir, dataset.split(split), split)
    per_image, notes = score_pairs(pairs, workers, resize, progress)
    return summarise(pairs, per_image, notes)
