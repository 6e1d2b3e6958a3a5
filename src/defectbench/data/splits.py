"""Deterministic train/test splits, stored as text files (one sample id per line) in the package.

Rules (``defectbench data split`` regenerates every file bit-identically from them):

* ``sd900``: the community split of EDRNet and the defect-saliency literature. Per class
  (In, Pa, Sc), image numbers 1-60, 101-160, 201-260 train (540), 61-100, 161-200, 261-300 test (360).
* ``mt``: no published list exists. Stratified by class; within a class the ids are ordered by
  ``sha256(f"{seed}:{id}")`` (independent of library versions) and the first ``n_c`` train.
  ``n_c`` = floor(share * class size), the remaining images of the target total going to the
  classes with the largest remainders (ties by class name). 1:1 gives 196/196, 7:3 gives 274/118.
  ``free`` lists the defect-free MT_Free images (never used for training by the supervised methods).
* defect-free splits (MT_Free, a ``folder:`` dataset's ``good/`` images; :func:`free_splits`), for the methods
  that fit on defect-free images only: no stratification; the ids are ordered by ``sha256(f"{seed}:{id}")`` and the
  first ``floor(n * 0.5 + 0.5)`` go to ``free-train`` (fitting), the next ``floor(n * 0.2 + 0.5)`` to
  ``free-calib`` (the score-to-map rule), the rest to ``free-test`` (the false-alarm set of every method). MT's
  952 give 476 / 190 / 286. ``free`` stays the list of all of them.
* ``nrsd``: as published, the layout's train and test folders.

Labelled subsets of a training split (the label-efficiency axis, :func:`label_subset`): the split's ids are ranked
once per seed so that every prefix is stratified by defect class, and the subset of ``n`` images is the first ``n``
of that ranking. Within a class ids are ordered by ``sha256(f"labels:{seed}:{id}")``; the ranking then takes, at
each position ``k`` (1-based), the next id of the class whose quota ``k * share_c - taken_c`` is largest (ties by
class name), ``share_c`` being the class's share of the split. So subsets are nested (each smaller set lies inside
the larger one of the same seed), every class holds ``floor`` or ``ceil`` of its share at every size, and the lists
depend on the ids and the seed only (no library's random generator). A split without class labels (ids without a
class, e.g. a ``folder:`` dataset without classes) is one class: the subset is the first ``n`` ids in hash order.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path

SPLIT_SEED = 0
# shares of the defect-free images that fit, calibrate and test (the rest) the methods trained on good parts only
FREE_SHARES = (("free-train", 0.5), ("free-calib", 0.2))
FREE_TEST = "free-test"
FREE_SPLITS = (*(name for name, _ in FREE_SHARES), FREE_TEST)
SPLITS_PACKAGE = "defectbench.data.split_files"


def split_dir() -> Path:
    """Return the folder holding the split files shipped with the package."""
    return Path(str(resources.files(SPLITS_PACKAGE)))


def split_file(dataset: str, split: str) -> Path:
    """Return the path of the split file for ``dataset`` / ``split``."""
    return split_dir() / f"{dataset}_{split}.txt"


def read_split(path: Path) -> list[str]:
    """Read a split file: one sample id per line, blank lines ignored."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def format_split(ids: list[str]) -> str:
    """Return the text of a split file for ``ids``."""
    return "".join(f"{i}\n" for i in ids)


def sd900_number(stem: str) -> int:
    """Return the image number of an SD-saliency-900 stem such as ``In_61``."""
    return int(stem.rsplit("_", 1)[1])


def sd900_is_train(stem: str) -> bool:
    """Return True when an SD-saliency-900 image belongs to the community training split."""
    n = sd900_number(stem)
    return any(lo <= n <= lo + 59 for lo in (1, 101, 201))


def sd900_splits(ids: list[str]) -> dict[str, list[str]]:
    """Return the SD-saliency-900 540/360 community split of ``ids``."""
    key = _natural_key
    train = sorted((i for i in ids if sd900_is_train(i)), key=key)
    test = sorted((i for i in ids if not sd900_is_train(i)), key=key)
    return {"train": train, "test": test}


def _natural_key(stem: str) -> tuple:
    prefix, _, num = stem.rpartition("_")
    return (prefix, int(num)) if num.isdigit() else (stem, 0)


def _hash_order(ids: list[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())


def stratified_split(by_class: dict[str, list[str]], train_share: float, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """Split ids stratified by class into (train, test) with a version-independent seeded order."""
    total = sum(len(v) for v in by_class.values())
    target = int(math.floor(total * train_share + 0.5))
    classes = sorted(by_class)
    exact = {c: len(by_class[c]) * train_share for c in classes}
    n_train = {c: int(math.floor(exact[c])) for c in classes}
    rest = target - sum(n_train.values())
    for c in sorted(classes, key=lambda c: (-(exact[c] - n_train[c]), c))[:max(rest, 0)]:
        n_train[c] += 1
    train: list[str] = []
    test: list[str] = []
    for c in classes:
        order = _hash_order(sorted(by_class[c]), seed)
        train += sorted(order[: n_train[c]])
        test += sorted(order[n_train[c]:])
    return train, test


def mt_splits(by_class: dict[str, list[str]], seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    """Return the MT splits: 1:1 and 7:3 stratified by defect class, and the defect-free list."""
    defects = {c: v for c, v in by_class.items() if c != "Free"}
    out: dict[str, list[str]] = {}
    for tag, share in (("1to1", 0.5), ("7to3", 0.7)):
        train, test = stratified_split(defects, share, seed)
        out[f"{tag}-train"], out[f"{tag}-test"] = train, test
    out["free"] = sorted(by_class.get("Free", []))
    out.update(free_splits(out["free"], seed))
    return out


def free_splits(ids: list[str], seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    """Divide defect-free ids into ``free-train`` / ``free-calib`` / ``free-test`` (seeded order, no stratification)."""
    order = _hash_order(sorted(ids), seed)
    out: dict[str, list[str]] = {}
    start = 0
    for name, share in FREE_SHARES:
        n = int(math.floor(len(order) * share + 0.5))
        out[name] = sorted(order[start:start + n])
        start += n
    out[FREE_TEST] = sorted(order[start:])
    return out


def stored_or_computed(dataset: str, names: tuple[str, ...], compute) -> dict[str, list[str]]:
    """Read the shipped split files of ``dataset``; fall back to ``compute()`` for any that are absent."""
    out: dict[str, list[str]] = {}
    computed = None
    for name in names:
        path = split_file(dataset, name)
        if path.is_file():
            out[name] = read_split(path)
        else:
            computed = computed if computed is not None else compute()
            out[name] = computed[name]
    return out


def write_splits(dataset: str, splits: dict[str, list[str]], folder: Path | None = None) -> list[Path]:
    """Write one split file per split into ``folder`` (default: the package's split folder)."""
    folder = Path(folder) if folder is not None else split_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ids in splits.items():
        path = folder / f"{dataset}_{name}.txt"
        path.write_text(format_split(ids))
        written.append(path)
    return written


def label_ranking(by_class: dict[str, list[str]], seed: int) -> list[str]:
    """Rank the ids of a split so that every prefix is a class-stratified subset (the rule of this module's docstring)."""
    classes = sorted(by_class)
    queues = {c: sorted(set(by_class[c]), key=lambda i: hashlib.sha256(f"labels:{seed}:{i}".encode()).hexdigest())
              for c in classes}
    total = sum(len(q) for q in queues.values())
    taken = {c: 0 for c in classes}
    ranking: list[str] = []
    for k in range(1, total + 1):
        open_classes = [c for c in classes if taken[c] < len(queues[c])]
        # quota k * share_c - taken_c, scaled by total to stay in integers (exact ties, broken by class name)
        best = min(open_classes, key=lambda c: (taken[c] * total - k * len(queues[c]), c))
        ranking.append(queues[best][taken[best]])
        taken[best] += 1
    return ranking


def label_subset(by_class: dict[str, list[str]], n: int, seed: int) -> list[str]:
    """Return the ``n`` labelled training ids of ``seed`` (nested in the larger subsets of the same seed), sorted."""
    total = sum(len(set(v)) for v in by_class.values())
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
        raise ValueError(f"a labelled subset needs 1 <= n <= {total} images, got {n!r}")
    return sorted(label_ranking(by_class, seed)[:n], key=_natural_key)
