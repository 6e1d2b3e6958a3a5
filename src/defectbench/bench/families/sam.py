"""The ``sam`` family: zero-shot SAM automatic masks plus a mask-selection strategy, on the test and extra splits
(oracle selections, which read the ground truth, are not run on extra splits such as defect-free images).

SAM's proposal cache (``$DEFECTBENCH_CACHE``, else ``~/.cache/defectbench/sam``) makes a further selection
strategy or a re-run read SAM's masks instead of recomputing them; it is a cache, not a second resume layer.
The whole-image embedding comes from (or goes to) the prompt rows' embedding cache in the same folder, so the
``sam`` and ``sam_prompt`` rows of one model and weights share one encoder pass per image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectbench.bench.config import MethodSpec
from defectbench.bench.executors import JobContext, JobSkipped, Produced, eval_items
from defectbench.bench.jobs import Job
from defectbench.errors import CheckpointError, ConfigError, DefectbenchError
from defectbench.methods.base import write_maps

KEYS = frozenset({"model", "select", "checkpoint", "amg", "output", "generator", "train_limit", "allow_unofficial"})


@dataclass(frozen=True)
class SamOptions:
    """SAM automatic masks plus a mask selection."""

    model: str
    select: str
    checkpoint: str | None = None
    amg: dict[str, Any] | None = None
    output: str = "binary"
    generator: str = "fast"
    train_limit: int | None = None
    allow_unofficial: bool = False


def parse_options(entry: dict[str, Any], where: str) -> SamOptions:
    """Validate and type a ``sam`` method entry: a registered SAM model, a known selection, output and generator."""
    from defectbench.bench.families.sod import _positive_int
    from defectbench.methods.sam.generator import GENERATORS
    from defectbench.methods.sam.registry import get_spec
    from defectbench.methods.sam.selection import OUTPUTS, STRATEGIES

    try:
        get_spec(str(entry["model"]))
    except DefectbenchError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if entry.get("select") not in STRATEGIES:
        raise ConfigError(f"{where}: a sam method needs 'select', one of {', '.join(STRATEGIES)} (oracle-* read the "
                          f"ground truth), got {entry.get('select')!r}")
    output, generator = str(entry.get("output", "binary")), str(entry.get("generator", "fast"))
    if output not in OUTPUTS:
        raise ConfigError(f"{where}: 'output' must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if generator not in GENERATORS:
        raise ConfigError(f"{where}: 'generator' must be one of {', '.join(GENERATORS)}, got {generator!r}")
    limit = entry.get("train_limit")
    allow = entry.get("allow_unofficial", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{where}: 'allow_unofficial' must be true or false, got {allow!r}")
    return SamOptions(str(entry["model"]), str(entry["select"]),
                      str(entry["checkpoint"]) if entry.get("checkpoint") else None,
                      dict(entry["amg"]) if entry.get("amg") is not None else None, output, generator,
                      None if limit is None else _positive_int(limit, f"{where}: train_limit"), allow)


def sam_checkpoint(method: MethodSpec) -> Path:
    """Locate a SAM method's checkpoint: an absent default file skips the job (naming the file to get and where
    from); a ``checkpoint`` given explicitly in the config but missing is an error (the job fails)."""
    from defectbench.methods.sam.checkpoints import locate

    explicit = method.settings.checkpoint
    try:
        return locate(method.settings.model, explicit)
    except CheckpointError as exc:
        if explicit:
            raise CheckpointError(f"method {method.name}: {exc}") from None
        raise JobSkipped(str(exc)) from None


def run(job: Job, ctx: JobContext) -> Produced:
    """SAM's automatic masks (proposals cached) and the method's selection on the test and extra splits.

    The ``learned`` selection is first fitted on the task's train split; maps go through the one loop
    (:func:`~defectbench.methods.base.write_maps`), whose kept maps are the job's only resume state.
    """
    assert job.task is not None
    task, method, run_dir = job.task, job.method, job.run_dir(ctx.experiment_dir)
    checkpoint = sam_checkpoint(method)
    from defectbench.methods.sam import SamMethod

    dataset = ctx.dataset(task)
    items = eval_items(dataset, task, include_extra=not method.uses_gt)
    opts = method.settings
    assert isinstance(opts, SamOptions)
    sam = SamMethod(opts.model, opts.select, checkpoint, ctx.device, None, opts.amg, opts.generator, opts.output,
                    allow_unofficial=opts.allow_unofficial)
    t0 = time.perf_counter()
    if sam.cfg.strategy == "learned":
        if not task.train:
            raise ConfigError(f"task {task.key} has no train split; the learned selection of {method.name} needs one")
        limit = opts.train_limit
        train = dataset.split(task.train)
        sam.fit(train[:limit] if limit is not None else train, run_dir,
                {"dataset": dataset.name, "train_split": task.train, "train_limit": limit})
    maps_dir = run_dir / "maps"
    write_maps(sam, [it.sample for it in items], maps_dir, advance=ctx.bar(f"SAM {job.id}", len(items)))
    info = {"model": opts.model, "select": opts.select, "uses_gt": method.uses_gt, "checkpoint": str(checkpoint),
            "sam": sam.record()}
    if method.uses_gt and task.extra:
        info["not_scored"] = f"extra splits {', '.join(task.extra)}: the oracle selection reads the ground truth"
    return Produced(maps_dir, items, {"predict_s": time.perf_counter() - t0}, info)


def preflight(job: Job) -> str:
    """Locate the job's SAM checkpoint without loading it (an absent default raises JobSkipped)."""
    return f"checkpoint {sam_checkpoint(job.method)}"


def needs(job: Job) -> list[Any]:
    """What a sam job opens besides its data: its checkpoint, located and checked against the official SHA-256
    (unless the method sets ``allow_unofficial``)."""
    from defectbench.bench.needs import file_need, weights_need
    from defectbench.downloads.catalog import sam_file
    from defectbench.methods.sam.checkpoints import UNOFFICIAL_HINT, locate, verify_checkpoint
    from defectbench.methods.sam.registry import get_spec

    opts = job.method.settings
    assert isinstance(opts, SamOptions)
    if not opts.checkpoint:
        return [weights_need(sam_file(opts.model), UNOFFICIAL_HINT, opts.allow_unofficial)]
    spec = get_spec(opts.model)
    return [file_need(lambda: verify_checkpoint(spec, locate(spec.name, opts.checkpoint),
                                                allow_unofficial=opts.allow_unofficial),
                      opts.checkpoint, "check the method's checkpoint in the config")]
