"""Efficiency (the paper's Table 7): parameters, model size and batch-1 frames per second of any method's model.

Definitions:

* ``params_m`` — trainable and frozen parameters, in millions;
* ``model_mb`` — size of the fp32 state dict in MB of 10^6 bytes (floating tensors at 4 bytes; the paper's
  convention, MB ≈ 4 × M parameters);
* ``fps`` — images per second at batch size 1 after warm-up, ``torch.inference_mode``, random weights (speed
  does not depend on the weights' values) and a random input of ``image_size`` x ``image_size``; the number of
  timed iterations adapts to the model's speed (at least one, until ``max_seconds`` have passed).

For SAM ``what`` says what was timed: ``encoder`` (the image encoder at SAM's 1024 x 1024 input) or ``amg``
(encoder plus automatic mask generation's 32 x 32 point grid on a ``image_size`` image — the paper's setting).
Prompt rows (``sam_prompt``) time SAM's encoder once per image plus the decoder per prompt (and the light model
that prompts it), see :func:`measure_prompted`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from defectbench.bench.config import MethodSpec
from defectbench.bench.store import SpeedRecord
from defectbench.errors import DefectbenchError

SAM_INPUT = 1024


def count_parameters(model: Any) -> float:
    """Return the number of parameters in millions."""
    from defectbench.train.record import count_parameters as parameter_count

    return parameter_count(model) / 1e6


def state_dict_mb(model: Any) -> float:
    """Return the fp32 state-dict size in MB (10^6 bytes)."""
    total = 0
    for t in model.state_dict().values():
        total += t.numel() * (4 if t.is_floating_point() else t.element_size())
    return total / 1e6


def time_calls(fn: Callable[[], Any], device: str, max_seconds: float = 10.0, max_iters: int = 50,
               warmup: int = 2) -> tuple[float, int, float]:
    """Time ``fn`` after warm-up; return ``(calls per second, timed calls, seconds timed)``.

    Warm-up runs ``warmup`` calls, or a single one when that call alone takes more than a third of the budget;
    then calls are timed until ``max_seconds`` pass (at least one, at most ``max_iters``).
    """
    sync = _synchronizer(device)
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    if first < max_seconds / 3:
        for _ in range(warmup - 1):
            fn()
        sync()
    iters, start = 0, time.perf_counter()
    while True:
        fn()
        sync()
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= max_seconds or iters >= max_iters:
            break
        if iters >= 1 and elapsed / iters * (iters + 1) > max_seconds * 1.5:
            break
    return iters / elapsed, iters, elapsed


def interleaved_fps(runs: Mapping[str, Callable[[], Any]], rounds: int = 7, iters: int = 20,
                    warmup: int = 5) -> dict[str, float]:
    """Return each callable's median calls per second over ``rounds``; every round times each callable in turn.

    Interleaving spreads load from other processes over all callables alike, so their ratios stay fair on a
    shared machine. Each runs ``warmup`` calls first; all run under ``torch.inference_mode``.
    """
    import torch

    rates: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for fn in runs.values():
            for _ in range(warmup):
                fn()
        for _ in range(rounds):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                rates[name].append(iters / (time.perf_counter() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def _synchronizer(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return lambda: torch.cuda.synchronize(device)  # the timed device, not the current one
    return lambda: None


def build_random_saliency(model: str, model_kwargs: dict[str, Any] | None = None) -> Any:
    """Build a registered saliency model with random weights (no pretrained download or file)."""
    from defectbench.methods.saliency.checkpoint import build_model

    return build_model(model, dict(model_kwargs or {}), pretrained=False)


def build_random_sam(variant: str) -> tuple[Any, str]:
    """Build a SAM-family model (``vit_b``, ``vit_h``, ``mobile_sam``, ``sam2.1_hiera_t``…) with random weights; return (model, family)."""
    from defectbench.methods.sam.registry import get_spec

    spec = get_spec(variant)
    return spec.build(), spec.family


def _amg(model: Any, family: str, options: dict[str, Any] | None = None) -> Any:
    """Return the official automatic mask generator of a model's family (default settings unless ``options``)."""
    if family == "sam2":
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        return SAM2AutomaticMaskGenerator(model, **(options or {}))
    from segment_anything import SamAutomaticMaskGenerator

    return SamAutomaticMaskGenerator(model, **(options or {}))


def measure_saliency(model: str, device: str = "cpu", image_size: int = 352, max_seconds: float = 10.0,
                     model_kwargs: dict[str, Any] | None = None, method: str | None = None,
                     job_id: str | None = None) -> SpeedRecord:
    """Measure a registered saliency model: parameters, MB, FPS at batch 1 on ``device``."""
    import torch

    from defectbench.methods.saliency.registry import check_input_size
    from defectbench.runtime import device_description

    check_input_size(model, image_size)  # a size the model cannot take is one clear line, before building it
    net = build_random_saliency(model, model_kwargs).to(device).eval()
    x = torch.randn(1, 3, image_size, image_size, device=device)

    @torch.inference_mode()
    def call() -> None:
        net(x)

    fps, iters, secs = time_calls(call, device, max_seconds)
    return SpeedRecord(job_id or f"speed/sod-{model}", method or model, model, "forward", device,
                       device_description(device), image_size, count_parameters(net), state_dict_mb(net), fps, iters,
                       secs, time.time())


def measure_sam(variant: str, device: str = "cpu", mode: str = "encoder", image_size: int = 352,
                max_seconds: float = 10.0, method: str | None = None, job_id: str | None = None,
                amg_options: dict[str, Any] | None = None) -> SpeedRecord:
    """Measure SAM with random weights: the image encoder alone, or encoder plus automatic mask generation.

    ``amg_options`` go to the official generator (default: its published settings, 32 x 32 points).
    """
    import numpy as np
    import torch

    from defectbench.runtime import device_description

    sam, family = build_random_sam(variant)
    sam = sam.to(device).eval()
    if mode == "encoder":
        x = torch.randn(1, 3, SAM_INPUT, SAM_INPUT, device=device)

        @torch.inference_mode()
        def call() -> None:
            sam.image_encoder(x)

        size = SAM_INPUT
    elif mode == "amg":
        generator = _amg(sam, family, amg_options)
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)

        @torch.inference_mode()
        def call() -> None:
            generator.generate(image)

        size = image_size
    else:
        raise DefectbenchError(f"unknown SAM timing mode {mode!r}; use encoder or amg")
    fps, iters, secs = time_calls(call, device, max_seconds, warmup=1)
    return SpeedRecord(job_id or f"speed/sam-{variant}", method or f"sam-{variant}", variant, mode, device,
                       device_description(device), size, count_parameters(sam), state_dict_mb(sam), fps, iters, secs,
                       time.time())


def measure_method(method: MethodSpec, device: str = "cpu", image_size: int = 352, sam_mode: str = "encoder",
                   max_seconds: float = 10.0, job_id: str | None = None,
                   experiment_dir: Path | None = None) -> SpeedRecord:
    """Measure the model behind a configured method (sod, sam or anomaly)."""
    model = str(getattr(method.settings, "model", ""))
    if method.type == "sod":
        return measure_saliency(model, device, image_size, max_seconds, method.settings.model_args or None,
                                method=method.name, job_id=job_id)
    if method.type == "sam":
        return measure_sam(model, device, sam_mode, image_size, max_seconds, method=method.name, job_id=job_id)
    if method.type == "anomaly":
        return measure_anomaly(method, device, image_size, max_seconds, job_id, experiment_dir)
    if method.type == "sam_prompt":
        return measure_prompted(method, device, image_size, max_seconds, job_id)
    raise DefectbenchError(f"method {method.name} ({method.type}) has no model to time")


def prompts_per_image(mode: str, k: int = 1) -> int:
    """Decoder calls a prompt row makes per image as timed: ``k`` for interactive, else one (per-region modes make
    one per region; the record states the time of one call)."""
    return k if mode == "interactive" else 1


def measure_prompted(method: MethodSpec, device: str = "cpu", image_size: int = 352, max_seconds: float = 10.0,
                     job_id: str | None = None) -> SpeedRecord:
    """Time a prompt row per image: SAM's encoder once (``set_image`` on an ``image_size`` image: resize, normalise,
    encode), the official decoder once per prompt, and the light model's forward pass when it prompts SAM.

    FPS = 1 / (encoder + n x decoder + light), with n from :func:`prompts_per_image`; ``what`` states each part in ms.
    Random weights (speed does not depend on them); the light model is built with random weights too.
    """
    import numpy as np
    import torch

    from defectbench.methods.sam.prompts import Prompt
    from defectbench.runtime import device_description

    opts = method.settings
    sam, family = build_random_sam(opts.model)
    sam = sam.to(device).eval()
    if family == "sam2":
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(sam)
    else:
        from segment_anything import SamPredictor

        predictor = SamPredictor(sam)
    image = np.random.default_rng(0).integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    budget = max_seconds / 3

    @torch.inference_mode()
    def encode() -> None:
        predictor.set_image(image)

    enc_fps, iters, secs = time_calls(encode, device, budget, warmup=1)
    encode()
    n = prompts_per_image(opts.prompt, opts.k)
    c = image_size / 2
    prompt = (Prompt(np.array([[c, c]] * n, np.float32), np.ones(n, np.int32)) if opts.prompt.startswith(("point", "inter"))
              else Prompt(box=np.array([c / 2, c / 2, 3 * c / 2, 3 * c / 2], np.float32)))

    @torch.inference_mode()
    def decode() -> None:
        predictor.predict(point_coords=prompt.points if len(prompt.points) else None,
                          point_labels=prompt.labels if len(prompt.points) else None, box=prompt.box,
                          multimask_output=True)

    dec_fps, d_iters, d_secs = time_calls(decode, device, budget)
    t_enc, t_dec, t_light = 1.0 / enc_fps, 1.0 / dec_fps, 0.0
    params, mb = count_parameters(sam), state_dict_mb(sam)
    what = f"encoder {t_enc * 1e3:.0f} ms + {n} × decoder {t_dec * 1e3:.1f} ms"
    src = opts.prompts_from
    if src is not None and src.model:
        from defectbench.bench.families.sam_prompt import _light_weights
        from defectbench.methods.saliency.predictor import SaliencyPredictor

        if "{" in str(src.weights):  # weights per dataset: the first shipped one stands for them (same network)
            src = type(src)(src.model, "sd900")
        try:
            lite = SaliencyPredictor.from_checkpoint(_light_weights(src, None), src.model, device)
        except DefectbenchError:
            lite = SaliencyPredictor(build_random_saliency(src.model), image_size, device=device)
        net = lite.model

        def light() -> None:
            lite.predict(image)

        l_fps, _, _ = time_calls(light, device, budget)
        t_light = 1.0 / l_fps
        params, mb = params + count_parameters(net), mb + state_dict_mb(net)
        what += f" + {src.model} {t_light * 1e3:.1f} ms"
    elif src is not None:
        what += f" + maps of {src.method} (not timed here)"
    fps = 1.0 / (t_enc + n * t_dec + t_light)
    return SpeedRecord(job_id or f"speed/sam_prompt-{method.name}", method.name, opts.model, what, device,
                       device_description(device), image_size, params, mb, fps, iters + d_iters, secs + d_secs,
                       time.time())


def measure_anomaly(method: MethodSpec, device: str = "cpu", image_size: int = 352, max_seconds: float = 10.0,
                    job_id: str | None = None, experiment_dir: Path | None = None) -> SpeedRecord:
    """Time an anomaly method's ``predict`` at batch 1 on a random ``image_size`` image (backbone, search, smoothing).

    The method as fitted by a job of the experiment (its saved ``fit/anomaly.safetensors``) when there is one, else
    random backbone weights and a random fitted state of the size a fit on ``fit_limit`` images gives
    (:data:`~defectbench.bench.families.anomaly.SPEED_FIT_IMAGES` without one). PatchCore's search time grows with
    its bank, whose size ``what`` states. MB = backbone fp32 weights + fitted state.
    """
    import numpy as np

    from defectbench.bench.families.anomaly import FITTED_FILE, SPEED_FIT_IMAGES
    from defectbench.methods.anomaly.calibration import ScoreToMap
    from defectbench.methods.anomaly.coreset import coreset_size
    from defectbench.methods.anomaly.method import AnomalyMethod, build_model, patches_per_image, placeholder_fit
    from defectbench.runtime import device_description

    opts = method.settings
    spec = opts.spec(0)
    fitted = sorted(Path(experiment_dir).glob(f"*/{method.name}/seed*/{FITTED_FILE}")) if experiment_dir else []
    if fitted:
        runner = AnomalyMethod.load(fitted[0], device, opts.backbone_weights)
        model, source = runner.model, "fitted"
    else:
        model, source = build_model(spec, pretrained=False, device=device), "random"
        placeholder_fit(model, coreset_size(patches_per_image(model) * (opts.fit_limit or SPEED_FIT_IMAGES),
                                            spec.coreset_ratio))
        runner = AnomalyMethod(model, spec, ScoreToMap(0.0, 1.0, 0.05, 19), device=device)
    image = np.random.default_rng(0).integers(0, 256, (image_size, image_size), dtype=np.uint8)
    fps, iters, secs = time_calls(lambda: runner.predict(image), device, max_seconds)
    bank = f", {source} bank {model.bank.shape[0]}×{model.bank.shape[1]}" if spec.kind == "patchcore" else f", {source}"
    return SpeedRecord(job_id or f"speed/anomaly-{method.name}", method.name, f"{spec.kind}-{spec.backbone}",
                       f"predict{bank}", device, device_description(device), spec.size,
                       count_parameters(model.backbone.net), state_dict_mb(model.backbone.net) + model.state_mb(), fps,
                       iters, secs, time.time())


def measure_named(name: str, device: str = "cpu", image_size: int = 352, sam_mode: str = "encoder",
                  max_seconds: float = 10.0) -> SpeedRecord:
    """Measure a model given by name: a registered saliency model, or ``sam-<variant>`` (e.g. ``sam-vit_h``)."""
    if name.startswith("sam-"):
        return measure_sam(name.removeprefix("sam-"), device, sam_mode, image_size, max_seconds)
    return measure_saliency(name, device, image_size, max_seconds)


def available_models() -> list[str]:
    """Return every model name :func:`measure_named` accepts (saliency models, then ``sam-<variant>``)."""
    import defectbench.methods.saliency  # noqa: F401 - registers the models
    from defectbench.methods.saliency import list_models
    from defectbench.methods.sam.registry import list_models as sam_models

    return [*list_models(), *(f"sam-{v}" for v in sam_models())]
