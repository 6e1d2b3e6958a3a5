"""Experiment configurations: YAML files listing datasets, splits, methods and seeds, validated into dataclasses.

A configuration (see ``configs/quick.yaml`` and ``configs/paper.yaml``)::

    experiment: quick                  # results go to runs/<experiment>/ (default: the file's stem)
    device: auto                       # auto | cpu | cuda | cuda:N
    seeds: [0, 1, 2]                   # seeds of trained methods (a method may override with its own seeds)
    datasets:
      - name: mt                       # sd900 | mt | nrsd | folder:<path> (give folders an id)
        id: mt                         # short name used in folders and tables (default: the name)
        tasks:                         # train split -> test split pairs (default: train -> test)
          - {train: 1to1-train, test: 1to1-test}
          # the labelled-images axis: each trained method gets one job per size (nested, stratified, seeded
          # subsets of the train split; ``all`` = every image), trained by one step rule (see LabelAxis); and the
          # corruption axis: every method scored again on the test images under each corruption
          - {train: 1to1-train, test: 1to1-test, labels: [8, 32, all], corruptions: [saltpepper-10, jpeg-10]}
        extra_eval: [free]             # further splits scored with each task's model (never trained on)
    methods:
      # a saliency network trained per task and seed (train: any TrainConfig option; recipe defaults per model)
      - {name: litenet, type: sod, model: litenet, train: {epochs: 2, size: 160}}
      # a trained network loaded from a checkpoint (a path, or shipped:<weights>); {name} = dataset name
      - {name: litenet-shipped, type: sod, model: litenet, checkpoint: "shipped:{name}"}
      # SAM zero-shot + a mask selection: oracle-combine / oracle-best (read the ground truth) or prior / learned
      - {name: sam-h-oracle, type: sam, model: vit_h, select: oracle-combine}
      # someone else's maps, one PNG per image named by its stem; {dataset} = dataset id, {split} = test split
      - {name: edrnet-authors, type: maps, path: "maps/EDRNet/{dataset}"}
    speed: {device: auto, image_size: 352, sam_mode: encoder, max_seconds: 10, methods: [litenet]}  # Table 7

Common method keys: ``label`` (row label in tables), ``seeds``, ``datasets`` (restrict to these dataset ids),
``resources`` (what a Ray task of the method asks for: ``{cpu: 4, gpu: 1, <custom>: n}``; ignored by local runs).
``sod``: ``model``, ``train``, ``checkpoint``, ``model_args``, ``predict: {batch}``. ``sam``: ``model``,
``select``, ``checkpoint`` (default: the official file in the checkpoints folder), ``allow_unofficial`` (true: use
a checkpoint whose SHA-256 is not the official one), ``amg`` (mask generation settings), ``output`` (binary | soft
| score), ``generator`` (fast | official), ``train_limit``. ``maps``:
``path`` or ``paths`` (dataset id -> folder), ``resize`` (resize maps to the mask size instead of failing).
``anomaly``: ``model`` (patchcore | padim), fitted on defect-free images only (see
:mod:`defectbench.bench.families.anomaly` for its keys). ``sam_prompt``: ``model``, ``prompt`` (point-largest |
point-per-region | box-largest | box-per-region | box-all | interactive), ``choice`` (score | oracle), ``jitter``,
``k``, ``prompts_from`` (``{model, weights}`` or ``{method}``), ``threshold``, ``min_area``, ``fuse``,
``checkpoint``, ``allow_unofficial`` (see :mod:`defectbench.bench.families.sam_prompt`). Relative paths are taken from the current directory.

Every problem is reported as one :class:`~defectbench.errors.ConfigError` line naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from defectbench.bench.families import FAMILY_MODULES, family
from defectbench.errors import ConfigError
from defectbench.runtime import DEVICE_CHOICES, is_device_name

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
KNOWN_SPLITS: dict[str, tuple[str, ...]] = {
    "sd900": ("train", "test"),
    "mt": ("1to1-train", "1to1-test", "7to3-train", "7to3-test", "free", "free-train", "free-calib", "free-test"),
    "nrsd": ("train", "test"),
}
TOP_KEYS = {"experiment", "description", "device", "data_root", "seeds", "datasets", "methods", "speed"}
DATASET_KEYS = {"name", "id", "tasks", "extra_eval"}
TASK_KEYS = {"train", "test", "labels", "corruptions"}
LABEL_KEYS = {"sizes", "steps", "min_epochs", "val_min", "single_seed_above"}
COMMON_METHOD_KEYS = frozenset({"name", "type", "seeds", "datasets", "label", "resources"})
SPEED_KEYS = {"device", "image_size", "methods", "sam_mode", "max_seconds"}


@dataclass(frozen=True)
class LabelAxis:
    """How many labelled training images the trained methods of a task get, and the one training-length rule.

    A job with ``n`` labelled images trains for ``max(ceil(steps / steps_per_epoch), min_epochs)`` epochs, where
    ``steps_per_epoch`` follows from the images it trains on and the method's batch: about ``steps`` optimizer
    steps at every size, never fewer than ``min_epochs`` passes over the data. Subsets of at least ``val_min``
    images carve the method's validation hold-out from the subset (best epoch kept); smaller ones have none and
    keep the last epoch. Sizes above ``single_seed_above`` run with the method's first seed only. ``None`` in
    ``sizes`` is ``all``: the whole training split, under the same rule.
    """

    sizes: tuple[int | None, ...]
    steps: int = 600
    min_epochs: int = 8
    val_min: int = 100
    single_seed_above: int | None = None

    def seeds_for(self, size: int | None, seeds: tuple[int, ...]) -> tuple[int, ...]:
        """The seeds a size runs with: all of them, or the first one above ``single_seed_above``."""
        if self.single_seed_above is not None and (size is None or size > self.single_seed_above):
            return seeds[:1]
        return seeds

    def rule(self) -> dict[str, Any]:
        """The training-length rule as recorded in each job's spec and record."""
        return {"steps": self.steps, "min_epochs": self.min_epochs, "val_min": self.val_min}


@dataclass(frozen=True)
class TaskSpec:
    """One dataset split pair: a model is trained on ``train`` and scored on ``test`` (plus ``extra`` splits).

    ``labels`` and ``corruptions`` are the task's axes (they make more jobs, see :func:`~defectbench.bench.jobs.
    expand_jobs`); ``corruption`` is set on the task a corrupted job scores (its test images under that corruption).
    """

    dataset_id: str
    dataset: str
    train: str | None
    test: str
    extra: tuple[str, ...] = ()
    labels: LabelAxis | None = None
    corruptions: tuple[str, ...] = ()
    corruption: str | None = None

    @property
    def key(self) -> str:
        """Folder / table key of the task, ``<dataset id>-<test split>`` (``~<corruption>`` for a corrupted one)."""
        base = f"{self.dataset_id}-{self.test}"
        return f"{base}~{self.corruption}" if self.corruption else base

    @property
    def clean_key(self) -> str:
        """The key of the uncorrupted task."""
        return f"{self.dataset_id}-{self.test}"

    def corrupted(self, name: str) -> TaskSpec:
        """The task of the test images under corruption ``name`` (no extra splits; the label rule kept for the record)."""
        return TaskSpec(self.dataset_id, self.dataset, self.train, self.test, (), self.labels, (), name)

    def clean(self) -> TaskSpec:
        """The uncorrupted task of a corrupted one (its extra splits and corruption axis are not kept)."""
        return TaskSpec(self.dataset_id, self.dataset, self.train, self.test, (), self.labels)

    def spec(self) -> dict[str, Any]:
        """What of the task determines a job's result: the splits (and the corruption when set; axes never)."""
        out: dict[str, Any] = {"dataset_id": self.dataset_id, "dataset": self.dataset, "train": self.train,
                               "test": self.test, "extra": list(self.extra)}
        if self.corruption:
            out["corruption"] = self.corruption
        return out


@dataclass(frozen=True)
class MethodSpec:
    """One method row of the comparison: its type (``sod``, ``sam``, ``maps``), options and seeds."""

    name: str
    type: str
    options: dict[str, Any]
    seeds: tuple[int, ...]
    datasets: tuple[str, ...] | None = None
    resources: dict[str, float] | None = None
    settings: Any = field(default=None, compare=False)  # the family's typed options (bench.families.<type>)

    @property
    def uses_gt(self) -> bool:
        """True for methods that read the test ground truth (SAM's oracle selections, ground-truth prompts, the oracle
        mask choice): never a fair deployment number."""
        if self.type == "sam":
            from defectbench.methods.sam.selection import is_oracle

            return is_oracle(str(self.options.get("select", "")))
        if self.type == "sam_prompt":
            from defectbench.bench.families.sam_prompt import uses_gt

            return uses_gt(self)
        return False

    @property
    def label(self) -> str:
        """The row label of tables: the configured label, else the name; oracle methods always say so."""
        label = str(self.options.get("label") or self.name)
        if self.uses_gt and "oracle" not in label.lower():
            label += " (oracle)"
        return label

    def applies_to(self, dataset_id: str) -> bool:
        """Return True when the method is run on the dataset ``dataset_id``."""
        return self.datasets is None or dataset_id in self.datasets


@dataclass(frozen=True)
class SpeedSpec:
    """What Table 7 measures: which methods, on which device, at which input size."""

    device: str = "auto"
    image_size: int = 352
    methods: tuple[str, ...] | None = None
    sam_mode: str = "encoder"
    max_seconds: float = 10.0


@dataclass
class ExperimentConfig:
    """A validated experiment: datasets with their tasks, methods, seeds, and the speed measurements."""

    experiment: str
    tasks: list[TaskSpec]
    methods: list[MethodSpec]
    device: str = "auto"
    data_root: str | None = None
    speed: SpeedSpec | None = None
    description: str = ""
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def config_hash(self) -> str:
        """Return a short hash of the canonical configuration (key order and comments do not matter)."""
        return spec_hash(self.raw)

    def method(self, name: str) -> MethodSpec:
        """Return the method called ``name``."""
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(name)


def spec_hash(obj: Any) -> str:
    """Return a 16-hex-digit hash of a JSON-able object in canonical form."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file."""
    from defectbench.yamlio import load_yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; see configs/quick.yaml for an example")
    return parse_config(load_yaml(path, "experiment config", mapping=False), source=path)


def parse_config(raw: Any, source: Path | None = None) -> ExperimentConfig:
    """Validate a configuration already read into Python objects (``source`` names it in errors)."""
    where = str(source) if source else "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with 'datasets' and 'methods' at the top level")
    _no_unknown(raw, TOP_KEYS, where)
    experiment = str(raw.get("experiment") or (source.stem if source else ""))
    if not experiment or not NAME_RE.match(experiment):
        raise ConfigError(f"{where}: 'experiment' must be a folder-safe name (letters, digits, . _ + -), got {experiment!r}")
    device = str(raw.get("device", "auto"))
    if not is_device_name(device):
        raise ConfigError(f"{where}: 'device' must be {DEVICE_CHOICES}, got {device!r}")
    seeds = _seeds(raw.get("seeds", [0]), f"{where}: 'seeds'")
    tasks = _tasks(raw.get("datasets"), where)
    methods = _methods(raw.get("methods"), seeds, {t.dataset_id for t in tasks}, where)
    _check_tasks(methods, tasks, where)
    speed = _speed(raw.get("speed"), {m.name for m in methods}, where)
    data_root = raw.get("data_root")
    return ExperimentConfig(experiment, tasks, methods, device, str(data_root) if data_root else None, speed,
                            str(raw.get("description", "")), source, raw)


def _no_unknown(obj: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise ConfigError(f"{where} must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} lists a seed twice: {value!r}")
    return tuple(value)


def _dataset_id(name: str) -> str:
    if name.startswith("folder:"):
        stem = Path(name.split(":", 1)[1]).name
        return re.sub(r"[^A-Za-z0-9._+-]", "_", stem) or "folder"
    return name


def _tasks(value: Any, where: str) -> list[TaskSpec]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: 'datasets' must be a non-empty list (e.g. - {{name: sd900, tasks: [{{train: train, test: test}}]}})")
    tasks: list[TaskSpec] = []
    ids: set[str] = set()
    for i, entry in enumerate(value):
        w = f"{where}: datasets[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"{w} must be a mapping with a 'name'")
        _no_unknown(entry, DATASET_KEYS, w)
        name = str(entry["name"])
        if not name.startswith("folder:") and name not in KNOWN_SPLITS:
            raise ConfigError(f"{w}: unknown dataset {name!r}; use sd900, mt, nrsd or folder:<path>")
        ds_id = str(entry.get("id") or _dataset_id(name))
        if not NAME_RE.match(ds_id):
            raise ConfigError(f"{w}: id {ds_id!r} must be folder-safe (letters, digits, . _ + -)")
        if ds_id in ids:
            raise ConfigError(f"{w}: dataset id {ds_id!r} is used twice; give one of them another 'id'")
        ids.add(ds_id)
        known = KNOWN_SPLITS.get(name)
        extra = tuple(str(s) for s in (entry.get("extra_eval") or []))
        raw_tasks = entry.get("tasks") or [{"train": "train", "test": "test"}]
        if not isinstance(raw_tasks, list):
            raise ConfigError(f"{w}: 'tasks' must be a list of {{train: <split>, test: <split>}}")
        for j, t in enumerate(raw_tasks):
            wt = f"{w}.tasks[{j}]"
            if not isinstance(t, dict) or "test" not in t:
                raise ConfigError(f"{wt} must be a mapping with 'test' (and usually 'train')")
            _no_unknown(t, TASK_KEYS, wt)
            train = str(t["train"]) if t.get("train") else None
            labels = _labels(t.get("labels"), name, train, f"{wt}: labels")
            corruptions = _corruptions(t.get("corruptions"), f"{wt}: corruptions")
            test = str(t["test"])
            for split in (train, test, *extra):
                if split is not None and known is not None and split not in known:
                    raise ConfigError(f"{wt}: {name} has no split {split!r}; its splits are {', '.join(known)}")
            if train is not None and (train == test or train in extra):
                raise ConfigError(f"{wt}: split {train!r} is both trained on and scored; a model must never be scored on its training images")
            task = TaskSpec(ds_id, name, train, test, tuple(s for s in extra if s != test), labels, corruptions)
            if any(x.key == task.key for x in tasks):
                raise ConfigError(f"{wt}: task {task.key} is listed twice")
            tasks.append(task)
    return tasks


def _labels(value: Any, dataset: str, train: str | None, where: str) -> LabelAxis | None:
    """Validate a task's ``labels`` (a list of sizes, or a mapping with ``sizes`` and the step rule)."""
    if value is None:
        return None
    raw = {"sizes": value} if isinstance(value, list) else value
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a list of image counts (e.g. [8, 16, 32, all]) or a mapping with 'sizes'")
    _no_unknown(raw, LABEL_KEYS, where)
    if train is None:
        raise ConfigError(f"{where}: the task has no train split to take labelled images from")
    sizes = raw.get("sizes")
    if not isinstance(sizes, list) or not sizes:
        raise ConfigError(f"{where}: 'sizes' must be a non-empty list of image counts and/or 'all'")
    available = shipped_split_size(dataset, train)
    out: list[int | None] = []
    for v in sizes:
        if v == "all":
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{where}: {v!r} is not a number of labelled images; use whole numbers >= 1 or 'all'")
        if available is not None and v > available:
            raise ConfigError(f"{where}: {v} labelled images asked of {dataset}/{train}, which has {available}; "
                              f"use at most {available} (or 'all')")
        out.append(v)
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: a size is listed twice: {sizes!r}")
    ints = {}
    for key, default, low in (("steps", 600, 1), ("min_epochs", 8, 1), ("val_min", 100, 2)):
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{where}: '{key}' must be a whole number >= {low}, got {v!r}")
        ints[key] = v
    above = raw.get("single_seed_above")
    if above is not None and (isinstance(above, bool) or not isinstance(above, int) or above < 1):
        raise ConfigError(f"{where}: 'single_seed_above' must be a whole number >= 1, got {above!r}")
    ordered = sorted(out, key=lambda n: float("inf") if n is None else n)
    return LabelAxis(tuple(ordered), ints["steps"], ints["min_epochs"], ints["val_min"], above)


def shipped_split_size(dataset: str, split: str) -> int | None:
    """The number of images of a split whose list ships with the package (None for NRSD-MN and folders)."""
    from defectbench.data.splits import read_split, split_file

    path = split_file(dataset, split)
    return len(read_split(path)) if dataset in ("sd900", "mt") and path.is_file() else None


def _corruptions(value: Any, where: str) -> tuple[str, ...]:
    """Validate a task's ``corruptions`` (names such as ``saltpepper-10``; see :mod:`defectbench.data.corruptions`)."""
    if value is None:
        return ()
    from defectbench.data.corruptions import parse_corruption

    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of corruption names (e.g. [saltpepper-10, jpeg-10])")
    for name in value:
        try:
            parse_corruption(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a corruption is listed twice")
    return tuple(str(v) for v in value)


def _methods(value: Any, seeds: tuple[int, ...], dataset_ids: set[str], where: str) -> list[MethodSpec]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: 'methods' must be a non-empty list")
    methods: list[MethodSpec] = []
    for i, entry in enumerate(value):
        w = f"{where}: methods[{i}]"
        if not isinstance(entry, dict) or "name" not in entry or "type" not in entry:
            raise ConfigError(f"{w} must be a mapping with 'name' and 'type' ({', '.join(FAMILY_MODULES)})")
        mtype = str(entry["type"])
        if mtype not in FAMILY_MODULES:
            raise ConfigError(f"{w}: unknown type {mtype!r}; use one of {', '.join(FAMILY_MODULES)}")
        fam = family(mtype)
        _no_unknown(entry, COMMON_METHOD_KEYS | fam.KEYS, w)
        name = str(entry["name"])
        if not NAME_RE.match(name):
            raise ConfigError(f"{w}: name {name!r} must be folder-safe (letters, digits, . _ + -)")
        if any(m.name == name for m in methods):
            raise ConfigError(f"{w}: method name {name!r} is used twice")
        if mtype in ("sod", "sam", "sam_prompt") and not entry.get("model"):
            raise ConfigError(f"{w}: a {mtype} method needs 'model' (e.g. {'litenet' if mtype == 'sod' else 'vit_h'})")
        for key in ("train", "predict", "amg", "model_args"):
            if entry.get(key) is not None and not isinstance(entry[key], dict):
                raise ConfigError(f"{w}: {key!r} must be a mapping of settings")
        trained = mtype == "sod" and not entry.get("checkpoint")
        default_seeds = seeds if trained else (0,)
        m_seeds = _seeds(entry["seeds"], f"{w}: 'seeds'") if "seeds" in entry else default_seeds
        ds = entry.get("datasets")
        if ds is not None:
            if not isinstance(ds, list) or not all(isinstance(d, str) for d in ds):
                raise ConfigError(f"{w}: 'datasets' must be a list of dataset ids")
            unknown = [d for d in ds if d not in dataset_ids]
            if unknown:
                raise ConfigError(f"{w}: dataset {unknown[0]!r} is not among the config's datasets ({', '.join(sorted(dataset_ids))})")
            ds = tuple(ds)
        resources = parse_resources(entry.get("resources"), w)
        options = {k: v for k, v in entry.items() if k not in ("name", "type", "seeds", "datasets", "resources")}
        methods.append(MethodSpec(name, mtype, options, m_seeds, ds, resources, fam.parse_options(entry, w)))
    for i, m in enumerate(methods):  # references between methods (prompts_from: {method: ...})
        check = getattr(family(m.type), "check_methods", None)
        if check is not None:
            check(m, methods, f"{where}: methods[{i}]")
    return methods


def _check_tasks(methods: list[MethodSpec], tasks: list[TaskSpec], where: str) -> None:
    """Let each family refuse a task it cannot run on (its ``check_task(method, task, where)``), before any work."""
    for i, m in enumerate(methods):
        check = getattr(family(m.type), "check_task", None)
        for task in tasks if check is not None else ():
            if m.applies_to(task.dataset_id):
                check(m, task, f"{where}: methods[{i}]")


def parse_resources(value: Any, where: str) -> dict[str, float] | None:
    """What a Ray task of the method asks for (``{cpu: 4, gpu: 1, <custom>: n}``); None when not given."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()):
        raise ConfigError(f"{where}: 'resources' must map resource names to amounts >= 0, e.g. {{gpu: 1, cpu: 4}}")
    return {k: float(v) for k, v in value.items()}


def _speed(value: Any, method_names: set[str], where: str) -> SpeedSpec | None:
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'speed' must be a mapping (device, image_size, methods, sam_mode)")
    w = f"{where}: speed"
    _no_unknown(value, SPEED_KEYS, w)
    methods = value.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ConfigError(f"{w}: 'methods' must be a list of method names")
        unknown = [m for m in methods if m not in method_names]
        if unknown:
            raise ConfigError(f"{w}: method {unknown[0]!r} is not among the config's methods")
        methods = tuple(methods)
    mode = str(value.get("sam_mode", "encoder"))
    if mode not in ("encoder", "amg"):
        raise ConfigError(f"{w}: 'sam_mode' must be encoder or amg")
    size = value.get("image_size", 352)
    if not isinstance(size, int) or size < 32:
        raise ConfigError(f"{w}: 'image_size' must be an integer >= 32")
    device = str(value.get("device", "auto"))
    if not is_device_name(device):
        raise ConfigError(f"{w}: 'device' must be {DEVICE_CHOICES}, got {device!r}")
    return SpeedSpec(device, size, methods, mode, float(value.get("max_seconds", 10.0)))
