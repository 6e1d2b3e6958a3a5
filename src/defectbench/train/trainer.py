"""The training loop: seeded, validated each epoch on a held-out part of the training split, checkpointed
atomically (``best.pt`` on every improvement, ``last.pt`` every ``save_every`` epochs and after the last) and
resumable bit-for-bit after a kill. Batches come from a ``DataLoader`` (workers decode and augment), the steps
queue on the device without a host synchronisation each (the loss is read every ``log_every`` steps)."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from defectbench.data import Dataset, load_dataset
from defectbench.errors import CheckpointError, ConfigError, DefectbenchError
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD
from defectbench.runtime import resolve_device, seed_everything
from defectbench.train.augment import AugmentParams
from defectbench.methods.saliency.checkpoint import (
    build_model,
    load_weights,
    make_checkpoint,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from defectbench.train.config import SPEED_ONLY_OPTIONS, TrainConfig
from defectbench.train.labels import labelled_subset
from defectbench.train.data import LoadedSamples, holdout_split, to_channels_last
from defectbench.train.loader import TrainBatches, default_workers
from defectbench.train.losslog import DeviceLossLog
from defectbench.train.precision import Precision, precision_for
from defectbench.train.optim import build_optimizer, lr_factor, set_lr
from defectbench.methods.saliency.predictor import logits_to_maps, prepare_batch
from defectbench.train.record import RunRecord
from defectbench.train.validate import score_maps

# options that may differ between the original run and a resumed one without changing the result
RESUME_FREE_KEYS = ("device", "data_root", *sorted(SPEED_ONLY_OPTIONS))
CHECKPOINT_NAMES = ("last.pt", "best.pt")


@dataclass
class TrainResult:
    """What a finished (or resumed-and-finished) training run produced."""

    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_scores: dict[str, float]
    epochs_done: int
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def create_loss_for(model: nn.Module, cfg: TrainConfig) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """Return the loss of ``cfg`` (default: the model's paper loss ``model.default_loss``)."""
    from defectbench.methods.saliency.losses import create_loss

    name = cfg.loss or getattr(model, "default_loss", "bce")
    return create_loss(name, weights=cfg.loss_weights)


def augment_params(cfg: TrainConfig) -> AugmentParams:
    """Return the augmentation settings of a config."""
    return AugmentParams(flip=cfg.aug_flip, rot90=cfg.aug_rot90, crop_prob=cfg.aug_crop_prob,
                         crop_scale=tuple(cfg.aug_crop_scale), brightness=cfg.aug_brightness,
                         contrast=cfg.aug_contrast)


@torch.inference_mode()
def evaluate_model(model: nn.Module, data: LoadedSamples, size: int, device: str = "cpu", batch: int = 16,
                   autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> dict[str, float]:
    """Return validation ``S_alpha``, ``MAE`` and ``weighted_F`` of a model on loaded samples, maps at each image's own size."""
    was_training = model.training
    model.eval()
    preds, gts = [], []
    images, masks = data.images, data.masks
    for start in range(0, len(data), batch):
        imgs = images[start:start + batch]
        x = prepare_batch(imgs, size).to(device)
        if channels_last:
            x = to_channels_last(x)
        with _autocast(device, autocast_dtype):
            logits = model(x)
        for prob in logits_to_maps(logits, [im.shape[:2] for im in imgs]):
            preds.append(np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8))
        gts.extend(m > 0.5 for m in masks[start:start + batch])
    model.train(was_training)
    return score_maps(preds, gts)


def _autocast(device: str, dtype: torch.dtype | None) -> Any:
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()


def _is_better(scores: dict[str, float], best: dict[str, float] | None, metric: str) -> bool:
    if best is None:
        return True
    if metric == "MAE":
        return scores["MAE"] < best["MAE"]
    return scores[metric] > best[metric]


def _check_resume_config(stored: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    current = cfg.to_dict()
    stored = {**TrainConfig().to_dict(), **stored}  # options added since the run started take their defaults
    diff = sorted(k for k in current if k not in RESUME_FREE_KEYS and stored.get(k) != current[k])
    if diff:
        shown = ", ".join(f"{k}: {stored.get(k)!r} -> {current[k]!r}" for k in diff[:4])
        raise ConfigError(f"{path}: --resume with different options ({shown}); use the original options or a new --out")


def init_weights(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Start ``model`` from the weights of ``cfg.init_from``, refusing a checkpoint trained on other images of the dataset."""
    ckpt = read_checkpoint(cfg.init_from, expected_model=cfg.model)
    meta = ckpt.get("meta") or {}
    if meta.get("dataset") == cfg.dataset and meta.get("split") not in (None, cfg.split):
        raise ConfigError(f"{cfg.init_from}: trained on {cfg.dataset}/{meta.get('split')}, not on the split of this run "
                          f"({cfg.split}); starting from it could leak test images into training")
    load_weights(model, ckpt["state_dict"], cfg.init_from, cfg.model)


class RunFolderBusy(DefectbenchError):
    """Another training (or ``defectbench run``) holds the lock of the output folder."""


def _make_folder(out: Path) -> bool:
    """Create ``out`` (and its parents); return True when this call created it."""
    try:
        out.mkdir(parents=True)
        return True
    except FileExistsError:
        if not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder; choose another --out") from None
        return False
    except OSError as exc:  # a file where a parent folder should be, a read-only parent ...
        raise ConfigError(f"{out}: cannot create the output folder ({exc.strerror}); choose another --out") from None


def _remove_unfinished(out: Path, created: bool, lock_file: Path, lock_existed: bool) -> None:
    """After a failed attempt, remove what it created unless some epoch was saved (then the run is resumable)."""
    if any((out / name).exists() for name in CHECKPOINT_NAMES):
        return
    if created:
        shutil.rmtree(out, ignore_errors=True)
    elif not lock_existed:
        lock_file.unlink(missing_ok=True)


@contextmanager
def claimed_run_folder(out: Path) -> Iterator[None]:
    """Create and exclusively lock a training's output folder for the duration of the block.

    A second training into a locked folder fails at once with a one-line error. When the block fails
    before any checkpoint exists, what this call created is removed again (the folder itself only when it
    created it; a folder that held anything before is never removed).
    """
    from defectbench.locks import LOCK_NAME, ExperimentLock

    created = _make_folder(out)
    lock_file = out / LOCK_NAME
    lock_existed = lock_file.exists()
    lock = ExperimentLock(out, wait_s=0.0)
    try:
        lock.__enter__()
    except DefectbenchError:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise RunFolderBusy(f"{out}: another training (or `defectbench run`) is writing into this folder; "
                            "wait for it to finish or choose another --out") from None
    finished = False
    try:
        yield
        finished = True
    finally:
        lock.__exit__(None, None, None)
        if not finished:
            _remove_unfinished(out, created, lock_file, lock_existed)


def amp_dtype(cfg: TrainConfig, device: str) -> torch.dtype | None:
    """Return the autocast dtype of a run (None = fp32): see :func:`defectbench.train.precision.choose_precision`."""
    return precision_for(device, cfg.amp).dtype


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that wall-clock timings are real."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


class TrainStep:
    """One optimisation step: forward under autocast (CUDA AMP), the loss in fp32, a scaled backward for fp16,
    gradient clamping, the optimiser step. On the CPU (no autocast) it is the plain fp32 step."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
                 optimizer: torch.optim.Optimizer, device: str = "cpu", autocast_dtype: torch.dtype | None = None,
                 grad_clip_value: float | None = None) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.device, self.autocast_dtype, self.grad_clip_value = device, autocast_dtype, grad_clip_value
        self.scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: int = 0) -> torch.Tensor:
        """Run one step on a batch; return the (detached, unread) loss."""
        with _autocast(self.device, self.autocast_dtype):
            outputs = self.model(x)
        if self.autocast_dtype is not None:  # the loss in fp32: SSIM and IoU sums are not safe in 16 bits
            outputs = [o.float() for o in outputs] if isinstance(outputs, (list, tuple)) else outputs.float()
        loss = self.loss_fn(outputs, y)  # not read here (no host synchronisation): DeviceLossLog checks it later
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip_value:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.clamp_(-self.grad_clip_value, self.grad_clip_value)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss.detach()


def moving_average(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """Return an exponential moving average of ``model``'s weights and buffers (PyTorch's ``AveragedModel``), or None at 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    # its update counter ``n_averaged`` is a CPU tensor (made before any move): reading it never waits for the GPU
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _build(cfg: TrainConfig) -> nn.Module:
    try:
        return build_model(cfg.model, cfg.model_kwargs, pretrained=cfg.pretrained, backbone_weights=cfg.backbone_weights)
    except (TypeError, ValueError) as exc:  # a value the model's constructor refuses (names were checked before)
        raise ConfigError(f"model_args {cfg.model_kwargs}: model {cfg.model!r} cannot be built ({exc})") from None


def train_model(cfg: TrainConfig, dataset: Dataset | None = None, out_dir: str | Path = "runs/train",
                resume: bool = False, progress: bool = True, log: Callable[[str], None] | None = None,
                console: Any = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.dataset``/``cfg.split``; write ``best.pt``, ``last.pt`` and ``run.json`` into ``out_dir``.

    With ``resume=True`` an interrupted run continues from ``last.pt`` and ends with exactly the weights an
    uninterrupted run would have produced (same options, same thread count). ``log`` receives one line per
    epoch; pass the rich ``console`` it prints to so that the progress bar and the lines do not interleave.
    ``out_dir`` is locked while the run works in it (a second training into it fails at once); a run that fails
    before its first checkpoint removes what it created.
    """
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    dataset = dataset or load_dataset(cfg.dataset, cfg.data_root)
    samples = dataset.split(cfg.split)
    if cfg.limit:
        samples = samples[: cfg.limit]
    if cfg.labels:
        samples = labelled_subset(samples, cfg.labels, cfg.seed, f"{cfg.dataset}/{cfg.split}")
    out = Path(out_dir)
    with claimed_run_folder(out):
        return _train_in_folder(cfg, samples, device, out, resume, progress, log or (lambda msg: None), console)


def _train_in_folder(cfg: TrainConfig, samples: list[Any], device: str, out: Path, resume: bool, progress: bool,
                     log: Callable[[str], None], console: Any) -> TrainResult:
    """The body of :func:`train_model`, run while ``out`` is locked."""
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.exists() and not resume:
        raise ConfigError(f"{out}: already holds a training run (last.pt); pass --resume to continue it or choose another --out")
    train_samples, val_samples = holdout_split(samples, cfg.val_fraction, cfg.val_seed)

    seed_everything(cfg.seed)
    model = _build(cfg)
    if cfg.init_from:
        init_weights(model, cfg)
    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = create_loss_for(model, cfg)
    optimizer = build_optimizer(model, cfg)
    precision = precision_for(device, cfg.amp)
    autocast_dtype = precision.dtype
    train_step = TrainStep(model, loss_fn, optimizer, device, autocast_dtype, cfg.grad_clip_value)
    scaler = train_step.scaler
    ema = moving_average(model, cfg.ema_decay)
    kept = model if ema is None else ema.module  # what is validated and saved as the model's weights

    start_epoch, step, train_seconds = 0, 0, 0.0
    best: dict[str, float] | None = None
    best_epoch = -1
    history: list[dict[str, Any]] = []
    if resume and last_path.exists():
        ckpt = read_checkpoint(last_path, expected_model=cfg.model)
        state = ckpt.get("train_state")
        if state is None:
            raise CheckpointError(f"{last_path}: holds no training state; it cannot be resumed")
        _check_resume_config(state["config"], cfg, last_path)
        load_weights(model, state.get("raw_state_dict") or ckpt["state_dict"], last_path, cfg.model)
        if ema is not None:
            load_weights(ema.module, ckpt["state_dict"], last_path, cfg.model)
            ema.n_averaged.fill_(int(state["ema_n_averaged"]))
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        start_epoch, step, train_seconds = state["epoch"], state["step"], state["train_seconds"]
        best, best_epoch, history = state["best"], state["best_epoch"], list(state["history"])
        set_rng_state(state["rng"])
        if device.startswith("cuda") and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        log(f"resuming {out} after epoch {start_epoch}/{cfg.epochs}")

    workers = cfg.workers if cfg.workers is not None else default_workers(device)
    record = RunRecord(out, cfg, model, train_samples, val_samples, device, precision=precision.label, workers=workers)
    batches = TrainBatches(train_samples, cfg.batch, cfg.seed, cfg.size, cfg.train_sizes, augment_params(cfg),
                           workers=workers, pin_memory=device.startswith("cuda"))
    try:
        return _epochs(cfg, model, train_step, ema, kept, optimizer, precision, batches, val_samples, record, device, out,
                       (start_epoch, step, train_seconds, best, best_epoch, history), progress, log, console)
    finally:
        batches.close()


def _epochs(cfg: TrainConfig, model: nn.Module, train_step: TrainStep, ema: Any, kept: nn.Module,
            optimizer: torch.optim.Optimizer, precision: Precision, batches: TrainBatches, val_samples: list[Any],
            record: RunRecord, device: str, out: Path, state: tuple[Any, ...], progress: bool,
            log: Callable[[str], None], console: Any) -> TrainResult:
    """The epochs of a run from ``state`` (start epoch, step, seconds, best scores, best epoch, history) on."""
    start_epoch, step, train_seconds, best, best_epoch, history = state
    last_path, best_path = out / "last.pt", out / "best.pt"
    scaler, autocast_dtype = train_step.scaler, precision.dtype
    val_data = LoadedSamples(val_samples) if val_samples else None
    n = len(batches)
    steps_per_epoch = batches.steps
    save_every = cfg.checkpoint_every()
    log(f"{cfg.model}: {n} training / {len(val_samples)} validation images of {cfg.dataset} "
        f"{cfg.split}, {steps_per_epoch} steps per epoch, input {cfg.size}"
        + (f" (training batches at {'/'.join(map(str, cfg.train_sizes))})" if cfg.train_sizes else "")
        + f", {torch.get_num_threads()} threads, {batches.workers} loader workers, "
        f"{device} {precision.label}, last.pt every {save_every} epoch{'s' if save_every > 1 else ''}")
    meta_base = {"dataset": cfg.dataset, "split": cfg.split, "seed": cfg.seed, "config": cfg.to_dict()}

    from rich.progress import TextColumn

    from defectbench.progress import make_progress

    with make_progress(progress, transient=False, console=console,
                       extra_columns=(TextColumn("{task.fields[info]}"),)) as bar:
        task = bar.add_task(f"train {cfg.model}", total=cfg.epochs * steps_per_epoch,
                            completed=start_epoch * steps_per_epoch, info="")
        for epoch in range(start_epoch, cfg.epochs):
            synchronize(device)
            t0 = time.perf_counter()
            losses = DeviceLossLog(epoch, cfg.epochs, steps_per_epoch)
            for x, y in batches.epoch(epoch):
                set_lr(optimizer, lr_factor(cfg, step, steps_per_epoch))
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if cfg.channels_last:
                    x = to_channels_last(x)
                losses.add(train_step(x, y, epoch))
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                info = None
                if losses.pending >= cfg.log_every:  # the only host synchronisation of the steps
                    losses.flush()
                    info = f"epoch {epoch + 1}/{cfg.epochs}  loss {losses.mean():.4f}"
                    if best is not None:
                        info += f"  best val S {best['S_alpha']:.4f}"
                bar.update(task, advance=1, **({} if info is None else {"info": info}))
            losses.flush()
            synchronize(device)
            step_seconds = time.perf_counter() - t0
            scores = (evaluate_model(kept, val_data, cfg.size, device, autocast_dtype=autocast_dtype,
                                     channels_last=cfg.channels_last) if val_data is not None
                      else {"S_alpha": math.nan, "MAE": math.nan, "weighted_F": math.nan})
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            improved = val_data is None or _is_better(scores, best, cfg.select_metric)
            if improved:
                best, best_epoch = scores, epoch + 1
            history.append({"epoch": epoch + 1, "loss": losses.mean(), "lr": optimizer.param_groups[-1]["lr"],
                            **{f"val_{k}": v for k, v in scores.items()}, "seconds": round(seconds, 2),
                            "images_per_s": round(steps_per_epoch * min(cfg.batch, n) / max(step_seconds, 1e-9), 2),
                            "best": improved})
            meta = {**meta_base, "epoch": epoch + 1, "val": scores}
            save_now = (epoch + 1) % save_every == 0 or epoch + 1 == cfg.epochs
            # without validation the best model is the last one: written with last.pt only
            if improved and (val_data is not None or save_now):
                save_checkpoint(best_path, make_checkpoint(kept, cfg.model, cfg.model_kwargs, cfg.size, IMAGENET_MEAN,
                                                           IMAGENET_STD, meta=meta))
            if save_now:
                train_state = {"epoch": epoch + 1, "step": step, "train_seconds": train_seconds, "best": best,
                               "best_epoch": best_epoch, "history": history, "config": cfg.to_dict(),
                               "optimizer": optimizer.state_dict(), "rng": rng_state(),
                               "cuda_rng": torch.cuda.get_rng_state(device) if device.startswith("cuda") else None,
                               "grad_scaler": scaler.state_dict() if scaler is not None else None,
                               "raw_state_dict": model.state_dict() if ema is not None else None,
                               "ema_n_averaged": int(ema.n_averaged) if ema is not None else None}
                save_checkpoint(last_path, make_checkpoint(kept, cfg.model, cfg.model_kwargs, cfg.size, IMAGENET_MEAN,
                                                           IMAGENET_STD, meta=meta, train_state=train_state))
                record.write(history, best, best_epoch, train_seconds, finished=epoch + 1 == cfg.epochs)
            shown = (f"val S {scores['S_alpha']:.4f}  MAE {scores['MAE']:.4f}  wF {scores['weighted_F']:.4f}"
                     if val_data is not None else "no validation hold-out (the last epoch is kept)")
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {losses.mean():.4f}  {shown}  {seconds:.0f}s"
                + ("  *best*" if improved and val_data is not None else ""))
    if start_epoch >= cfg.epochs:
        log(f"{out}: all {cfg.epochs} epochs already done")
    record.write(history, best, best_epoch, train_seconds, finished=True)
    return TrainResult(out, best_path, last_path, best_epoch, dict(best or {}), len(history), train_seconds, history)
