"""Deployed litenet speed: batch-1 FPS on this CPU for PyTorch eager, the retired torch.jit path, ONNX Runtime and OpenVINO.

The shipped litenet weights (``--weights``, input size from the checkpoint) are exported in this run with
:func:`defectbench.deploy.export_checkpoint` (static batch 1, fp32) to ONNX and to OpenVINO IR. Each engine is
timed two ways, in rounds that alternate between the engines so that load from other processes hits all alike
(the median round is reported):

* network only: one fixed normalised ``1 x 3 x S x S`` input through the network (PyTorch under
  ``torch.inference_mode``; ``torch.jit (retired)`` = the former ``--optimize`` path, traced, frozen,
  channels-last, kept here only as :class:`RetiredJitPredictor` so that its replacement is measured against it;
  ONNX Runtime ``InferenceSession.run``; OpenVINO ``InferRequest.infer``);
* end to end: a real SD-saliency-900 test image (200 x 200 gray) to its 8-bit map through the predictor's
  ``predict`` (resize, normalise, network, upsample, sigmoid) and ``saliency_to_uint8``.

Where NNCF is installed (the ``int8`` extra), an ``openvino int8`` row is added: the OpenVINO export quantised by
:func:`defectbench.deploy.quantize.quantize_openvino` on 300 images of SD-saliency-900's training split.

Every engine uses ``--threads`` threads (default 2). Beside fp32 OpenVINO, a row for OpenVINO with its own
default precision on this CPU (bf16 where the CPU has AMX / AVX512-BF16) is shown with how far its maps are from
PyTorch's; it is not counted in the speed-up, which compares engines that give PyTorch's maps.

    .venv/bin/python benchmarks/export_speed.py [--weights sd900] [--threads 2] [--rounds 7] [--iters 20]

The last line is ``speedup: X`` = the best exported fp32 engine's network-only FPS / PyTorch eager's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch


class RetiredJitPredictor:
    """The former ``--optimize`` path (``torch.jit.trace`` + ``freeze``, channels-last), removed from the package."""

    def __init__(self, eager: object) -> None:
        import warnings

        self.size, self.mean, self.std = eager.size, eager.mean, eager.std  # type: ignore[attr-defined]
        model = eager.model.eval().to(memory_format=torch.channels_last)  # type: ignore[attr-defined]
        example = torch.zeros(1, 3, self.size, self.size).contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # torch.jit is deprecated
            self.runner = torch.jit.freeze(torch.jit.trace(model, example))

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """Return the float map of one image, as the package's predictors do."""
        from defectbench.methods.saliency.predictor import logits_to_maps, prepare_batch

        x = prepare_batch([image], self.size, self.mean, self.std).contiguous(memory_format=torch.channels_last)
        return logits_to_maps(self.runner(x), [image.shape[:2]])[0]


def test_split_scores(predictor: object, data_root: str | None) -> dict[str, float]:
    """Return the aggregated metrics of ``predictor``'s 8-bit maps on SD-saliency-900's 360 test images."""
    from defectbench.data import load_dataset
    from defectbench.data.imageio import saliency_to_uint8
    from defectbench.metrics import aggregate, score_image

    samples = load_dataset("sd900", data_root).split("test")
    return aggregate([score_image(saliency_to_uint8(predictor.predict(s.image())), s.mask())  # type: ignore[attr-defined]
                      for s in samples])


def processor_name() -> str:
    """Return the CPU model name (as ``lscpu`` shows it) and the number of cores."""
    from defectbench.runtime import device_description

    return device_description("cpu")


def test_image(data_root: str | None) -> tuple[np.ndarray, str]:
    """Return a real SD-saliency-900 test image (or a synthetic one when the dataset is absent) and its name."""
    try:
        from defectbench.data import load_dataset

        sample = load_dataset("sd900", data_root).split("test")[0]
        return sample.image(), f"SD-saliency-900 {sample.id}"
    except Exception:  # noqa: BLE001 - any missing dataset: fall back to noise of the same size
        return np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8), "synthetic 200x200"


def main() -> None:
    """Export, measure and print the table and the speed-up line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="sd900", help="shipped litenet weights (sets the input size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import onnxruntime
    import openvino

    from defectbench.bench.speed import interleaved_fps
    from defectbench.data.imageio import saliency_to_uint8
    from defectbench.deploy import ExportedPredictor, export_checkpoint
    from defectbench.deploy.engines import fastest_engine
    from defectbench.methods.saliency.checkpoint import shipped_weights_path
    from defectbench.methods.saliency.predictor import SaliencyPredictor
    from defectbench.methods.saliency.predictor import prepare_batch

    checkpoint = shipped_weights_path("litenet", args.weights)
    eager = SaliencyPredictor.from_shipped("litenet", args.weights)
    jit = RetiredJitPredictor(SaliencyPredictor.from_shipped("litenet", args.weights))
    size = eager.size
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        onnx_file = export_checkpoint(checkpoint, tmp, "onnx")
        t_onnx = time.perf_counter() - t0
        t0 = time.perf_counter()
        ov_file = export_checkpoint(checkpoint, tmp, "openvino")
        t_ov = time.perf_counter() - t0
        int8_file = None
        if importlib.util.find_spec("nncf") is not None:
            from defectbench.data import load_dataset
            from defectbench.deploy.quantize import quantize_openvino

            train = [smp.image() for smp in load_dataset("sd900", args.data_root).split("train")]
            t0 = time.perf_counter()
            int8_file = quantize_openvino(ov_file, tmp, train, {"dataset": "sd900", "split": "train"})
            t_int8 = time.perf_counter() - t0
        predictors = {
            "torch eager": eager,
            "torch.jit (retired)": jit,
            "onnxruntime": ExportedPredictor(onnx_file, "onnxruntime", threads=args.threads),
            "openvino": ExportedPredictor(ov_file, "openvino", threads=args.threads),
            "openvino default precision": ExportedPredictor(ov_file, "openvino", threads=args.threads,
                                                            precision=openvino.Core().get_property(
                                                                "CPU", "INFERENCE_PRECISION_HINT").to_string()),
        }
        if int8_file is not None:
            predictors["openvino int8"] = ExportedPredictor(int8_file, "openvino", threads=args.threads)
        image, image_name = test_image(args.data_root)
        x = prepare_batch([image], size, eager.mean, eager.std)
        x_cl, x_np = x.contiguous(memory_format=torch.channels_last), x.numpy()

        def torch_net(runner: Callable, inp: torch.Tensor) -> Callable[[], object]:
            return lambda: runner(inp)  # interleaved_fps runs it under torch.inference_mode

        def exported_net(predictor: ExportedPredictor) -> Callable[[], object]:
            return lambda: predictor.logits(x_np)

        def image_to_map(predictor: object) -> Callable[[], object]:
            return lambda: saliency_to_uint8(predictor.predict(image))

        network = {"torch eager": torch_net(eager.model, x), "torch.jit (retired)": torch_net(jit.runner, x_cl)}
        for name in predictors:
            if name not in network:
                network[name] = exported_net(predictors[name])
        end_to_end = {name: image_to_map(p) for name, p in predictors.items()}
        net_fps = interleaved_fps(network, args.rounds, args.iters)
        e2e_fps = interleaved_fps(end_to_end, args.rounds, args.iters)
        reference = eager.predict(image)
        map_diff = {name: float(np.abs(p.predict(image) - reference).max()) for name, p in predictors.items()}
        precision = predictors["openvino default precision"].network.compiled.get_property("INFERENCE_PRECISION_HINT")
        precision = precision.to_string() if hasattr(precision, "to_string") else str(precision)
        accuracy = ({name: test_split_scores(predictors[name], args.data_root) for name in ("openvino", "openvino int8")}
                    if int8_file is not None else {})

    print(f"CPU: {processor_name()}, {platform.machine()}; {args.threads} threads; litenet (shipped {args.weights!r}) "
          f"input {size}x{size}; end to end on {image_name} ({image.shape[1]}x{image.shape[0]}) -> 8-bit map; "
          f"median of {args.rounds} interleaved rounds x {args.iters} calls")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average during the run (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}; "
          f"export took {t_onnx:.1f} s (ONNX), {t_ov:.1f} s (OpenVINO IR), each checked against PyTorch"
          + (f"; INT8 quantisation {t_int8:.1f} s" if int8_file is not None else "; NNCF absent: no INT8 row"))
    print(f"{'engine':30s} {'network FPS':>11s} {'ms':>7s} {'end-to-end FPS':>14s} {'ms':>7s} {'max |map - eager|':>17s}")
    for name in predictors:
        label = f"{name} ({precision})" if name == "openvino default precision" else name
        print(f"{label:30s} {net_fps[name]:11.1f} {1000 / net_fps[name]:7.2f} {e2e_fps[name]:14.1f} "
              f"{1000 / e2e_fps[name]:7.2f} {map_diff[name]:17.2e}")
    for name, row in accuracy.items():
        print(f"{name:30s} on the 360 SD-saliency-900 test images: S {row['S_alpha']:.4f}  MAE {row['MAE']:.4f}  "
              f"wF {row['weighted_F']:.4f}  maxF {row['max_F']:.4f}")
    if accuracy:
        drop = accuracy["openvino"]["S_alpha"] - accuracy["openvino int8"]["S_alpha"]
        print(f"INT8: S-measure drop {drop:.4f} ({'< 0.005: worth offering' if drop < 0.005 else '>= 0.005: not worth it'}), "
              f"network {net_fps['openvino int8'] / net_fps['openvino']:.2f}x / end to end "
              f"{e2e_fps['openvino int8'] / e2e_fps['openvino']:.2f}x fp32 OpenVINO")
    exported = ("onnxruntime", "openvino")
    best = max(exported, key=lambda n: net_fps[n])
    opt = net_fps["torch.jit (retired)"]
    verdict = "beats" if net_fps[best] > opt else "does NOT beat"
    print(f"best exported fp32 engine: {best}, which {verdict} the retired torch.jit path ({net_fps[best]:.1f} vs "
          f"{opt:.1f} network FPS; end to end {e2e_fps[best]:.1f} vs {e2e_fps['torch.jit (retired)']:.1f}); "
          f"--optimize now runs {fastest_engine()}")
    print(f"end-to-end speedup over torch eager: {e2e_fps[best] / e2e_fps['torch eager']:.2f}")
    print(f"speedup: {net_fps[best] / net_fps['torch eager']:.2f}")


if __name__ == "__main__":
    main()
