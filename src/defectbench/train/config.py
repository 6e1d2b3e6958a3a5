"""Training configuration: one dataclass, built from per-model paper recipes, YAML files and CLI flags."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectbench.errors import ConfigError
from defectbench.runtime import DEVICE_CHOICES, is_device_name

AMP_MODES = ("auto", "off", "bf16", "fp16")
# options that change how fast a run goes (or how often it is saved), never its weights: they stay out of an
# experiment job's fingerprint, and a resumed run may change them
SPEED_ONLY_OPTIONS = frozenset({"workers", "save_every", "log_every"})


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
    # multi-scale training: each batch's square input size is drawn from these (multiples of 32), a pure function of
    # (seed, epoch, step); validation and the saved checkpoint use ``size``. None = every batch at ``size``
    train_sizes: tuple[int, ...] | None = None
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
    # exponential moving average of the weights (and BatchNorm statistics) after every step, e.g. 0.99; 0 = off.
    # Validation, best.pt and last.pt's weights are the average (free at inference); last.pt also keeps the raw ones
    ema_decay: float = 0.0
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
    # write last.pt (weights, optimiser state, random states) every N epochs and after the last one; a resume continues
    # from the last one written. None = ceil(epochs / 10): at most about ten per run. best.pt is written on every
    # improvement regardless
    save_every: int | None = None
    # loader worker processes that decode and augment the training images; None = auto (0 on the CPU, where the
    # steps use the cores; min(4, cpus) for a GPU run). Any number gives the same batches
    workers: int | None = None
    # training steps between two reads of the loss on the host (and its non-finite check); the steps in between
    # queue on the GPU without waiting for it
    log_every: int = 50
    limit: int | None = None  # use only the first N training images (tests, smoke runs)
    # train on this many labelled images of the split: the class-stratified, nested subset of ``seed``
    # (defectbench.data.splits.label_subset); None = every image
    labels: int | None = None
    # mixed precision on CUDA: "auto" = bf16 where the GPU supports it, else fp16 with a gradient scaler;
    # "off" = fp32; never used on the CPU (there "auto" means fp32, so CPU results stay bit-for-bit reproducible)
    amp: str = "auto"
    channels_last: bool = True  # NHWC memory layout for the model and its inputs (faster convolutions, same maths)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-able dict."""
        d = dataclasses.asdict(self)
        d["aug_crop_scale"] = list(self.aug_crop_scale)
        d["train_sizes"] = None if self.train_sizes is None else list(self.train_sizes)
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
        if isinstance(data.get("train_sizes"), (list, tuple)):
            data["train_sizes"] = tuple(data["train_sizes"])
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
        """Raise :class:`ConfigError` (one line naming the option and its allowed range) on values that cannot work."""
        def bad(option: str, allowed: str) -> ConfigError:
            return ConfigError(f"{source}: {option} {getattr(self, option)!r} is out of range; it must be {allowed}")

        if not isinstance(self.size, int) or self.size < 32 or self.size % 32:
            raise bad("size", "a positive multiple of 32 (e.g. 192, 224, 256)")
        if self.train_sizes is not None and (
                not isinstance(self.train_sizes, tuple) or not self.train_sizes
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 32 and v % 32 == 0
                           for v in self.train_sizes)):
            raise bad("train_sizes", "one or more positive multiples of 32 (e.g. 256,320,384), or unset")
        for option in ("epochs", "batch", "step_epochs", "log_every"):
            if not _whole(getattr(self, option)) or getattr(self, option) < 1:
                raise bad(option, "an integer >= 1")
        if self.save_every is not None and (not _whole(self.save_every) or self.save_every < 1):
            raise bad("save_every", "an integer >= 1 (or unset: every ceil(epochs / 10) epochs)")
        if self.workers is not None and (not _whole(self.workers) or self.workers < 0):
            raise bad("workers", "an integer >= 0 (0 = in the training process; unset = auto)")
        if self.labels is not None and (isinstance(self.labels, bool) or not isinstance(self.labels, int) or self.labels < 1):
            raise bad("labels", "a whole number of labelled images >= 1 (leave it out to use every training image)")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise bad("limit", "an integer >= 1 (leave it out to use every training image)")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 0):
            raise bad("threads", "an integer >= 1 (or 0 for torch's default)")
        if not _finite(self.lr) or self.lr <= 0:
            raise bad("lr", "a number > 0")
        for option in ("weight_decay", "backbone_lr_mult", "warmup_epochs", "aug_brightness", "aug_contrast"):
            if not _finite(getattr(self, option)) or getattr(self, option) < 0:
                raise bad(option, "a number >= 0")
        for option in ("momentum", "min_lr_ratio", "aug_crop_prob"):
            if not _finite(getattr(self, option)) or not 0.0 <= getattr(self, option) <= 1.0:
                raise bad(option, "a number in [0, 1]")
        if not _finite(self.ema_decay) or not 0.0 <= self.ema_decay < 1.0:
            raise bad("ema_decay", "a number in [0, 1) (0 = no moving average; e.g. 0.99)")
        if not _finite(self.val_fraction) or not 0.0 <= self.val_fraction < 1.0:
            raise bad("val_fraction", "a number in [0, 1)")
        if self.grad_clip_value is not None and (not _finite(self.grad_clip_value) or self.grad_clip_value <= 0):
            raise bad("grad_clip_value", "a number > 0 (or unset)")
        scale = tuple(self.aug_crop_scale)
        if len(scale) != 2 or not all(_finite(v) for v in scale) or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise bad("aug_crop_scale", "two numbers 0 < low <= high <= 1")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ConfigError(f"{source}: optimizer must be adamw, adam or sgd, not {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly", "step", "constant", "triangle"):
            raise ConfigError(f"{source}: schedule must be cosine, poly, step, constant or triangle, not {self.schedule!r}")
        if self.select_metric not in ("S_alpha", "MAE", "weighted_F"):
            raise ConfigError(f"{source}: select_metric must be S_alpha, MAE or weighted_F")
        if not is_device_name(self.device):
            raise ConfigError(f"{source}: device must be {DEVICE_CHOICES}, not {self.device!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"{source}: amp must be {', '.join(AMP_MODES)}, not {self.amp!r}")
        check_model_kwargs(self.model, self.model_kwargs, source)
        from defectbench.methods.saliency.registry import check_input_size

        try:  # transformers take only the sizes their patch grids accept
            for size in (self.size, *(self.train_sizes or ())):
                check_input_size(self.model, size)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def checkpoint_every(self) -> int:
        """Return the epochs between two ``last.pt`` writes: ``save_every``, or ceil(epochs / 10) when unset."""
        return self.save_every if self.save_every is not None else max(1, math.ceil(self.epochs / 10))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_model_kwargs(model: str, kwargs: dict[str, Any], source: str = "config") -> None:
    """Raise :class:`ConfigError` for an unknown model or keyword arguments its factory does not take."""
    import inspect

    import defectbench.methods.saliency  # noqa: F401 - registers every model
    from defectbench.errors import DefectbenchError
    from defectbench.methods.saliency.registry import model_factory

    try:
        factory = model_factory(model)
    except DefectbenchError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{source}: model_args must be a mapping of keyword arguments, not {kwargs!r}")
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = sorted(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"{source}: model_args {', '.join(unknown)} not taken by model {model!r}; "
                          f"it takes: {', '.join(accepted) or 'none'}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) file of training options into a dict (its ``train`` mapping, if it has one)."""
    from defectbench.yamlio import load_yaml

    data = load_yaml(path, "training config file")
    return data.get("train", data)