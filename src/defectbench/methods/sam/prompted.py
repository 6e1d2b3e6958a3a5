"""SAM with prompts: the image embedding once per image (cached on disk), the official decoder once per prompt.

:class:`PromptedSam` wraps the official predictors (``segment_anything.SamPredictor`` for SAM and MobileSAM,
``sam2.SAM2ImagePredictor`` for SAM 2.1): the encoder output of an image comes from :mod:`.embeddings` when it
is cached (so every protocol, job and re-run after the first reuses it) and SAM's own ``predict`` decodes each
prompt, so the masks and scores are the official ones.

:func:`run_protocol` turns a region source into a map (see :mod:`.prompts` for the placement rules):

* region modes: one decoder call per prompt with SAM's three masks (``multimask_output=True``); the mask kept
  is SAM's highest predicted IoU (``choice="score"``, deployable) or the best of the three against the target
  (``choice="oracle"``): the prompt's ground-truth component, or the whole ground truth for ``box-all`` and for
  prompts from a model's map. Both picks are recorded whenever the ground truth is known. The map is the union
  of the kept masks;
* ``interactive``: point 1 as ``point-largest`` (three masks, choice as above); points 2..K each at the centre
  of the largest error region of the previous mask (positive in a missed region, negative in a false one),
  decoded with all points so far and the previous low-resolution logits as mask input, one mask
  (``multimask_output=False``), as SAM's paper simulates interaction. The map after each point is kept (the
  K-point curve);
* no region in the source (a defect-free image, or nothing above the light model's threshold): no prompt, an
  empty map.

:class:`PromptedSamMethod` is the :class:`~defectbench.methods.base.Method` of the experiment runner and of
``defectbench sam predict --prompt``; with ``prompts_from`` a light model's map is the region source
(threshold and area rules of :func:`.prompts.map_regions`) and ``fuse`` combines the result with that map:
``union`` (SAM's masks united; the default) or ``mean`` (``(SAM union + light map) / 2``: 1 where both agree,
about one half where only one of them fires).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectbench.errors import ConfigError, DefectbenchError
from defectbench.methods.sam.checkpoints import CheckpointInfo, checkpoint_identity, load_model
from defectbench.methods.sam.embeddings import EmbeddingCache, embedding_key, predictor_arrays, restore_predictor
from defectbench.methods.sam.prompts import (
    Prompt,
    check_jitter,
    check_k,
    check_mode,
    image_rng,
    map_regions,
    next_click,
    region_prompts,
)
from defectbench.methods.sam.proposals import image_sha256
from defectbench.methods.sam.registry import get_spec

CHOICES = ("score", "oracle")
FUSIONS = ("union", "mean")


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two boolean masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@dataclass
class Decoded:
    """SAM's answer to one prompt: masks ``C x H x W`` (bool), predicted IoUs ``C``, low-res logits ``C x h x w``."""

    masks: np.ndarray
    scores: np.ndarray
    lowres: np.ndarray


class PromptedSam:
    """A SAM-family model answering prompts; image embeddings are computed once and cached (see module docstring)."""

    def __init__(self, model: str, checkpoint: str | os.PathLike | None = None, device: str = "auto",
                 cache_dir: str | os.PathLike | None = None, random_seed: int | None = None,
                 allow_unofficial: bool = False) -> None:
        self.spec = get_spec(model)
        self.checkpoint, self.device_name, self.random_seed = checkpoint, device, random_seed
        self.allow_unofficial = allow_unofficial
        self.identity: CheckpointInfo = checkpoint_identity(self.spec.name, checkpoint, random_seed, cache_dir,
                                                            allow_unofficial)
        self.cache = EmbeddingCache(embedding_key(self.spec.name, self.identity.sha256), cache_dir)
        self.device: str | None = None
        self._predictor: Any = None
        self._current: str | None = None
        self.stats: dict[str, float] = {"encoder_calls": 0, "cached_embeddings": 0, "encoder_s": 0.0,
                                        "decoder_calls": 0, "decoder_s": 0.0}

    @property
    def family(self) -> str:
        """``sam2`` for SAM 2.1, ``sam`` for SAM and MobileSAM."""
        return "sam2" if self.spec.family == "sam2" else "sam"

    def predictor(self) -> Any:
        """The official predictor (loads the model on first call)."""
        if self._predictor is None:
            from defectbench.runtime import resolve_device

            self.device = resolve_device(self.device_name)
            net, info = load_model(self.spec.name, self.checkpoint, self.device, self.random_seed, self.cache.root,
                                   self.allow_unofficial)
            if info.sha256 != self.identity.sha256:  # the file changed since it was hashed
                self.identity = info
                self.cache = EmbeddingCache(embedding_key(self.spec.name, info.sha256), self.cache.root)
            if self.family == "sam2":
                from sam2.sam2_image_predictor import SAM2ImagePredictor

                from defectbench.methods.sam.generator import _fit_feature_sizes

                self._predictor = SAM2ImagePredictor(net)
                _fit_feature_sizes(self._predictor, net)
            else:
                from segment_anything import SamPredictor

                self._predictor = SamPredictor(net)
        return self._predictor

    def set_image(self, image_rgb: np.ndarray) -> None:
        """Make ``image_rgb`` (``H x W x 3`` uint8) the image prompts refer to: its embedding from the cache, or the
        encoder run once and its output cached."""
        import torch

        key = image_sha256(image_rgb)
        if key == self._current:
            return
        pred = self.predictor()
        arrays = self.cache.get_for(key, image_rgb.shape[:2])
        if arrays is not None:
            self.stats["cached_embeddings"] += 1
            restore_predictor(pred, self.family, arrays, self.device)
        else:
            t0 = time.perf_counter()
            with torch.inference_mode():
                pred.set_image(image_rgb)
            self.stats["encoder_s"] += time.perf_counter() - t0
            self.stats["encoder_calls"] += 1
            self.cache.put(key, predictor_arrays(pred, self.family, image_rgb.shape[:2]))
        self._current = key

    def decode(self, prompt: Prompt, multimask: bool = True, mask_input: np.ndarray | None = None) -> Decoded:
        """SAM's masks for one prompt on the current image (the official ``predict``)."""
        import torch

        pred = self.predictor()
        pts = prompt.points if len(prompt.points) else None
        labels = prompt.labels if len(prompt.points) else None
        t0 = time.perf_counter()
        with torch.inference_mode():
            masks, scores, low = pred.predict(point_coords=pts, point_labels=labels, box=prompt.box,
                                              mask_input=None if mask_input is None else mask_input[None],
                                              multimask_output=multimask)
        self.stats["decoder_s"] += time.perf_counter() - t0
        self.stats["decoder_calls"] += 1
        return Decoded(np.asarray(masks) > 0.5, np.asarray(scores, np.float32), np.asarray(low, np.float32))

    def record(self) -> dict[str, Any]:
        """Model, weights, cache and this run's counts (encoder calls, cache hits, decoder calls and seconds)."""
        return {"model": self.spec.name, "model_title": self.spec.title,
                "checkpoint": {"path": str(self.identity.path) if self.identity.path else None,
                               "sha256": self.identity.sha256, "official": self.identity.official,
                               "random_weights_seed": self.random_seed},
                "embedding_cache": str(self.cache.dir), "device": self.device or self.device_name,
                "this_run": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.stats.items()}}


@dataclass
class ProtocolResult:
    """A protocol's output on one image: the map, the prompts, SAM's scores and both mask choices."""

    map: np.ndarray
    prompts: list[Prompt] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    pick_score: list[int] = field(default_factory=list)
    pick_oracle: list[int | None] = field(default_factory=list)
    jaccard_score: list[float | None] = field(default_factory=list)
    jaccard_oracle: list[float | None] = field(default_factory=list)
    steps: list[np.ndarray] = field(default_factory=list)  # interactive: the map after each point

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (prompts, scores, picks and their Jaccard against the target)."""
        r4 = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
        return {"prompts": [p.to_dict() for p in self.prompts], "scores": [[r4(s) for s in row] for row in self.scores],
                "pick_score": self.pick_score, "pick_oracle": self.pick_oracle,
                "jaccard_score": [r4(v) for v in self.jaccard_score],
                "jaccard_oracle": [r4(v) for v in self.jaccard_oracle],
                "steps_area": [int(s.sum()) for s in self.steps]}


def _pick(dec: Decoded, target: np.ndarray | None, choice: str) -> tuple[int, int | None, float | None, float | None]:
    """Index of SAM's highest predicted IoU, of the best mask against ``target`` (None without one), their Jaccards."""
    by_score = int(np.argmax(dec.scores))
    if target is None:
        if choice == "oracle":
            raise DefectbenchError("the oracle mask choice needs the image's ground truth")
        return by_score, None, None, None
    js = [jaccard(m, target) for m in dec.masks]
    by_gt = int(np.argmax(js))
    return by_score, by_gt, js[by_score], js[by_gt]


def run_protocol(sam: PromptedSam, image_rgb: np.ndarray, mode: str, source: np.ndarray | None,
                 gt: np.ndarray | None = None, choice: str = "score", jitter: float = 0.0,
                 rng: np.random.Generator | None = None, k: int = 1, gt_source: bool = True) -> ProtocolResult:
    """Prompt SAM on one image (see the module docstring); ``source`` is the region mask (ground truth or a model's
    regions), ``gt`` the ground truth when known (oracle choice, recorded picks), ``gt_source`` whether ``source``
    is the ground truth (then each prompt's target is its own component)."""
    check_mode(mode)
    hw = image_rgb.shape[:2]
    empty = np.zeros(hw, bool)
    if source is None or not np.asarray(source).any():
        return ProtocolResult(empty.astype(np.float32), steps=[empty] * (k if mode == "interactive" else 0))
    source = np.asarray(source, bool)
    rng = rng if rng is not None else np.random.default_rng(0)
    sam.set_image(image_rgb)
    out = ProtocolResult(empty.astype(np.float32))

    def keep(dec: Decoded, target: np.ndarray | None) -> int:
        by_score, by_gt, j_s, j_o = _pick(dec, target, choice)
        out.scores.append(dec.scores.tolist())
        out.pick_score.append(by_score)
        out.pick_oracle.append(by_gt)
        out.jaccard_score.append(j_s)
        out.jaccard_oracle.append(j_o)
        return by_gt if choice == "oracle" else by_score

    if mode == "interactive":
        if gt is None:
            raise DefectbenchError("interactive prompts need the image's ground truth")
        (first,) = region_prompts(source, "point-largest", jitter, rng)
        points, labels = list(first.points), list(first.labels)
        dec = sam.decode(first)
        i = keep(dec, gt)
        pred, low = dec.masks[i], dec.lowres[i]
        out.prompts.append(first)
        out.steps.append(pred)
        for _ in range(1, k):
            click = next_click(pred, gt)
            if click is None:  # nothing left to correct
                out.steps.append(pred)
                continue
            points.append(click[0])
            labels.append(click[1])
            prompt = Prompt(np.array(points, np.float32), np.array(labels, np.int32))
            dec = sam.decode(prompt, multimask=False, mask_input=low)
            out.scores.append(dec.scores.tolist())
            pred, low = dec.masks[0], dec.lowres[0]
            out.prompts.append(prompt)
            out.steps.append(pred)
        out.map = pred.astype(np.float32)
        return out
    union = empty.copy()
    for prompt in region_prompts(source, mode, jitter, rng):
        dec = sam.decode(prompt)
        target = (prompt.region if (gt_source and prompt.region is not None) else gt)
        union |= dec.masks[keep(dec, target)]
        out.prompts.append(prompt)
    out.map = union.astype(np.float32)
    return out


@dataclass(frozen=True)
class PromptSettings:
    """A prompt protocol: mode, mask choice, jitter, interactive points and the region source's rules."""

    mode: str
    choice: str = "score"
    jitter: float = 0.0
    k: int = 1
    seed: int = 0
    from_map: bool = False  # regions from a model's map (deployable) instead of the ground truth
    threshold: float | str = 0.5
    min_area: float = 0.0005
    fuse: str = "union"

    def __post_init__(self) -> None:
        check_mode(self.mode)
        check_jitter(self.jitter)
        check_k(self.k)
        if self.choice not in CHOICES:
            raise ConfigError(f"unknown mask choice {self.choice!r}; choose one of {', '.join(CHOICES)}")
        if self.fuse not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fuse!r}; choose one of {', '.join(FUSIONS)}")
        if self.k > 1 and self.mode != "interactive":
            raise ConfigError(f"k (points) is for the interactive mode, not {self.mode}")
        if self.from_map and self.mode == "interactive":
            raise ConfigError("the interactive mode places points from the ground truth's error; it cannot take "
                              "prompts from a model's map")
        if not self.from_map and self.fuse != "union":
            raise ConfigError("fuse combines SAM with the map that prompted it; it needs prompts from a model")

    @property
    def oracle(self) -> bool:
        """Whether the protocol reads the test ground truth (ground-truth prompts or the oracle mask choice)."""
        return not self.from_map or self.choice == "oracle"

    def tag(self) -> str:
        """A short name of the protocol for method names: ``box-per-region``, ``interactive-k5``, ``+oracle``…"""
        out = self.mode + (f"-k{self.k}" if self.mode == "interactive" else "")
        out += "-jit" + f"{self.jitter:g}" if self.jitter else ""
        return out + ("-oraclepick" if self.choice == "oracle" else "")


MapSource = Callable[[Any, np.ndarray], np.ndarray]  # (sample or None, image) -> light map in [0, 1]


class PromptedSamMethod:
    """A prompt protocol as a :class:`~defectbench.methods.base.Method`: ``predict(image, gt)`` or, in ``write_maps``,
    ``predict_sample(sample)``; records each image's prompts, scores and both picks in ``records_dir``."""

    def __init__(self, sam: PromptedSam, settings: PromptSettings, light: MapSource | None = None,
                 light_name: str | None = None, records_dir: str | os.PathLike | None = None) -> None:
        if settings.from_map and light is None:
            raise ConfigError("prompts from a model's map need that model (prompts_from)")
        self.sam, self.settings, self.light, self.light_name = sam, settings, light, light_name
        self.oracle = settings.oracle
        self.needs_gt = not settings.from_map or settings.choice == "oracle"
        self.name = f"sam-{sam.spec.name}-prompt-{settings.tag()}" + (f"-from-{light_name}" if light_name else "")
        self.records_dir = Path(records_dir) if records_dir else None
        self.steps_dir: Path | None = None
        self.light_s = 0.0
        self.light_calls = 0

    def result(self, image: np.ndarray, gt: np.ndarray | None = None, sample: Any = None,
               key: str | None = None) -> tuple[ProtocolResult, np.ndarray | None]:
        """The protocol's result on one image and the light map used (None for ground-truth prompts)."""
        from defectbench.data import to_rgb

        st = self.settings
        rgb = to_rgb(image)
        rng = image_rng(st.seed, key or image_sha256(rgb))
        light_map = None
        if st.from_map:
            t0 = time.perf_counter()
            light_map = np.asarray(self.light(sample, image), np.float32)
            self.light_s += time.perf_counter() - t0
            self.light_calls += 1
            source = map_regions(light_map, st.threshold, st.min_area)
        else:
            if gt is None:
                raise DefectbenchError(f"{st.mode} prompts are placed from the ground truth: the image's mask is needed")
            source = gt
        res = run_protocol(self.sam, rgb, st.mode, source, gt, st.choice, st.jitter, rng, st.k,
                           gt_source=not st.from_map)
        if st.from_map and st.fuse == "mean" and res.prompts:
            res.map = (0.5 * (res.map + light_map)).astype(np.float32)
        return res, light_map

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """The ``H x W`` float32 map in [0, 1] of one image."""
        return self.result(image, gt)[0].map

    def predict_sample(self, sample: Any) -> np.ndarray:
        """The map of a dataset sample (its mask read when the protocol needs or records it); records written."""
        from defectbench.data.imageio import write_saliency_map

        image = sample.image()
        gt = sample.mask() if (self.needs_gt or sample.mask_path is not None) else None
        res, _ = self.result(image, gt, sample, sample.id)
        if self.records_dir is not None:
            from defectbench.atomic import atomic_write_text

            atomic_write_text(self.records_dir / f"{sample.id}.json", json.dumps(res.to_dict()))
        if self.steps_dir is not None and res.steps:
            for j, step in enumerate(res.steps, start=1):
                write_saliency_map(self.steps_dir / f"k{j}" / f"{sample.id}.png", step.astype(np.float32))
        return res.map

    def record(self) -> dict[str, Any]:
        """What ran: the protocol, the model and this run's counts (light model calls included)."""
        st = self.settings
        return {"method": self.name, "oracle": self.oracle, "protocol": {
            "mode": st.mode, "choice": st.choice, "jitter": st.jitter, "k": st.k, "seed": st.seed,
            "prompts_from": self.light_name, "threshold": st.threshold if st.from_map else None,
            "min_area": st.min_area if st.from_map else None, "fuse": st.fuse},
            "sam": self.sam.record(), "light": {"calls": self.light_calls, "seconds": round(self.light_s, 4)}}


def summarize_records(records_dir: Path) -> dict[str, Any]:
    """Both mask choices over a run's records: mean Jaccard of SAM's pick and of the oracle pick, how often they agree."""
    js, jo, agree, n = [], [], 0, 0
    for p in sorted(Path(records_dir).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        for a, b, x, y in zip(r["pick_score"], r["pick_oracle"], r["jaccard_score"], r["jaccard_oracle"]):
            if b is None:
                continue
            n += 1
            agree += int(a == b)
            js.append(x)
            jo.append(y)
    if not n:
        return {"prompts_with_gt": 0}
    return {"prompts_with_gt": n, "jaccard_sam_pick": round(float(np.mean(js)), 4),
            "jaccard_oracle_pick": round(float(np.mean(jo)), 4), "same_pick": round(agree / n, 4)}


def predict_prompted_dataset(model: str, dataset: Any, split: str, out_dir: str | os.PathLike, mode: str,
                             choice: str = "score", k: int = 1, jitter: float = 0.0, seed: int = 0,
                             prompts_from: str | None = None, threshold: float | str = 0.5, min_area: float = 0.0005,
                             fuse: str = "union", checkpoint: str | os.PathLike | None = None, device: str = "auto",
                             light: tuple[MapSource, str] | None = None,
                             cache_dir: str | os.PathLike | None = None, random_seed: int | None = None,
                             limit: int | None = None, evaluate: bool = True, data_root: str | os.PathLike | None = None,
                             allow_unofficial: bool = False) -> dict[str, Any]:
    """Write a prompt protocol's maps of a dataset split (``maps/``, ``prompts/<id>.json``, ``steps/k<j>/`` for the
    interactive mode) and ``run.json`` (settings, counts, both mask choices, metrics and the K-point curve).

    Every setting is checked before any model is loaded or image read: a bad mode, ``k``, jitter or prompt source,
    or ground-truth prompts on a split without masks, is one ConfigError line. Maps already there are kept.
    """
    from defectbench.atomic import atomic_write_json
    from defectbench.data import load_dataset
    from defectbench.methods.base import write_maps
    from defectbench.methods.sam.predict import evaluate_maps

    settings = PromptSettings(mode, choice, jitter, k, seed, prompts_from is not None, threshold, min_area, fuse)
    ds = load_dataset(dataset, data_root) if isinstance(dataset, str) else dataset
    samples = ds.split(split)[:limit] if limit is not None else ds.split(split)
    if settings.oracle and samples and all(s.mask_path is None for s in samples):
        raise ConfigError(f"{ds.name}/{split} has no masks: {mode} prompts from the ground truth (or --choice oracle) "
                          f"need them; use --prompts-from MODEL:WEIGHTS or a split with masks")
    if prompts_from and light is None:
        raise ConfigError(f"prompts_from {prompts_from!r}: pass the light model's map source as light= (the CLI "
                          "resolves it with defectbench.bench.families.sam_prompt.light_from_spec)")
    light_fn, light_name = light if light is not None else (None, None)
    sam = PromptedSam(model, checkpoint, device, cache_dir, random_seed, allow_unofficial)
    out = Path(out_dir)
    method = PromptedSamMethod(sam, settings, light_fn, light_name, records_dir=out / "prompts")
    if mode == "interactive":
        method.steps_dir = out / "steps"
    t0 = time.perf_counter()
    counts = write_maps(method, samples, out / "maps")
    record: dict[str, Any] = {"config": {"dataset": ds.name, "split": split, "limit": limit}, **method.record(),
                              "n_images": len(samples), "maps_written": counts["written"], "maps_kept": counts["kept"],
                              "choices": summarize_records(out / "prompts"), "seconds": round(time.perf_counter() - t0, 3)}
    if evaluate:
        record["metrics"] = evaluate_maps(out / "maps", samples)
        if method.oracle:
            record["metrics"]["note"] = "ORACLE: the prompts or the mask choice read each image's ground truth"
        if mode == "interactive":
            record["curve"] = {str(j): evaluate_maps(out / "steps" / f"k{j}", samples) for j in range(1, k + 1)}
    atomic_write_json(out / "run.json", record)
    return record
