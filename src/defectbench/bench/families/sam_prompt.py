"""The ``sam_prompt`` family: SAM answering prompts (the protocols SAM's own paper and the medical-image studies
report) and the deployable hybrid in which a light model's map prompts SAM.

Config keys (besides the common ones)::

    - {name: sam-h-box, type: sam_prompt, model: vit_h, prompt: box-per-region}            # oracle: GT prompts
    - {name: sam-h-clicks, type: sam_prompt, model: vit_h, prompt: interactive, k: 9}      # K-point curve
    - {name: sam-h-lite, type: sam_prompt, model: vit_h, prompt: box-per-region,
       prompts_from: {model: litenet, weights: "{name}"}, threshold: 0.5, min_area: 0.0005, fuse: union}
    - {name: sam-h-on-mine, type: sam_prompt, model: vit_h, prompt: box-per-region, prompts_from: {method: litenet}}

``prompt``: point-largest | point-per-region | box-largest | box-per-region | box-all | interactive; ``choice``:
score (SAM's highest predicted IoU, default) | oracle (best of three against the ground truth); ``jitter``: in
[0, 1) (box edges by that fraction of the box side, points by that fraction of the region's box, seeded by the
job's seed and the image); ``k``: points of the interactive mode (the map after each point is scored: the curve);
``prompts_from``: ``{model, weights}`` (a registered saliency model and shipped weights, ``{name}`` = dataset name,
or a checkpoint path) or ``{method: NAME}`` (a ``sod`` / ``maps`` / ``anomaly`` method of the same config, whose
maps of the same task and seed are read from its job folder; it runs first in the job order, and its job's spec
is part of the row's fingerprint: a changed source makes the row's stored result stale); ``threshold`` (a
number in (0, 1), ``otsu`` or ``adaptive``; default 0.5, the scorer's own defect threshold), ``min_area``
(components smaller than this fraction of the image are dropped; default 0.0005), ``fuse`` (union | mean);
``checkpoint`` and ``allow_unofficial`` as for ``sam``.

Rows reading the ground truth (ground-truth prompts or the oracle choice) are labelled oracle and, like the
oracle selections, are not run on extra splits; the hybrid with SAM's choice is scored on them too (false alarms:
an image without a region in the light map gets an empty map). Every protocol reuses the image embedding cached
on disk (:mod:`defectbench.methods.sam.embeddings`), which the automatic ``sam`` rows of the same model and
weights read and fill too: one encoder pass per image for all automatic and prompt rows of a model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.bench.config import MethodSpec, TaskSpec
from defectbench.bench.executors import JobContext, JobSkipped, Produced, check_no_training_images, eval_items
from defectbench.bench.jobs import Job
from defectbench.data.dataset import Dataset
from defectbench.errors import CheckpointError, ConfigError, DataError, DefectbenchError
from defectbench.methods.base import write_maps

KEYS = frozenset({"model", "prompt", "choice", "jitter", "k", "prompts_from", "threshold", "min_area", "fuse",
                  "checkpoint", "allow_unofficial"})
SOURCE_TYPES = ("sod", "maps", "anomaly")
CURVE_METRICS = ("S_alpha", "max_F", "max_E", "weighted_F", "MAE")


@dataclass(frozen=True)
class PromptsFrom:
    """Where the hybrid's prompts come from: a saliency model with weights, or another method of the run."""

    model: str | None = None
    weights: str | None = None
    method: str | None = None

    @property
    def label(self) -> str:
        """``litenet:sd900`` or the method name."""
        return self.method if self.method else f"{self.model}:{self.weights}"


@dataclass(frozen=True)
class SamPromptOptions:
    """A prompt protocol on a SAM-family model (see the module docstring)."""

    model: str
    prompt: str
    choice: str = "score"
    jitter: float = 0.0
    k: int = 1
    prompts_from: PromptsFrom | None = None
    threshold: float | str = 0.5
    min_area: float = 0.0005
    fuse: str = "union"
    checkpoint: str | None = None
    allow_unofficial: bool = False

    def settings(self, seed: int = 0) -> Any:
        """The library's :class:`~defectbench.methods.sam.prompted.PromptSettings` of a job with ``seed``."""
        from defectbench.methods.sam.prompted import PromptSettings

        return PromptSettings(self.prompt, self.choice, self.jitter, self.k, seed, self.prompts_from is not None,
                              self.threshold, self.min_area, self.fuse)


def parse_prompts_from(value: Any, where: str) -> PromptsFrom:
    """Validate ``prompts_from``: ``{model, weights}``, ``{method}`` or ``"model:weights"``."""
    import defectbench.methods.saliency  # noqa: F401 - registers the models
    from defectbench.methods.saliency import list_models

    if isinstance(value, str) and ":" in value:
        value = dict(zip(("model", "weights"), value.split(":", 1)))
    if not isinstance(value, dict) or not (set(value) <= {"model", "weights", "method"}):
        raise ConfigError(f"{where}: 'prompts_from' must be {{model: litenet, weights: sd900}} or {{method: <name of a "
                          f"method of this config>}}, got {value!r}")
    if value.get("method"):
        if value.get("model") or value.get("weights"):
            raise ConfigError(f"{where}: 'prompts_from' takes either 'method' or 'model' with 'weights', not both")
        return PromptsFrom(method=str(value["method"]))
    model, weights = value.get("model"), value.get("weights")
    if not model or not weights:
        raise ConfigError(f"{where}: 'prompts_from' needs 'model' and 'weights' (e.g. {{model: litenet, weights: sd900}})")
    if str(model) not in list_models():
        raise ConfigError(f"{where}: prompts_from: unknown saliency model {model!r}; available: {', '.join(list_models())}")
    out = PromptsFrom(str(model), str(weights))
    if "{" not in out.weights:
        _light_weights(out, None, where)  # no weights: refused now
    return out


def _light_weights(src: PromptsFrom, task: TaskSpec | None, where: str = "") -> Path:
    """The light model's weights file: shipped weights by name (``{name}`` = dataset name) or a checkpoint path."""
    from defectbench.methods.saliency.checkpoint import shipped_weights_path

    text = str(src.weights)
    if task is not None:
        text = text.format(dataset=task.dataset_id, name=task.dataset, split=task.test, task=task.clean_key)
    path = Path(text).expanduser()
    if path.suffix in (".pt", ".pth") or "/" in text:
        if not path.is_file():
            raise ConfigError(f"{where + ': ' if where else ''}prompts_from: weights file {path} not found")
        return path
    try:
        return shipped_weights_path(str(src.model), text)
    except CheckpointError as exc:
        raise ConfigError(f"{where + ': ' if where else ''}prompts_from: {exc}") from None


def parse_options(entry: dict[str, Any], where: str) -> SamPromptOptions:
    """Validate and type a ``sam_prompt`` entry: model, protocol, choice, jitter, k, prompt source and its rules."""
    from defectbench.methods.sam.prompts import check_threshold
    from defectbench.methods.sam.registry import get_spec

    try:
        get_spec(str(entry["model"]))
    except DefectbenchError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    src = parse_prompts_from(entry["prompts_from"], where) if entry.get("prompts_from") is not None else None
    allow = entry.get("allow_unofficial", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{where}: 'allow_unofficial' must be true or false, got {allow!r}")
    if src is None:
        for key in ("threshold", "min_area", "fuse"):
            if key in entry:
                raise ConfigError(f"{where}: {key!r} is a rule of prompts from a model's map; it needs 'prompts_from'")
    min_area = entry.get("min_area", 0.0005)
    if isinstance(min_area, bool) or not isinstance(min_area, (int, float)) or not 0.0 <= float(min_area) < 1.0:
        raise ConfigError(f"{where}: 'min_area' must be a fraction of the image area in [0, 1), got {min_area!r}")
    try:
        opts = SamPromptOptions(
            str(entry["model"]), str(entry.get("prompt", "")), str(entry.get("choice", "score")),
            entry.get("jitter", 0.0), entry.get("k", 1), src, check_threshold(entry.get("threshold", 0.5)),
            float(min_area), str(entry.get("fuse", "union")),
            str(entry["checkpoint"]) if entry.get("checkpoint") else None, allow)
        opts.settings()  # validates mode, choice, jitter, k, fuse and their combinations
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return opts


def uses_gt(method: MethodSpec) -> bool:
    """Ground-truth prompts or the oracle mask choice read the test ground truth: an oracle row."""
    opts = method.settings
    if opts is None:
        return not method.options.get("prompts_from") or method.options.get("choice") == "oracle"
    return opts.prompts_from is None or opts.choice == "oracle"


def check_methods(method: MethodSpec, methods: list[MethodSpec], where: str) -> None:
    """Refuse a ``prompts_from: {method}`` that is not a map-making method of this config on the same datasets."""
    src = method.settings.prompts_from
    if src is None or src.method is None:
        return
    other = next((m for m in methods if m.name == src.method), None)
    if other is None:
        raise ConfigError(f"{where}: prompts_from method {src.method!r} is not among the config's methods "
                          f"({', '.join(m.name for m in methods)})")
    if other.type not in SOURCE_TYPES:
        raise ConfigError(f"{where}: prompts_from method {src.method!r} is a {other.type} method; prompts come from "
                          f"the maps of a {', '.join(SOURCE_TYPES)} method")
    if other.datasets is not None and (method.datasets is None or not set(method.datasets) <= set(other.datasets)):
        raise ConfigError(f"{where}: prompts_from method {src.method!r} is not run on every dataset this method is; "
                          f"give this method 'datasets: [{', '.join(other.datasets)}]'")


def source_method(method: MethodSpec) -> str | None:
    """The method whose maps a hybrid row reads (``prompts_from: {method}``); its job's spec joins the row's."""
    src = method.settings.prompts_from if method.settings is not None else None
    return src.method if src is not None else None


def check_task(method: MethodSpec, task: TaskSpec, where: str) -> None:
    """Light weights named with placeholders must exist for each task (``{name}`` = the dataset)."""
    src = method.settings.prompts_from
    if src is not None and src.weights and "{" in src.weights:
        _light_weights(src, task, f"{where} (task {task.key})")


def validate(job: Job, dataset: Dataset) -> None:
    """A ground-truth prompt (or the oracle choice) on a test split without masks: one line, before any work."""
    if not job.method.uses_gt or job.task is None:
        return
    samples = dataset.split(job.task.test)
    if samples and all(s.mask_path is None for s in samples):
        raise ConfigError(f"method {job.method.name}: ground-truth prompts asked on {job.task.dataset}/{job.task.test}, "
                          f"which has no masks; use a split with masks or prompts_from a model")


def _source_maps_dir(job: Job, ctx: JobContext) -> Path:
    """The maps folder of the ``prompts_from`` method for this job's task (the job's seed, else its lowest one):
    that of :attr:`Job.source` (the job whose spec is in this one's) when the matrix linked one."""
    src = job.method.settings.prompts_from
    assert job.task is not None and src.method
    if job.source is not None:
        folder = job.source.run_dir(ctx.experiment_dir) / "maps"
        if folder.is_dir():
            return folder
        raise DataError(f"method {job.method.name}: no maps of prompts_from method {src.method!r} in {folder}; "
                        f"run that method first (in one `defectbench run` it runs before the prompt rows)")
    base = Path(ctx.experiment_dir) / job.task.key
    for name in (src.method, f"{src.method}@all"):
        seeds = sorted(base.glob(f"{name}/seed*/maps"), key=lambda p: int(p.parent.name[4:]) if p.parent.name[4:].isdigit() else 0)
        exact = base / name / f"seed{job.seed}" / "maps"
        if exact.is_dir():
            return exact
        if seeds:
            return seeds[0]
    raise DataError(f"method {job.method.name}: no maps of prompts_from method {src.method!r} for task {job.task.key} "
                    f"in {base / src.method}; run that method first (in one `defectbench run` it runs before the "
                    f"prompt rows)")


def light_source(job: Job, ctx: JobContext, items: list) -> tuple[Any, str, dict[str, Any]]:
    """The hybrid's map source ``(sample, image) -> map``, its label and facts for ``run.json``."""
    from defectbench.data.imageio import read_map_for_mask

    src = job.method.settings.prompts_from
    assert job.task is not None
    if src.method:
        folder = _source_maps_dir(job, ctx)

        def from_folder(sample: Any, image: np.ndarray) -> np.ndarray:
            path = folder / f"{sample.id}.png"
            if not path.is_file():
                raise DataError(f"{path}: map of prompts_from method {src.method!r} missing; run that method first")
            pred, _ = read_map_for_mask(path, image.shape[:2])
            return pred.astype(np.float32) / 255.0

        return from_folder, src.method, {"prompts_from": {"method": src.method, "maps": str(folder)}}
    from defectbench.bench.families.sod import checkpoint_training_ids
    from defectbench.methods.saliency.checkpoint import read_checkpoint
    from defectbench.methods.saliency.predictor import SaliencyPredictor

    path = _light_weights(src, job.task)
    ckpt = read_checkpoint(path, expected_model=src.model)
    train_ids, desc = checkpoint_training_ids(ckpt.get("meta") or {}, ctx.dataset(job.task))
    if train_ids:
        check_no_training_images(items, train_ids, f"prompts_from {src.label} ({path.name})")
    pred = SaliencyPredictor.from_checkpoint(ckpt, expected_model=src.model, device=ctx.device)
    label = f"{src.model}:{path.stem.removeprefix(f'{src.model}_')}"
    return (lambda sample, image: pred.predict(image)), label, {
        "prompts_from": {"model": src.model, "weights": str(path), "training": desc}}


def run(job: Job, ctx: JobContext) -> Produced:
    """Prompt SAM on the task's images (embeddings cached), write the maps, the per-image prompt records and, for
    the interactive mode, the map after each point and the curve of each metric against the number of points."""
    from defectbench.bench.families.sam import sam_checkpoint
    from defectbench.methods.sam.prompted import PromptedSam, PromptedSamMethod, summarize_records

    assert job.task is not None
    task, method, run_dir = job.task, job.method, job.run_dir(ctx.experiment_dir)
    opts = method.settings
    assert isinstance(opts, SamPromptOptions)
    checkpoint = sam_checkpoint(method)
    dataset = ctx.dataset(task)
    items = eval_items(dataset, task, include_extra=not method.uses_gt)
    light, light_name, info = (None, None, {})
    if opts.prompts_from is not None:
        light, light_name, info = light_source(job, ctx, items)
    sam = PromptedSam(opts.model, checkpoint, ctx.device, None, allow_unofficial=opts.allow_unofficial)
    runner = PromptedSamMethod(sam, opts.settings(job.seed), light, light_name, records_dir=run_dir / "prompts")
    if opts.prompt == "interactive":
        runner.steps_dir = run_dir / "steps"
    t0 = time.perf_counter()
    maps_dir = run_dir / "maps"
    write_maps(runner, [it.sample for it in items], maps_dir, advance=ctx.bar(f"SAM prompts {job.id}", len(items)))
    rec = runner.record()
    st = rec["sam"]["this_run"]
    n_img = max(1, int(st["encoder_calls"] + st["cached_embeddings"]))
    info.update(model=opts.model, uses_gt=method.uses_gt, checkpoint=str(checkpoint), prompted=rec,
                choices=summarize_records(run_dir / "prompts"),
                time_per_image_s={"encoder": round(st["encoder_s"] / max(1, st["encoder_calls"]), 4),
                                  "decoder": round(st["decoder_s"] / n_img, 4),
                                  "decoder_calls_per_image": round(st["decoder_calls"] / n_img, 3),
                                  "light": round(rec["light"]["seconds"] / max(1, rec["light"]["calls"]), 4)})
    if method.uses_gt and task.extra:
        info["not_scored"] = f"extra splits {', '.join(task.extra)}: the prompts or the mask choice read the ground truth"
    if opts.prompt == "interactive":
        info["curve"] = interactive_curve(job.id, run_dir / "steps", [it for it in items if it.role == "test"], opts.k)
    return Produced(maps_dir, items, {"predict_s": time.perf_counter() - t0}, info)


def interactive_curve(job_id: str, steps_dir: Path, items: list, k: int) -> dict[str, dict[str, float]]:
    """The paper's metrics of the map after each of the ``k`` points (test images): ``{"1": {...}, ..., "k": {...}}``."""
    from defectbench.bench.runner import _summary
    from defectbench.bench.scoring import index_maps, score_items

    out: dict[str, dict[str, float]] = {}
    for j in range(1, k + 1):
        rows = score_items(job_id, items, index_maps(steps_dir / f"k{j}"))
        test = _summary(rows).get("test", {})
        out[str(j)] = {m: round(float(test[m]), 6) for m in CURVE_METRICS if m in test}
    return out


def preflight(job: Job) -> str:
    """Locate the SAM checkpoint (an absent default skips) and the light model's weights without loading them."""
    from defectbench.bench.families.sam import sam_checkpoint

    out = f"checkpoint {sam_checkpoint(job.method)}"
    src = job.method.settings.prompts_from
    if src is not None and src.model:
        out += f"; prompts from {_light_weights(src, job.task)}"
    return out


def needs(job: Job) -> list[Any]:
    """What a sam_prompt job opens besides its data: the SAM checkpoint and, for prompts from a model, its weights."""
    from defectbench.bench.needs import file_need, weights_need
    from defectbench.downloads.catalog import sam_file
    from defectbench.methods.sam.checkpoints import UNOFFICIAL_HINT, locate, verify_checkpoint
    from defectbench.methods.sam.registry import get_spec

    opts = job.method.settings
    assert isinstance(opts, SamPromptOptions)
    if not opts.checkpoint:
        out = [weights_need(sam_file(opts.model), UNOFFICIAL_HINT, opts.allow_unofficial)]
    else:
        spec = get_spec(opts.model)
        out = [file_need(lambda: verify_checkpoint(spec, locate(spec.name, opts.checkpoint),
                                                   allow_unofficial=opts.allow_unofficial),
                         opts.checkpoint, "check the method's checkpoint in the config")]
    src = opts.prompts_from
    if src is not None and src.model:
        out.append(file_need(lambda: _light_weights(src, job.task), f"prompts_from {src.model}:{src.weights}",
                             "check the method's prompts_from in the config", "weights"))
    return out


def light_from_spec(text: str, device: str = "cpu") -> tuple[Any, str]:
    """A light model's map source from ``MODEL:WEIGHTS`` (shipped weights by name, or a checkpoint path)."""
    from defectbench.methods.saliency.predictor import SaliencyPredictor

    src = parse_prompts_from(text if ":" in text else {"model": text}, "--prompts-from")
    path = _light_weights(src, None, "--prompts-from")
    pred = SaliencyPredictor.from_checkpoint(path, expected_model=src.model, device=device)
    return (lambda sample, image: pred.predict(image)), f"{src.model}:{path.stem.removeprefix(f'{src.model}_')}"
