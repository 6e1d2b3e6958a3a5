"""The ``anomaly`` family: PatchCore or PaDiM fitted on a dataset's defect-free images only (``fit_split``, default
``free-train``), its score-to-map rule fitted on other defect-free images (``calibration_split``, default
``free-calib``), then run on the task's test and extra splits through the one loop.

The fitted method is saved in the job folder (``fit/anomaly.safetensors``, weights only), so a resumed job predicts
without refitting. Datasets without defect-free images (SD-saliency-900, NRSD-MN) are refused in one line.

Config keys: ``model`` (patchcore | padim), ``backbone`` (efficientnet_lite0/1/2, wide_resnet50_2),
``backbone_weights`` (a path; default: the installed package / ``$DEFECTBENCH_CHECKPOINTS``), ``size`` (input
side, default 224), ``layers``, ``coreset_ratio`` (PatchCore, in (0, 1], default 0.01), ``dims`` (PaDiM),
``sigma``, ``fit_split``, ``fit_limit`` (fit on at most this many evenly spaced images), ``calibration_split``,
``target_false_alarms`` (the rule's alpha, default 0.05), ``nn_engine`` (torch | faiss), ``predict: {batch}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from defectbench.bench.config import KNOWN_SPLITS, MethodSpec, TaskSpec
from defectbench.bench.executors import JobContext, Produced, check_no_training_images, eval_items
from defectbench.bench.jobs import Job
from defectbench.data.dataset import Dataset
from defectbench.data.sample import Sample
from defectbench.errors import ConfigError, DataError, DefectbenchError
from defectbench.methods.base import write_maps

KEYS = frozenset({"model", "backbone", "backbone_weights", "size", "layers", "coreset_ratio", "dims", "sigma",
                  "fit_split", "fit_limit", "calibration_split", "target_false_alarms", "nn_engine", "predict"})
FIT_SPLIT, CALIBRATION_SPLIT = "free-train", "free-calib"
FITTED_FILE = "fit/anomaly.safetensors"
SPEED_FIT_IMAGES = 200  # memory-bank size of a speed measurement when the method sets no fit_limit


@dataclass(frozen=True)
class AnomalyOptions:
    """An anomaly method: what to build (``spec`` fields), where it fits and calibrates, how it predicts."""

    model: str
    backbone: str = "efficientnet_lite0"
    backbone_weights: str | None = None
    size: int = 224
    layers: tuple[int, ...] | None = None
    coreset_ratio: float = 0.01
    dims: int | None = None
    sigma: float = 4.0
    fit_split: str = FIT_SPLIT
    fit_limit: int | None = None
    calibration_split: str = CALIBRATION_SPLIT
    target_false_alarms: float = 0.05
    nn_engine: str = "torch"
    predict_batch: int = 8

    def spec(self, seed: int) -> Any:
        """The :class:`~defectbench.methods.anomaly.AnomalySpec` of a job with ``seed``."""
        from defectbench.methods.anomaly import AnomalySpec

        return AnomalySpec(self.model, self.backbone, self.size, self.layers, self.coreset_ratio, self.dims,
                           self.sigma, seed, self.nn_engine, self.backbone_weights)


def parse_options(entry: dict[str, Any], where: str) -> AnomalyOptions:
    """Validate and type an ``anomaly`` method entry (kind, backbone and its weights file, ratio, rule, splits)."""
    from defectbench.bench.families.sod import _positive_int
    from defectbench.methods.anomaly import KINDS
    from defectbench.methods.anomaly.calibration import check_alpha
    from defectbench.methods.anomaly.features import backbone_weights
    from defectbench.methods.anomaly.knn import ENGINES
    from defectbench.methods.anomaly.patchcore import check_ratio

    model = str(entry.get("model") or "")
    if model not in KINDS:
        raise ConfigError(f"{where}: an anomaly method needs 'model', one of {', '.join(KINDS)}, got {model or None!r}")
    kwargs: dict[str, Any] = {"model": model}
    for key in ("backbone", "fit_split", "calibration_split", "nn_engine"):
        if entry.get(key) is not None:
            kwargs[key] = str(entry[key])
    if entry.get("backbone_weights") is not None:
        kwargs["backbone_weights"] = str(Path(str(entry["backbone_weights"])).expanduser())
    for key in ("size", "dims", "fit_limit"):
        if entry.get(key) is not None:
            kwargs[key] = _positive_int(entry[key], f"{where}: {key}")
    if kwargs.get("size", 224) < 64:
        raise ConfigError(f"{where}: size must be at least 64 (the input side in pixels), got {kwargs['size']}")
    layers = entry.get("layers")
    if layers is not None:
        if not isinstance(layers, list) or not layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
            raise ConfigError(f"{where}: layers must be a list of timm feature indices, e.g. [2, 3]")
        kwargs["layers"] = tuple(layers)
    try:
        if "coreset_ratio" in entry:
            kwargs["coreset_ratio"] = check_ratio(entry["coreset_ratio"])
        if "target_false_alarms" in entry:
            kwargs["target_false_alarms"] = check_alpha(entry["target_false_alarms"])
        if "sigma" in entry:
            sigma = entry["sigma"]
            if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma <= 0:
                raise ValueError(f"sigma must be a positive number of input pixels, got {sigma!r}")
            kwargs["sigma"] = float(sigma)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if kwargs.get("nn_engine", "torch") not in ENGINES:
        raise ConfigError(f"{where}: nn_engine must be one of {', '.join(ENGINES)}, got {kwargs['nn_engine']!r}")
    predict = dict(entry.get("predict") or {})
    if sorted(set(predict) - {"batch"}):
        raise ConfigError(f"{where}: unknown predict option {sorted(set(predict) - {'batch'})[0]!r} (known: batch)")
    kwargs["predict_batch"] = _positive_int(predict.get("batch", 8), f"{where}: predict.batch")
    opts = AnomalyOptions(**kwargs)
    if opts.fit_split == opts.calibration_split:
        raise ConfigError(f"{where}: fit_split and calibration_split are both {opts.fit_split!r}; the score-to-map rule "
                          "must be fitted on images held out from fitting")
    try:
        backbone_weights(opts.backbone, opts.backbone_weights)  # located now, loaded when a job runs
    except DefectbenchError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return opts


def check_task(method: MethodSpec, task: TaskSpec, where: str) -> None:
    """Refuse, in one line, a task whose dataset has no defect-free images or that scores the fit/calibration splits."""
    from defectbench.data.registry import dataset_title

    opts = method.settings
    assert isinstance(opts, AnomalyOptions)
    known = KNOWN_SPLITS.get(task.dataset)
    if known is not None and opts.fit_split not in known:
        raise ConfigError(f"{where}: {dataset_title(task.dataset)} has no defect-free images, and method {method.name} "
                          f"(anomaly) fits on defect-free images only; run it on datasets that have them "
                          f"(datasets: [mt], or a folder: dataset with a good/ folder)")
    for split in (opts.fit_split, opts.calibration_split):
        if known is not None and split not in known:
            raise ConfigError(f"{where}: {task.dataset} has no split {split!r}; its splits are {', '.join(known)}")
        if split in (task.test, *task.extra):
            raise ConfigError(f"{where}: split {split!r} of method {method.name} is also scored in task {task.key}; a "
                              "method must never be scored on the images it was fitted or calibrated on")


def _fit_samples(dataset: Dataset, opts: AnomalyOptions) -> list[Sample]:
    from defectbench.deploy.quantize import evenly_spaced

    samples = dataset.split(opts.fit_split)
    if opts.fit_limit is not None:
        samples = [samples[i] for i in evenly_spaced(len(samples), opts.fit_limit)]
    return samples


def validate(job: Job, dataset: Dataset) -> None:
    """Check, before any work, that the dataset has the defect-free images the job fits and calibrates on."""
    from defectbench.methods.anomaly.calibration import min_images

    opts, task = job.method.settings, job.task
    assert isinstance(opts, AnomalyOptions) and task is not None
    if opts.fit_split not in dataset.splits or not dataset.splits[opts.fit_split]:
        raise DataError(f"{dataset.title} has no defect-free images (no split {opts.fit_split!r}; a folder: dataset "
                        f"gets one from a good/ folder), and method {job.method.name} fits on defect-free images only")
    if opts.calibration_split not in dataset.splits:
        raise DataError(f"{dataset.title}: no split {opts.calibration_split!r} to calibrate method {job.method.name} on")
    n_calib, need = len(dataset.splits[opts.calibration_split]), min_images(opts.target_false_alarms)
    if n_calib < need:
        raise DataError(f"{dataset.title}: calibration split {opts.calibration_split!r} holds {n_calib} defect-free "
                        f"images; the score-to-map rule of method {job.method.name} at target_false_alarms "
                        f"{opts.target_false_alarms} needs at least {need}: add images or raise target_false_alarms")
    held = {s.id for s in _fit_samples(dataset, opts)} | set(dataset.splits[opts.calibration_split])
    check_no_training_images(eval_items(dataset, task), held, f"method {job.method.name} (splits {opts.fit_split}, "
                             f"{opts.calibration_split})")


def run(job: Job, ctx: JobContext) -> Produced:
    """Fit (or load the saved fit of an earlier attempt), calibrate, and write the maps of the scored images."""
    from defectbench.methods.anomaly import AnomalyMethod, fit_anomaly

    assert job.task is not None
    opts, run_dir = job.method.settings, job.run_dir(ctx.experiment_dir)
    assert isinstance(opts, AnomalyOptions)
    dataset = ctx.dataset(job.task)
    validate(job, dataset)
    items = eval_items(dataset, job.task)
    # a corrupted task's fit is the clean task's (same method and seed): fitted once, there, on clean good images
    task = job.task
    fit_dir = replace(job, task=task.clean()).run_dir(ctx.experiment_dir) if task.corruption else run_dir
    fitted = fit_dir / FITTED_FILE
    timings: dict[str, float] = {}
    if fitted.is_file():
        method = AnomalyMethod.load(fitted, ctx.device, opts.backbone_weights)
        how = "loaded the fit saved by an earlier attempt"
    else:
        train, calib = _fit_samples(dataset, opts), dataset.split(opts.calibration_split)
        method = fit_anomaly(opts.spec(job.seed), (s.image() for s in train), len(train), (s.image() for s in calib),
                             opts.target_false_alarms, opts.predict_batch, ctx.device,
                             lambda desc, total: ctx.bar(f"{desc} {job.id}", total), job.method.name)
        method.save(fitted)
        timings.update(fit_s=method.facts["fit_s"], calibrate_s=method.facts["calibrate_s"])
        how = "fitted here"
    t0 = time.perf_counter()
    maps_dir = run_dir / "maps"
    write_maps(method, [it.sample for it in items], maps_dir, opts.predict_batch, ctx.bar(f"predict {job.id}", len(items)))
    timings["predict_s"] = time.perf_counter() - t0
    info = {"model": opts.model, "backbone": opts.backbone, "fit_split": opts.fit_split,
            "calibration_split": opts.calibration_split, "fitted": str(fitted.relative_to(ctx.experiment_dir)), "training": how,
            "method": method.record()}
    return Produced(maps_dir, items, timings, info)


def preflight(job: Job) -> str:
    """Name the backbone weights file the job will load (checked when the config was read)."""
    from defectbench.methods.anomaly.features import backbone_weights

    opts = job.method.settings
    return f"backbone weights {backbone_weights(opts.backbone, opts.backbone_weights)}"
