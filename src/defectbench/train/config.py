"""Training configuration: one dataclass, built from per-model paper recipes, YAML files and CLI flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectbench.errors import ConfigError


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint and in ``run.json``)."""

    model: str = "litenet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "sd900"
    split: str = "train"
    data_root: str | None = None
    epochs: int = 60
    batch: int = 8
    size: int = 224
    seed: int = 0
    # held-out validation part of the training split (stratified by defect class, seeded)
    val_fraction: float = 0.1
    val_seed: int = 0
    select_metric: str = "S_alpha"  # checkpoint selection on validation: S_alpha, weighted_F (higher), MAE (lower)
    # loss: None = the model's paper loss (model.default_loss); loss_weights = one weight per output
    loss: str | None = None
    loss_weights: list[float] | None = None
    # optimiser and schedule
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    backbone_lr_mult: float = 1.0  # learning-rate factor of parameters under ``model.encoder``/``backbone``
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"  # cosine | poly | step | constant | triangle
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    step_epochs: int = 50  # step schedule: x0.1 every step_epochs
    grad_clip_value: float | None = None  # clamp every gradient element to [-v, v] (CPD)
    # augmentation
    aug_flip: bool = True
    aug_rot90: bool = True
    aug_crop_prob: float = 0.8
    aug_crop_scale: tuple[float, float] = (0.5, 1.0)
    aug_brightness: float = 0.15
    aug_contrast: float = 0.2
    # run-time
    device: str = "auto"
    threads: int = 2
    pretrained: bool = True
    backbone_weights: str | None = None
    init_from: str | None = None  # checkpoint whose model weights start the run (fine-tuning, e.g. at a larger size)
    save_every: int = 1  # write last.pt every N epochs (and after the last one); resume continues from it
    limit: int | None = None  # use only the first N training images (tests, smoke runs)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-able dict."""
        d = dataclasses.asdict(self)
        d["aug_crop_scale"] = list(self.aug_crop_scale)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build a config from a dict, rejecting unknown keys with a clear error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        data = dict(data)
        if "aug_crop_scale" in data and data["aug_crop_scale"] is not None:
            data["aug_crop_scale"] = tuple(float(v) for v in data["aug_crop_scale"])
        cfg = cls(**data)
        cfg.validate(source)
        return cfg

    @classmethod
    def for_model(cls, model: str, overrides: dict[str, Any] | None = None, source: str = "config") -> TrainConfig:
        """Return the config of ``model``: defaults, then the model's paper recipe, then ``overrides``."""
        from defectbench.train.recipes import recipe

        return cls.from_dict({**recipe(model), **(overrides or {}), "model": model}, source)

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with some fields changed (validated)."""
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def validate(self, source: str = "config") -> None:
        """Raise :class:`ConfigError` on values that cannot work."""
        if self.size % 32:
            raise ConfigError(f"{source}: size {self.size} must be divisible by 32 (e.g. 192, 224, 256)")
        if self.epochs < 1 or self.batch < 1 or self.save_every < 1:
            raise ConfigError(f"{source}: epochs, batch and save_every must be >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"{source}: val_fraction must be in [0, 1)")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ConfigError(f"{source}: optimizer must be adamw, adam or sgd, not {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly", "step", "constant", "triangle"):
            raise ConfigError(f"{source}: schedule must be cosine, poly, step, constant or triangle, not {self.schedule!r}")
        if self.select_metric not in ("S_alpha", "MAE", "weighted_F"):
            raise ConfigError(f"{source}: select_metric must be S_alpha, MAE or weighted_F")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) file of training options into a dict."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a mapping of training options")
    return data.get("train", data)
