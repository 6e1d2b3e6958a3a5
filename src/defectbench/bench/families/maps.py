"""The ``maps`` family: saliency maps made elsewhere, read from a folder by image id and scored like ours.

Every image of the task's test split must have a map; train-split and extra-split images are scored too when
present (so leaks show in the report). Maps go through the one loop into the job's folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectbench.bench.config import MethodSpec, TaskSpec
from defectbench.bench.executors import JobContext, Produced, eval_items
from defectbench.bench.jobs import Job
from defectbench.errors import ConfigError, DataError
from defectbench.methods.base import write_maps

KEYS = frozenset({"path", "paths", "resize"})


@dataclass(frozen=True)
class MapsOptions:
    """Maps made elsewhere: one folder (``path``, placeholders allowed) or one per dataset id (``paths``)."""

    path: str | None = None
    paths: dict[str, str] | None = None
    resize: bool = False


def parse_options(entry: dict[str, Any], where: str) -> MapsOptions:
    """Validate and type a ``maps`` method entry."""
    if not (entry.get("path") or entry.get("paths")):
        raise ConfigError(f"{where}: a maps method needs 'path' (may use {{dataset}}, {{split}}) or 'paths' per dataset id")
    if entry.get("paths") is not None and not isinstance(entry["paths"], dict):
        raise ConfigError(f"{where}: 'paths' must map dataset ids to folders")
    return MapsOptions(str(entry["path"]) if entry.get("path") else None,
                       {str(k): str(v) for k, v in entry["paths"].items()} if entry.get("paths") else None,
                       bool(entry.get("resize", False)))


def maps_folder(method: MethodSpec, task: TaskSpec) -> Path:
    """Resolve a maps method's folder for a task (``{dataset}``, ``{name}``, ``{split}``, ``{task}`` filled in)."""
    opts = method.settings
    assert isinstance(opts, MapsOptions)
    paths = opts.paths
    if paths is not None:
        if task.dataset_id not in paths:
            raise ConfigError(f"method {method.name}: 'paths' has no folder for dataset {task.dataset_id!r}")
        template = str(paths[task.dataset_id])
    else:
        template = str(opts.path)
    try:
        text = template.format(dataset=task.dataset_id, name=task.dataset, split=task.test, task=task.key,
                               train=task.train or "")
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"method {method.name}: path {template!r} uses an unknown placeholder {exc}; "
                          "use {dataset}, {name}, {split}, {task} or {train}") from None
    return Path(text).expanduser()


def run(job: Job, ctx: JobContext) -> Produced:
    """Maps made elsewhere, through the one loop: test split required, train and extra splits when present."""
    from defectbench.methods.maps import FolderMaps

    assert job.task is not None
    folder = maps_folder(job.method, job.task)
    if not folder.is_dir():
        raise DataError(f"{folder}: maps folder of method {job.method.name} not found")
    dataset = ctx.dataset(job.task)
    maps = FolderMaps(folder, job.method.name, job.method.settings.resize)
    items = eval_items(dataset, job.task, include_train=True)
    test = [it for it in items if it.role == "test"]
    missing = [it.sample.id for it in test if not maps.has(it.sample.id)]
    if missing:
        raise DataError(f"{folder}: no map for {len(missing)} of the {len(test)} images of test split "
                        f"{job.task.test!r} (first: {missing[0]}); maps are matched to images by file stem")
    present = [it for it in items if maps.has(it.sample.id)]
    t0 = time.perf_counter()
    maps_dir = job.run_dir(ctx.experiment_dir) / "maps"
    write_maps(maps, [it.sample for it in present], maps_dir, advance=ctx.bar(f"maps {job.id}", len(present)))
    info = {"source": str(folder.resolve()),
            "scored": {role: sum(1 for it in present if it.role == role) for role in ("test", "extra", "train")},
            "not_in_folder": {role: sum(1 for it in items if it.role == role and not maps.has(it.sample.id))
                              for role in ("extra", "train")}}
    return Produced(maps_dir, present, {"predict_s": time.perf_counter() - t0}, info)
