"""A fitted anomaly model as a :class:`~defectbench.methods.base.Method`, and its weights-only file.

    from defectbench.methods.anomaly import AnomalySpec, fit_anomaly, AnomalyMethod
    method = fit_anomaly(AnomalySpec("patchcore", "efficientnet_lite0"), train_images, calib_images)
    method.save("patchcore.safetensors")             # memory bank + rule + settings; no pickle
    method = AnomalyMethod.load("patchcore.safetensors")
    prob = method.predict(image)                     # float32 map in [0, 1] of the image's size

The file is a safetensors file: the fitted tensors (memory bank, or PaDiM's means and inverse covariances), the
score-to-map rule as float64, and the settings as JSON metadata, with the sha256 of the backbone's ImageNet weights
file (the weights themselves stay where they are; a fitted model loads only with the same weights).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defectbench.errors import CheckpointError, DataError
from defectbench.methods.anomaly.calibration import TARGET_FALSE_ALARMS, ScoreToMap
from defectbench.deploy.export import sha256_file
from defectbench.methods.anomaly.features import WIDE_RESNET, build_backbone
from defectbench.methods.anomaly.features import backbone_weights as locate_weights
from defectbench.methods.anomaly.model import AnomalyModel, Bar, batches
from defectbench.methods.anomaly.padim import DIMS, LAYERS as PADIM_LAYERS, Padim
from defectbench.methods.anomaly.patchcore import CORESET_RATIO, LAYERS as PATCHCORE_LAYERS, PatchCore

FORMAT = "defectbench-anomaly/1"
META_KEY = "defectbench"
KINDS = ("patchcore", "padim")
PADIM_WRN_DIMS = 550  # PaDiM's choice for WideResNet-50


@dataclass(frozen=True)
class AnomalySpec:
    """What to build: method kind, backbone, input size and the kind's settings (``None`` = the kind's default)."""

    kind: str
    backbone: str = "efficientnet_lite0"
    size: int = 224
    layers: tuple[int, ...] | None = None
    coreset_ratio: float = CORESET_RATIO
    dims: int | None = None
    sigma: float = 4.0
    seed: int = 0
    nn_engine: str = "torch"
    backbone_weights: str | None = None

    def resolved_layers(self) -> tuple[int, ...]:
        """The feature stages used: the given ones, else PatchCore's (2, 3) or PaDiM's (1, 2, 3)."""
        if self.layers is not None:
            return tuple(self.layers)
        return PATCHCORE_LAYERS if self.kind == "patchcore" else PADIM_LAYERS

    def resolved_dims(self) -> int:
        """PaDiM's kept channels: the given number, else 550 for WideResNet-50 and 100 otherwise."""
        return self.dims if self.dims is not None else (PADIM_WRN_DIMS if self.backbone == WIDE_RESNET else DIMS)


def build_model(spec: AnomalySpec, pretrained: bool = True, device: str = "cpu") -> AnomalyModel:
    """Build the (unfitted) model of ``spec``; ImageNet backbone weights from disk unless not ``pretrained``."""
    if spec.kind not in KINDS:
        raise CheckpointError(f"unknown anomaly method {spec.kind!r}; choose one of {', '.join(KINDS)}")
    backbone = build_backbone(spec.backbone, spec.resolved_layers(), pretrained, spec.backbone_weights, device)
    if spec.kind == "patchcore":
        return PatchCore(backbone, spec.size, spec.coreset_ratio, spec.sigma, spec.seed, spec.nn_engine)
    return Padim(backbone, spec.size, spec.resolved_dims(), spec.sigma, spec.seed)


class AnomalyMethod:
    """A fitted anomaly model plus its score-to-map rule: ``predict(image) -> float map in [0, 1]``."""

    oracle = False

    def __init__(self, model: AnomalyModel, spec: AnomalySpec, rule: ScoreToMap | None = None,
                 facts: dict[str, Any] | None = None, device: str = "cpu", name: str | None = None) -> None:
        self.model, self.spec, self.rule, self.device = model, spec, rule, device
        self.facts = dict(facts or {})
        self.name = name or f"{spec.kind}-{spec.backbone}"

    def scores(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Raw anomaly maps (float32, each of its image's size)."""
        return self.model.score_maps(images, self.device)

    def calibrate(self, images: Iterable[np.ndarray], alpha: float = TARGET_FALSE_ALARMS, batch: int = 8,
                  advance: Callable[[int], None] | None = None) -> ScoreToMap:
        """Fit the score-to-map rule on defect-free images held out from fitting (see :mod:`.calibration`)."""
        maps: list[np.ndarray] = []
        for chunk in batches(images, batch):
            maps += self.scores(chunk)
            if advance is not None:
                advance(len(chunk))
        try:
            self.rule = ScoreToMap.fit(maps, alpha)
        except ValueError as exc:
            raise DataError(f"{self.name}: {exc}") from None
        return self.rule

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Maps in [0, 1] by the fitted rule (float32, each of its image's size)."""
        if self.rule is None:
            raise RuntimeError(f"{self.name} has no score-to-map rule: call calibrate() first")
        return [self.rule(m) for m in self.scores(images)]

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """The map of one image: float32 ``HxW`` in [0, 1] (``gt`` is never read)."""
        return self.predict_batch([image])[0]

    def record(self) -> dict[str, Any]:
        """What the method is: settings, backbone weights, fit facts, the score-to-map rule."""
        return {"type": "anomaly", **self.model.options(), "backbone_weights": self.model.backbone.weights,
                "fitted_mb": round(self.model.state_mb(), 3), **self.facts,
                "rule": self.rule.as_dict() if self.rule else None}

    # -- the weights-only file -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted state, rule and settings as one safetensors file (atomically)."""
        from safetensors.torch import save

        from defectbench.atomic import atomic_write_bytes

        if self.rule is None:
            raise RuntimeError(f"{self.name} has no score-to-map rule: call calibrate() before save()")
        weights = self.model.backbone.weights
        meta = {"format": FORMAT, "name": self.name, "spec": asdict(self.spec), "facts": self.facts,
                "backbone_sha256": sha256_file(weights) if weights else None,
                "rule": {"alpha": self.rule.alpha, "n_images": self.rule.n_images}}
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.tensors().items()}
        tensors["rule"] = torch.tensor([self.rule.low, self.rule.threshold], dtype=torch.float64)
        path = Path(path)
        atomic_write_bytes(path, save(tensors, metadata={META_KEY: json.dumps(meta, default=str)}))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", backbone_weights: str | None = None) -> AnomalyMethod:
        """Load a file written by :meth:`save` (its backbone's ImageNet weights from disk, checked by sha256)."""
        meta, tensors = read_fitted(path)
        spec_fields = dict(meta["spec"])
        spec_fields["layers"] = tuple(spec_fields["layers"]) if spec_fields.get("layers") is not None else None
        if backbone_weights is not None:
            spec_fields["backbone_weights"] = backbone_weights
        spec = AnomalySpec(**spec_fields)
        pretrained = meta.get("backbone_sha256") is not None
        if pretrained:
            weights = locate_weights(spec.backbone, spec.backbone_weights)
            if meta["backbone_sha256"] != sha256_file(weights):
                raise CheckpointError(f"{path}: was fitted with other {spec.backbone} weights than {weights}; fit it again")
        model = build_model(spec, pretrained=pretrained, device=device)
        model.load_tensors({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        low, threshold = (float(v) for v in tensors["rule"].tolist())
        rule = ScoreToMap(low, threshold, float(meta["rule"]["alpha"]), int(meta["rule"]["n_images"]))
        return cls(model, spec, rule, meta.get("facts"), device, meta.get("name"))


def read_fitted(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a fitted anomaly file's metadata and tensors; one clear line for a missing, foreign or corrupt file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: fitted anomaly model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(exc).__name__}); the file is truncated "
                              "or of another format") from None
    if meta.get("format") != FORMAT or "rule" not in tensors:
        raise CheckpointError(f"{path}: not a fitted defectbench anomaly model (no {FORMAT} metadata)")
    return meta, tensors


def fit_anomaly(spec: AnomalySpec, train_images: Iterable[np.ndarray], n_train: int,
                calib_images: Iterable[np.ndarray], alpha: float = TARGET_FALSE_ALARMS, batch: int = 8,
                device: str = "cpu", bar: Bar | None = None, name: str | None = None) -> AnomalyMethod:
    """Build ``spec``, fit it on defect-free training images and its score-to-map rule on calibration images."""
    import time

    bar = bar or (lambda desc, total: (lambda n: None))
    model = build_model(spec, device=device)
    t0 = time.perf_counter()
    facts = model.fit(train_images, n_train, batch, device, bar)
    facts["fit_s"] = round(time.perf_counter() - t0, 3)
    method = AnomalyMethod(model, spec, None, facts, device, name)
    t0 = time.perf_counter()
    method.calibrate(calib_images, alpha, batch)
    method.facts["calibrate_s"] = round(time.perf_counter() - t0, 3)
    return method


def placeholder_fit(model: AnomalyModel, bank_rows: int, seed: int = 0) -> None:
    """Give an unfitted model a fitted state of the right shapes with random values (for timing only).

    PatchCore gets a random bank of ``bank_rows`` patches; PaDiM zero means and identity inverse covariances.
    """
    gen = torch.Generator().manual_seed(seed)
    probe = model.backbone.features([np.zeros((model.size, model.size), np.uint8)], model.size)
    if isinstance(model, PatchCore):
        model.load_tensors({"bank": torch.randn(max(1, bank_rows), sum(f.shape[1] for f in probe), generator=gen)})
    else:
        assert isinstance(model, Padim)
        positions = probe[0].shape[-2] * probe[0].shape[-1]
        eye = torch.eye(model.dims).expand(positions, model.dims, model.dims).contiguous()
        model.load_tensors({"mean": torch.zeros(positions, model.dims), "precision": eye,
                            "channel_index": model.channel_index})


def patches_per_image(model: AnomalyModel) -> int:
    """Feature cells per image at the model's input size (PatchCore's patches per fitted image)."""
    probe = model.backbone.features([np.zeros((model.size, model.size), np.uint8)], model.size)
    return int(probe[0].shape[-2] * probe[0].shape[-1])
