"""What each method type does in a job: make (or find) the saliency maps of the images to score.

* ``maps`` — someone else's maps in a folder: nothing is computed; every image of the task's test split must
  have a map; train-split and extra-split images are scored too when present (so leaks show in the report);
* ``sod`` — a saliency network: trained on the task's train split with the job's seed (or loaded from a
  checkpoint whose training images are checked against the scored ones), then run on the test and extra splits;
* ``sam`` — zero-shot SAM automatic masks plus a mask-selection strategy, on the test and extra splits
  (oracle selections, which read the ground truth, are not run on extra splits such as defect-free images).

An executor returns a :class:`Produced`; the runner scores and stores it. Executors write only into the job's
folder, except SAM's proposal cache (``$DEFECTBENCH_CACHE``, else ``~/.cache/defectbench/sam``), which makes a
further selection strategy or a re-run read SAM's masks instead of recomputing them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectbench.bench.config import MethodSpec, TaskSpec
from defectbench.bench.jobs import Job
from defectbench.bench.scoring import EvalItem, index_maps
from defectbench.data.dataset import Dataset
from defectbench.errors import CheckpointError, ConfigError, DataError, DefectbenchError

Advance = Callable[[int], None]


class JobSkipped(DefectbenchError):
    """A job cannot run here for a reason the user can fix (e.g. a SAM checkpoint to download); not a failure."""


@dataclass
class JobContext:
    """What an executor may use: the experiment folder, the device, datasets, and a progress bar factory."""

    experiment_dir: Path
    device: str
    dataset: Callable[[TaskSpec], Dataset]
    bar: Callable[[str, int], Advance] = lambda desc, total: (lambda n: None)
    log: Callable[[str], None] = lambda line: None


@dataclass
class Produced:
    """An executor's result: where the maps are, which images to score, timings and facts for ``run.json``."""

    maps_dir: Path
    items: list[EvalItem]
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    resize: bool = False


def eval_items(dataset: Dataset, task: TaskSpec, include_train: bool = False, include_extra: bool = True) -> list[EvalItem]:
    """Return the images a job scores: the test split, the extra splits, and (for outside maps) the train split."""
    parts = [(task.test, "test")]
    if include_extra:
        parts += [(s, "extra") for s in task.extra]
    if include_train and task.train:
        parts.append((task.train, "train"))
    seen: set[str] = set()
    items = []
    for split, role in parts:
        for sample in dataset.split(split):
            if sample.id not in seen:
                seen.add(sample.id)
                items.append(EvalItem(sample, split, role))
    return items


def check_no_training_images(items: list[EvalItem], train_ids: set[str], what: str) -> None:
    """Refuse to score images a model was trained on (one clear line naming the first one)."""
    leaked = [it for it in items if it.role != "train" and it.sample.id in train_ids]
    if leaked:
        raise DataError(f"{what} was trained on {len(leaked)} of the images to score (first: {leaked[0].sample.id} of "
                        f"split {leaked[0].split}); a model must never be scored on its training images")


def fresh_dir(path: Path) -> Path:
    """Empty (or create) a folder left by an interrupted attempt."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# -- maps made elsewhere -------------------------------------------------------------------------------------
def maps_folder(method: MethodSpec, task: TaskSpec) -> Path:
    """Resolve a maps method's folder for a task (``{dataset}``, ``{name}``, ``{split}``, ``{task}`` filled in)."""
    paths = method.options.get("paths")
    if paths is not None:
        if task.dataset_id not in paths:
            raise ConfigError(f"method {method.name}: 'paths' has no folder for dataset {task.dataset_id!r}")
        template = str(paths[task.dataset_id])
    else:
        template = str(method.options["path"])
    try:
        text = template.format(dataset=task.dataset_id, name=task.dataset, split=task.test, task=task.key,
                               train=task.train or "")
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"method {method.name}: path {template!r} uses an unknown placeholder {exc}; "
                          "use {dataset}, {name}, {split}, {task} or {train}") from None
    return Path(text).expanduser()


def run_maps(job: Job, ctx: JobContext) -> Produced:
    """Score a folder of maps made elsewhere: test split required, train and extra splits when present."""
    assert job.task is not None
    folder = maps_folder(job.method, job.task)
    if not folder.is_dir():
        raise DataError(f"{folder}: maps folder of method {job.method.name} not found")
    dataset = ctx.dataset(job.task)
    maps = index_maps(folder)
    items = eval_items(dataset, job.task, include_train=True)
    test = [it for it in items if it.role == "test"]
    missing = [it.sample.id for it in test if it.sample.id not in maps]
    if missing:
        raise DataError(f"{folder}: no map for {len(missing)} of the {len(test)} images of test split "
                        f"{job.task.test!r} (first: {missing[0]}); maps are matched to images by file stem")
    present = [it for it in items if it.sample.id in maps]
    info = {"source": str(folder.resolve()),
            "scored": {role: sum(1 for it in present if it.role == role) for role in ("test", "extra", "train")},
            "not_in_folder": {role: sum(1 for it in items if it.role == role and it.sample.id not in maps)
                              for role in ("extra", "train")}}
    return Produced(folder, present, {}, info, resize=bool(job.method.options.get("resize", False)))


# -- trained saliency networks -------------------------------------------------------------------------------
def resolve_checkpoint(method: MethodSpec, task: TaskSpec) -> Path:
    """Resolve a sod method's ``checkpoint``: a path (placeholders allowed) or ``shipped:<weights>``."""
    text = str(method.options["checkpoint"]).format(dataset=task.dataset_id, name=task.dataset, split=task.test,
                                                    train=task.train or "", task=task.key)
    if text.startswith("shipped:"):
        from defectbench.train.checkpoint import shipped_weights_path

        return shipped_weights_path(str(method.options["model"]), text.split(":", 1)[1])
    path = Path(text).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint of method {method.name} not found")
    return path


def checkpoint_training_ids(meta: dict[str, Any], dataset: Dataset) -> tuple[set[str] | None, str]:
    """Return the ids a checkpoint was trained on (from its recorded dataset and split) and a description."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else meta
    if isinstance(meta.get("train_ids"), list):
        return set(meta["train_ids"]), f"{len(meta['train_ids'])} recorded training images"
    name, split = cfg.get("dataset"), cfg.get("split")
    if not name or not split:
        return None, "training images not recorded in the checkpoint"
    if name != dataset.name:
        return set(), f"trained on {name}/{split} (another dataset)"
    try:
        ids = {s.id for s in dataset.split(str(split))}
    except DataError:
        return None, f"trained on {name}/{split} (split unknown here)"
    return ids, f"trained on {name}/{split}"


def run_sod(job: Job, ctx: JobContext) -> Produced:
    """Train (or load) a saliency network for the task and seed, then write its maps of the scored images."""
    from defectbench.train.checkpoint import read_checkpoint
    from defectbench.train.predict import SaliencyPredictor

    assert job.task is not None
    task, method, run_dir = job.task, job.method, job.run_dir(ctx.experiment_dir)
    dataset = ctx.dataset(task)
    items = eval_items(dataset, task)
    timings: dict[str, float] = {}
    info: dict[str, Any] = {"model": method.options["model"]}
    if method.options.get("checkpoint"):
        ckpt_path = resolve_checkpoint(method, task)
        ckpt = read_checkpoint(ckpt_path, expected_model=str(method.options["model"]))
        train_ids, desc = checkpoint_training_ids(ckpt.get("meta") or {}, dataset)
        info.update(checkpoint=str(ckpt_path), training=desc)
        if train_ids is None:
            info["warning"] = "the checkpoint does not record its training images; overlap with the scored images unchecked"
        else:
            check_no_training_images(items, train_ids, f"checkpoint {ckpt_path}")
    else:
        if not task.train:
            raise ConfigError(f"task {task.key} has no train split; method {method.name} needs one (or a checkpoint)")
        train_ids = {s.id for s in dataset.split(task.train)}
        check_no_training_images(items, train_ids, f"{method.name} (split {task.train})")
        t0 = time.perf_counter()
        ckpt_path = train_sod(job, ctx, run_dir / "train")
        timings["train_s"] = time.perf_counter() - t0
        info.update(checkpoint=str(ckpt_path.relative_to(ctx.experiment_dir)), training=f"trained here on {task.dataset}/{task.train}")
        ckpt = read_checkpoint(ckpt_path, expected_model=str(method.options["model"]))
    predictor = SaliencyPredictor.from_checkpoint(ckpt, expected_model=str(method.options["model"]), device=ctx.device)
    maps_dir = fresh_dir(run_dir / "maps")
    t0 = time.perf_counter()
    write_maps(predictor, items, maps_dir, int(method.options.get("predict", {}).get("batch", 8)),
               ctx.bar(f"predict {job.id}", len(items)))
    timings["predict_s"] = time.perf_counter() - t0
    return Produced(maps_dir, items, timings, info)


def train_config(job: Job, device: str) -> Any:
    """Return the :class:`~defectbench.train.TrainConfig` of a job: model recipe, then the method's ``train`` settings."""
    from defectbench.train import TrainConfig

    assert job.task is not None
    options = dict(job.method.options.get("train") or {})
    options.update(dataset=job.task.dataset, split=job.task.train, seed=job.seed, device=device)
    if job.method.options.get("model_args"):
        options["model_kwargs"] = dict(job.method.options["model_args"])
    return TrainConfig.for_model(str(job.method.options["model"]), options, source=f"method {job.method.name}: train")


def train_sod(job: Job, ctx: JobContext, out_dir: Path) -> Path:
    """Train the job's model on its task's train split with its seed (resuming an interrupted attempt); return best.pt."""
    from defectbench.train import train_model

    cfg = train_config(job, ctx.device)
    result = train_model(cfg, dataset=ctx.dataset(job.task), out_dir=out_dir, resume=True, progress=False,
                         log=lambda line: ctx.log(f"  {job.id}: {line}"))
    return Path(result.best_checkpoint)


def write_maps(predictor: Any, items: list[EvalItem], maps_dir: Path, batch: int, advance: Advance) -> None:
    """Run a predictor over the items' images and write one 8-bit PNG per image (atomically)."""
    from defectbench.data.imageio import write_saliency_map

    for start in range(0, len(items), max(batch, 1)):
        chunk = items[start:start + batch]
        images = [it.sample.image() for it in chunk]
        for it, prob in zip(chunk, predictor.predict_batch(images), strict=True):
            write_saliency_map(maps_dir / f"{it.sample.id}.png", prob)
        advance(len(chunk))


# -- SAM ------------------------------------------------------------------------------------------------------
def sam_checkpoint(method: MethodSpec) -> Path:
    """Locate a SAM method's checkpoint: an absent default file skips the job (naming the file to get and where
    from); a ``checkpoint`` given explicitly in the config but missing is an error (the job fails)."""
    from defectbench.methods.sam.checkpoints import locate

    explicit = method.options.get("checkpoint")
    try:
        return locate(str(method.options["model"]), explicit)
    except CheckpointError as exc:
        if explicit:
            raise CheckpointError(f"method {method.name}: {exc}") from None
        raise JobSkipped(str(exc)) from None


def preflight(job: Job) -> tuple[str, str]:
    """Check a job's file references without running it: ``("ok" | "skip" | "error", message)``."""
    method = job.method
    try:
        if job.kind == "eval" and method.type == "sod" and method.options.get("checkpoint") and job.task is not None:
            return "ok", f"checkpoint {resolve_checkpoint(method, job.task)}"
        if method.type == "sam":
            return "ok", f"checkpoint {sam_checkpoint(method)}"
    except JobSkipped as exc:
        return "skip", str(exc)
    except DefectbenchError as exc:
        return "error", str(exc)
    return "ok", ""


def run_sam(job: Job, ctx: JobContext) -> Produced:
    """Run SAM's automatic masks (proposals cached) plus the method's selection on the test and extra splits."""
    assert job.task is not None
    task, method, run_dir = job.task, job.method, job.run_dir(ctx.experiment_dir)
    checkpoint = sam_checkpoint(method)
    from defectbench.methods.sam import predict_dataset

    dataset = ctx.dataset(task)
    items = eval_items(dataset, task, include_extra=not method.uses_gt)
    splits = list(dict.fromkeys(it.split for it in items))
    maps_dir = fresh_dir(run_dir / "maps")
    t0 = time.perf_counter()
    records = {}
    for split in splits:
        # one folder per split: SAM's own resumable output (maps already written are kept after a kill)
        out = run_dir / "sam" / split
        advance = ctx.bar(f"SAM {job.id} {split}", 1)
        records[split] = predict_dataset(
            str(method.options["model"]), dataset, split, str(method.options["select"]), out, checkpoint=checkpoint,
            device=ctx.device, amg_params=method.options.get("amg"), generator=method.options.get("generator", "fast"),
            output=method.options.get("output", "binary"), train_split=task.train,
            train_limit=method.options.get("train_limit"), evaluate=False, progress=False)
        advance(1)
        for p in (out / "maps").iterdir():
            _link_or_copy(p, maps_dir / p.name)
    info = {"model": method.options["model"], "select": method.options["select"], "uses_gt": method.uses_gt,
            "checkpoint": str(checkpoint),
            "sam": {split: {k: r.get(k) for k in ("method", "label", "oracle", "checkpoint", "cache", "this_run")}
                    for split, r in records.items()}}
    if method.uses_gt and task.extra:
        info["not_scored"] = f"extra splits {', '.join(task.extra)}: the oracle selection reads the ground truth"
    return Produced(maps_dir, items, {"predict_s": time.perf_counter() - t0}, info)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


EXECUTORS: dict[str, Callable[[Job, JobContext], Produced]] = {"maps": run_maps, "sod": run_sod, "sam": run_sam}


def register_executor(method_type: str, fn: Callable[[Job, JobContext], Produced]) -> None:
    """Register (or replace) the executor of a method type; the library hook for custom method types."""
    EXECUTORS[method_type] = fn
