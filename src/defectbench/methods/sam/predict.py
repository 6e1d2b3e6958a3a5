"""The SAM pipeline as library calls: proposals (cached) -> selection -> saliency maps.

Entry points (used by ``defectbench sam predict`` and by the experiment runner):

``predict_dataset(model, dataset, split, select, out_dir, checkpoint=None, device="auto", cache_dir=None,
amg_params=None, generator="fast", output="binary", random_seed=None, train_split=None, limit=None,
train_limit=None, evaluate=True, progress=True, data_root=None, allow_unofficial=False) -> dict``
    Writes ``<out_dir>/maps/<id>.png`` for every image of the split (8-bit PNG, written atomically) and
    ``<out_dir>/run.json`` (settings, checkpoint hash, versions, timings, proposal counts and — with
    ``evaluate`` — the paper's metrics plus pooled pixel max-F1). Images whose map exists are skipped, so
    an interrupted run (even ``kill -9``) resumes where it stopped; proposals come from the cache
    (:mod:`.proposals`), so SAM runs at most once per image and setting. The ``learned`` strategy first
    fits its selector on ``train_split`` (default: the split's training counterpart) and saves it as
    ``<out_dir>/selector.json``. Oracle strategies are labelled ``oracle`` in the method name, the label
    and a flag of ``run.json``.

``SamMethod(model, select="prior", ...)``
    The :class:`defectbench.methods.base.Method` protocol: ``predict(image) -> float32 map in [0, 1]``;
    oracle strategies need ``predict(image, gt=mask)``.

``ProposalSource``
    Proposals of any image from the cache, running SAM (loaded on first need) only on a miss.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.atomic import atomic_write_json
from defectbench.errors import ConfigError, DefectbenchError
from defectbench.methods.sam.checkpoints import CheckpointInfo, checkpoint_identity, load_model
from defectbench.methods.sam.features import (
    FEATURES,
    LogisticSelector,
    candidate_features,
    candidate_labels,
    fit_logistic,
    tune_threshold,
)
from defectbench.methods.sam.embeddings import EmbeddingCache, embedding_key
from defectbench.methods.sam.generator import GENERATORS, AmgParams, make_generator
from defectbench.methods.sam.proposals import ProposalCache, Proposals, image_sha256
from defectbench.methods.sam.registry import get_spec
from defectbench.methods.sam.selection import (
    OUTPUTS,
    STRATEGIES,
    PriorParams,
    Selection,
    candidates,
    is_oracle,
    oracle_best,
    oracle_combine,
    prior_scores,
    render,
    select_by_scores,
)


def method_name(model: str, select: str, output: str = "binary") -> str:
    """The method's name in results: ``sam-<model>-<strategy>[-<output>]`` (oracle strategies say so)."""
    return f"sam-{get_spec(model).name}-{select}" + ("" if output == "binary" else f"-{output}")


def method_label(model: str, select: str) -> str:
    """A human label; oracle strategies are marked as using the ground truth."""
    spec = get_spec(model)
    tag = " (ORACLE: selection uses the test ground truth)" if is_oracle(select) else " (ground-truth free)"
    return f"{spec.title} + {select}{tag}"


class ProposalSource:
    """Proposals of images from the cache; SAM is loaded (once) and run only for images not cached."""

    def __init__(self, model: str, checkpoint: str | os.PathLike | None = None, device: str = "auto",
                 cache_dir: str | os.PathLike | None = None, amg_params: dict[str, Any] | AmgParams | None = None,
                 generator: str = "fast", random_seed: int | None = None, keep_logits: bool = True,
                 allow_unofficial: bool = False) -> None:
        if generator not in GENERATORS:
            raise ConfigError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
        self.spec = get_spec(model)
        self.params = amg_params if isinstance(amg_params, AmgParams) else AmgParams.for_model(self.spec.name, amg_params)
        self.generator_kind = generator
        self.checkpoint = checkpoint
        self.device_name = device
        self.random_seed = random_seed
        self.keep_logits = keep_logits
        self.allow_unofficial = allow_unofficial
        self.identity: CheckpointInfo = checkpoint_identity(self.spec.name, checkpoint, random_seed, cache_dir,
                                                            allow_unofficial)
        self.cache = ProposalCache(self.cache_key(), cache_dir)
        self._gen = None
        self.device: str | None = None
        self.stats = {"sam_images": 0, "cached_images": 0, "sam_seconds": 0.0,
                      "encoder_calls": 0, "cached_embeddings": 0}  # encoder passes / embeddings read (whole images)
        self.timings: dict[str, float] = {}

    def cache_key(self) -> dict[str, Any]:
        """What the cached proposals depend on."""
        return {"model": self.spec.name, "weights_sha256": self.identity.sha256, "generator": self.generator_kind,
                "params": self.params.to_dict()}

    def generator(self):
        """The mask generator (loads the model on first call)."""
        if self._gen is None:
            from defectbench.runtime import resolve_device

            self.device = resolve_device(self.device_name)
            model, info = load_model(self.spec.name, self.checkpoint, self.device, self.random_seed, self.cache.root,
                                     self.allow_unofficial)
            if info.sha256 != self.identity.sha256:  # the file changed since it was hashed
                self.identity = info
                self.cache = ProposalCache(self.cache_key(), self.cache.root)
            embeddings = EmbeddingCache(embedding_key(self.spec.name, self.identity.sha256), self.cache.root)
            self._gen = make_generator(self.generator_kind, model, self.spec.name, self.params, self.keep_logits,
                                       embeddings)
        return self._gen

    def get(self, image_rgb: np.ndarray) -> Proposals:
        """Proposals of an ``H x W x 3`` RGB image (cached or computed and cached)."""
        key = image_sha256(image_rgb)
        props = self.cache.get(key)
        if props is not None and props.size == tuple(image_rgb.shape[:2]):
            self.stats["cached_images"] += 1
            return props
        gen = self.generator()
        t0 = time.perf_counter()
        props = gen.generate(image_rgb)
        self.stats["sam_seconds"] += time.perf_counter() - t0
        self.stats["sam_images"] += 1
        for k, v in getattr(gen, "timings", {}).items():
            self.timings[k] = v
        for k, v in getattr(gen, "counts", {}).items():  # encoder calls / embeddings from the shared cache
            self.stats[k] = v
        self.cache.put(key, props)
        return props


@dataclass
class SelectionConfig:
    """How proposals become a map: strategy, output kind, prior constants and (for ``learned``) the selector."""

    strategy: str
    output: str = "binary"
    prior: PriorParams = PriorParams()
    learned: LogisticSelector | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown selection {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"unknown output {self.output!r}; choose one of {', '.join(OUTPUTS)}")
        if self.output == "score" and is_oracle(self.strategy):
            raise ConfigError("--output score is for the ground-truth-free strategies (prior, learned)")


def select(props: Proposals, image: np.ndarray, cfg: SelectionConfig, gt: np.ndarray | None = None
           ) -> tuple[Selection, np.ndarray]:
    """Apply a selection strategy to an image's proposals; returns the selection and the proposal masks."""
    from defectbench.data.imageio import to_gray

    masks = props.masks()
    if is_oracle(cfg.strategy):
        if gt is None:
            raise DefectbenchError(f"{cfg.strategy} is an oracle: it needs the image's ground-truth mask")
        sel = oracle_combine(masks, gt) if cfg.strategy == "oracle-combine" else oracle_best(masks, gt)
        return sel, masks
    negations = cfg.prior.negations
    cands, origin = candidates(masks, negations)
    if not len(cands):
        return Selection([], np.zeros(props.size, dtype=bool)), masks
    feats = candidate_features(cands, origin, to_gray(image), props.predicted_iou, props.stability_score)
    if cfg.strategy == "prior":
        scores = prior_scores(feats, list(FEATURES), cfg.prior)
        return select_by_scores(cands, origin, scores, cfg.prior.threshold), masks
    if cfg.learned is None:
        raise ConfigError("the learned strategy needs a trained selector (train it with predict_dataset or "
                          "train_selector)")
    scores = cfg.learned.predict_proba(feats)
    return select_by_scores(cands, origin, scores, cfg.learned.threshold), masks


def saliency_map(props: Proposals, image: np.ndarray, cfg: SelectionConfig, gt: np.ndarray | None = None) -> np.ndarray:
    """The float32 ``H x W`` map in [0, 1] of an image from its proposals."""
    sel, masks = select(props, image, cfg, gt)
    return render(sel, props, cfg.output, masks)


def train_selector(source: ProposalSource, samples: list, progress: bool = True,
                   info: dict[str, Any] | None = None) -> LogisticSelector:
    """Fit the ``learned`` selector on the proposals of training samples (their ground truth is the label)."""
    from defectbench.data import to_gray, to_rgb

    rows, labels, tuning = [], [], []
    with _progress(progress) as bar:
        task = bar.add_task("train selector (proposals of training images)", total=len(samples))
        for s in samples:
            image = s.image()
            props = source.get(to_rgb(image))
            gt = s.mask()
            masks = props.masks()
            cands, origin = candidates(masks, True)
            if len(cands):
                feats = candidate_features(cands, origin, to_gray(image), props.predicted_iou, props.stability_score)
                rows.append(feats)
                labels.append(candidate_labels(cands, gt))
                tuning.append((feats, cands, gt))
            bar.advance(task)
    if not rows:
        raise DefectbenchError("no proposals on the training images: the learned selector has nothing to learn from")
    x, y = np.concatenate(rows), np.concatenate(labels)
    if y.all() or not y.any():
        raise DefectbenchError("training candidates are all of one class; the learned selector cannot be fitted")
    sel = fit_logistic(x, y)
    threshold, f1 = tune_threshold([(sel.predict_proba(f), c, g) for f, c, g in tuning])
    sel.threshold = threshold
    sel.info = {**(info or {}), "n_images": len(samples), "n_candidates": int(len(y)), "n_positive": int(y.sum()),
                "train_pooled_f1": f1}
    return sel


class _progress:
    """A rich progress bar, or a silent stand-in."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return _Silent()
        from defectbench.progress import make_progress

        self.p = make_progress(transient=False)
        return self.p.__enter__()

    def __exit__(self, *exc):
        if self.enabled:
            return self.p.__exit__(*exc)
        return False


class _Silent:
    def add_task(self, *a, **k):
        return 0

    def advance(self, *a, **k):
        pass

    def update(self, *a, **k):
        pass


def default_train_split(dataset, split: str) -> str:
    """The training counterpart of a test split (``test`` -> ``train``, ``1to1-test`` -> ``1to1-train``)."""
    cand = split.replace("test", "train")
    if cand != split and cand in dataset.splits:
        return cand
    raise ConfigError(f"cannot tell the training split that goes with {split!r}; pass train_split / --train-split")


def _config_block(source: ProposalSource, dataset_name: str, split: str, cfg: SelectionConfig) -> dict[str, Any]:
    return {"model": source.spec.name, "weights_sha256": source.identity.sha256, "dataset": dataset_name,
            "split": split, "select": cfg.strategy, "output": cfg.output, "generator": source.generator_kind,
            "amg_params": source.params.to_dict()}


def predict_dataset(model: str, dataset, split: str, select: str, out_dir: str | os.PathLike,
                    checkpoint: str | os.PathLike | None = None, device: str = "auto",
                    cache_dir: str | os.PathLike | None = None, amg_params: dict[str, Any] | None = None,
                    generator: str = "fast", output: str = "binary", random_seed: int | None = None,
                    train_split: str | None = None, limit: int | None = None, train_limit: int | None = None,
                    evaluate: bool = True, progress: bool = True, data_root: str | os.PathLike | None = None,
                    allow_unofficial: bool = False) -> dict[str, Any]:
    """Write the saliency maps of a dataset split and ``run.json``; return the run record (see module docstring).

    A thin loop over :class:`SamMethod` and :func:`defectbench.methods.base.write_maps`, the loop the experiment
    runner uses too.
    """
    from defectbench.data import load_dataset
    from defectbench.methods.base import write_maps

    t_start = time.perf_counter()
    ds = load_dataset(dataset, data_root) if isinstance(dataset, str) else dataset
    samples = ds.split(split)
    if limit is not None:
        samples = samples[:limit]
    method = SamMethod(model, select, checkpoint, device, cache_dir, amg_params, generator, output,
                       random_seed=random_seed, allow_unofficial=allow_unofficial)
    out = Path(out_dir)
    run_file = out / "run.json"
    config = _config_block(method.source, ds.name, split, method.cfg)
    if run_file.is_file():
        try:
            previous = json.loads(run_file.read_text()).get("config")
        except (OSError, ValueError):
            previous = None
        if previous is not None and previous != config:
            diff = sorted(k for k in config if previous.get(k) != config[k])
            raise DefectbenchError(f"{out}: holds a run with other settings ({', '.join(diff)}); "
                                   f"use another --out or delete that folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_file, {"config": config, "status": "running"})
    if select == "learned":
        name = train_split or default_train_split(ds, split)
        if name == split:
            raise ConfigError("the learned selector must be trained on another split than the one it is applied to")
        method.fit(ds.split(name)[:train_limit] if train_limit is not None else ds.split(name), out,
                   {"dataset": ds.name, "train_split": name, "train_limit": train_limit}, progress)
    with _progress(progress) as bar:
        task = bar.add_task(f"{method.name} on {ds.name}/{split}", total=len(samples))
        counts = write_maps(method, samples, out / "maps", advance=lambda n: bar.advance(task, n))
    record: dict[str, Any] = {"config": config, "status": "complete", **method.record(), "n_images": len(samples),
                              "limit": limit}
    record["this_run"] = {**record["this_run"], "maps_written": counts["written"], "maps_skipped": counts["kept"],
                          "seconds": round(time.perf_counter() - t_start, 3)}
    if evaluate:
        record["metrics"] = evaluate_maps(out / "maps", samples)
        if method.oracle:
            record["metrics"]["note"] = "ORACLE: the selection read each test image's ground truth"
    atomic_write_json(run_file, record)
    return record


def learned_selector(source: ProposalSource, samples: list, work_dir: Path, info: dict[str, Any],
                     progress: bool) -> tuple[LogisticSelector, dict[str, Any]]:
    """Load ``selector.json`` of an earlier (interrupted) fit on the same training set, or fit and save it."""
    info = {**info, "cache_key": source.cache.digest}
    path = Path(work_dir) / "selector.json"
    if path.is_file():
        try:
            d = json.loads(path.read_text())
            if {k: d.get("info", {}).get(k) for k in info} == info:
                return LogisticSelector.from_dict(d), {"path": str(path), "reused": True, **d["info"]}
        except (OSError, ValueError, KeyError):
            pass
    sel = train_selector(source, samples, progress, info)
    atomic_write_json(path, sel.to_dict())
    return sel, {"path": str(path), "reused": False, **sel.info}


def evaluate_maps(maps_dir: Path, samples: list) -> dict[str, Any]:
    """The paper's metrics and pooled pixel max-F1 (beta = 1) of the maps of ``samples``."""
    from defectbench.data.imageio import read_map_for_mask
    from defectbench.metrics import aggregate, pixel_max_f1, score_image

    scores = []
    for s in samples:
        path = maps_dir / f"{s.id}.png"
        if path.is_file():
            gt = s.mask()
            pred, _ = read_map_for_mask(path, gt.shape)
            scores.append(score_image(pred, gt))
    if not scores:
        return {"n": 0}
    summary = aggregate(scores)
    summary["pixel_max_f1"] = pixel_max_f1(scores)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}


class SamMethod:
    """A SAM pipeline as a :class:`defectbench.methods.base.Method` (``predict(image)``, proposals cached)."""

    def __init__(self, model: str, select: str = "prior", checkpoint: str | os.PathLike | None = None,
                 device: str = "auto", cache_dir: str | os.PathLike | None = None,
                 amg_params: dict[str, Any] | None = None, generator: str = "fast", output: str = "binary",
                 selector: LogisticSelector | str | os.PathLike | None = None, random_seed: int | None = None,
                 prior: PriorParams = PriorParams(), allow_unofficial: bool = False) -> None:
        if isinstance(selector, (str, os.PathLike)):
            selector = LogisticSelector.from_dict(json.loads(Path(selector).read_text()))
        self.cfg = SelectionConfig(select, output, prior, selector)
        self.source = ProposalSource(model, checkpoint, device, cache_dir, amg_params, generator, random_seed,
                                     allow_unofficial=allow_unofficial)
        self.name = method_name(model, select, output)
        self.oracle = is_oracle(select)
        self.model, self.random_seed = model, random_seed
        self.selector_record: dict[str, Any] | None = None

    def fit(self, train_samples: list, work_dir: str | os.PathLike, info: dict[str, Any] | None = None,
            progress: bool = False) -> None:
        """Fit the ``learned`` selector on training samples (saved in ``work_dir``; reused after a restart)."""
        if self.cfg.strategy != "learned":
            return
        self.cfg.learned, self.selector_record = learned_selector(self.source, list(train_samples), Path(work_dir),
                                                                  dict(info or {}), progress)

    def record(self) -> dict[str, Any]:
        """What ran: model, weights (path and SHA-256), selection, cache, device, versions, this run's counts."""
        from defectbench.runtime import device_description, git_commit, versions

        src = self.source
        out = {"method": self.name, "label": method_label(self.model, self.cfg.strategy), "oracle": self.oracle,
               "model_title": src.spec.title,
               "checkpoint": {"path": str(src.identity.path) if src.identity.path else None,
                              "sha256": src.identity.sha256, "official": src.identity.official,
                              "random_weights_seed": self.random_seed},
               "cache": {"dir": str(src.cache.dir), "key": src.cache_key()},
               "device": src.device or src.device_name,
               "device_description": device_description(src.device) if src.device else None,
               "versions": versions(), "git_commit": git_commit(),
               "this_run": {**src.stats, "generator_timings": {k: round(v, 3) for k, v in src.timings.items()}}}
        if self.selector_record:
            out["selector"] = self.selector_record
        return out

    def proposals(self, image: np.ndarray) -> Proposals:
        """The image's proposals (cached)."""
        from defectbench.data import to_rgb

        return self.source.get(to_rgb(image))

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """The ``H x W`` float32 map in [0, 1]; oracle strategies need ``gt``."""
        return saliency_map(self.proposals(image), image, self.cfg, gt)
