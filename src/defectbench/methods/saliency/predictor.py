"""Prediction with trained saliency models: images in, 8-bit maps at each image's own size out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.data import to_rgb
from defectbench.data.imageio import list_images
from defectbench.errors import DataError
from defectbench.methods.saliency.registry import IMAGENET_MEAN, IMAGENET_STD
from defectbench.methods.saliency.checkpoint import load_trained, shipped_weights_path


def normalize(images_u8: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Turn ``B x H x W x 3`` uint8 RGB arrays into a normalised ``B x 3 x H x W`` float tensor.

    The tensor keeps the arrays' pixel-interleaved order (channels-last strides), which is what the models'
    channels-last convolutions want: no transposing copy.
    """
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def prepare_batch(images: Sequence[np.ndarray], size: int, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Resize images (as read: gray or RGB uint8) to ``size x size`` and normalise them into a batch tensor."""
    rgb = [cv2.resize(to_rgb(img), (size, size), interpolation=cv2.INTER_LINEAR) for img in images]
    return normalize(np.stack(rgb), mean, std)


def logits_to_maps(logits: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Upsample ``B x 1 x S x S`` logits bilinearly to each image's ``(h, w)`` and return float32 maps in [0, 1]."""
    out = []
    for i, (h, w) in enumerate(shapes):
        lg = F.interpolate(logits[i:i + 1].float(), size=(h, w), mode="bilinear", align_corners=False)
        out.append(torch.sigmoid(lg)[0, 0].cpu().numpy().astype(np.float32))
    return out


class SaliencyPredictor:
    """A trained model on PyTorch as a :class:`defectbench.methods.base.Method`: ``predict(image) -> float map``.

    This is the reference engine (exactly the trained network). The fast CPU path is an exported copy on
    OpenVINO or ONNX Runtime: ``defectbench.deploy.load_predictor(..., optimize=True)``.
    """

    oracle = False

    def __init__(self, model: nn.Module, size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, name: str | None = None, device: str = "cpu",
                 source: dict[str, Any] | None = None) -> None:
        self.model = model.to(device).eval()
        self.size, self.mean, self.std, self.device = int(size), tuple(mean), tuple(std), device
        self.name = name or getattr(model, "model_name", type(model).__name__)
        self.source = dict(source or {})

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | dict[str, Any], expected_model: str | None = None,
                        device: str = "cpu") -> SaliencyPredictor:
        """Build a predictor from a checkpoint written by ``defectbench train`` (or shipped weights)."""
        model, info = load_trained(checkpoint, expected_model)
        source = {"checkpoint": None if isinstance(checkpoint, dict) else str(checkpoint),
                  "training": (info.get("meta") or {}).get("config")}
        return cls(model, info["input_size"], info["mean"], info["std"], name=info["model"], device=device,
                   source=source)

    @classmethod
    def from_shipped(cls, model: str, weights: str, device: str = "cpu") -> SaliencyPredictor:
        """Build a predictor from weights shipped in the package (e.g. ``litenet``, ``sd900``)."""
        return cls.from_checkpoint(shipped_weights_path(model, weights), expected_model=model, device=device)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return float32 maps in [0, 1], each of its image's size."""
        x = prepare_batch(images, self.size, self.mean, self.std).to(self.device)
        logits = self.model(x)
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        return logits_to_maps(logits, [img.shape[:2] for img in images])

    def predict(self, image: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
        """Return the saliency map of one image: float32 ``HxW`` in [0, 1] (``gt`` is never read)."""
        return self.predict_batch([image])[0]

    def record(self) -> dict[str, Any]:
        """What the model is and where its weights came from."""
        return {"type": "sod", "model": self.name, "input_size": self.size, "mean": list(self.mean),
                "std": list(self.std), "engine": "torch", **self.source}


MAPS_MANIFEST = ".defectbench-maps.json"


def _manifest_names(out_dir: Path) -> set[str]:
    """Names of the maps an earlier ``predict`` wrote into ``out_dir`` (empty when it wrote none)."""
    import json

    try:
        return set(json.loads((out_dir / MAPS_MANIFEST).read_text()).get("maps", []))
    except (OSError, ValueError, AttributeError):
        return set()


def check_maps_folder(out_dir: str | Path, image_paths: Sequence[Path], into_existing: bool = False) -> Path:
    """Check that maps for ``image_paths`` can go into ``out_dir`` without destroying any file; return the folder.

    Refused: the folder of an input image (maps would overwrite PNG inputs); a folder holding files that
    ``predict`` did not write (unless ``into_existing``); and, always, a map path that is an existing file
    ``predict`` did not write.
    """
    from defectbench.paths import prepare_output_dir

    out_dir = Path(out_dir).expanduser()
    if out_dir.is_dir():
        here = out_dir.resolve()
        inputs_here = [p for p in image_paths if Path(p).resolve().parent == here]
        if inputs_here:
            raise DataError(f"{out_dir}: --out is the folder of the input images ({inputs_here[0].name}, ...); maps "
                            "there would overwrite them: choose another folder")
        ours = _manifest_names(out_dir)
        foreign = sorted(f.name for f in out_dir.iterdir() if f.name != MAPS_MANIFEST and f.name not in ours)
        targets = {f"{Path(p).stem}.png" for p in image_paths}
        clobbered = [n for n in foreign if n in targets]
        if clobbered:
            raise DataError(f"{out_dir / clobbered[0]}: exists and was not written by defectbench predict; a map of the "
                            f"same name would replace it ({len(clobbered)} such files): choose an empty folder")
        if foreign and not into_existing:
            raise DataError(f"{out_dir}: holds {len(foreign)} files not written by defectbench predict (e.g. {foreign[0]}); "
                            "choose an empty or new folder, or pass --into-existing to write beside them")
    return prepare_output_dir(out_dir, "maps folder")


def predict_paths(predictor: SaliencyPredictor, paths: Sequence[Path], out_dir: str | Path, batch: int = 8,
                  progress: bool = True, overwrite: bool = True, into_existing: bool = False) -> list[Path]:
    """Write one 8-bit PNG map per image path into ``out_dir`` (named by the image's stem); return the map paths.

    With ``overwrite=False`` maps already present are kept (resumable). ``out_dir`` is checked first
    (:func:`check_maps_folder`): no input image or foreign file is ever overwritten.
    """
    from defectbench.atomic import atomic_write_json

    if batch < 1:
        raise DataError(f"batch must be a positive number of images, got {batch}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no images to predict")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})[0]
        raise DataError(f"several images share the stem {dup!r} ({paths[stems.index(dup)].parent}); maps are named by stem")
    out_dir = check_maps_folder(out_dir, paths, into_existing)
    names = sorted(_manifest_names(out_dir) | {f"{s}.png" for s in stems})
    atomic_write_json(out_dir / MAPS_MANIFEST, {"written_by": "defectbench predict", "maps": names})
    from defectbench.data.sample import Sample
    from defectbench.methods.base import write_maps
    from defectbench.progress import counting_bar

    with counting_bar(f"predict {predictor.name}", len(paths), progress) as advance:
        write_maps(predictor, [Sample(p.stem, p, None) for p in paths], out_dir, batch, advance, resume=not overwrite)
    return [out_dir / f"{p.stem}.png" for p in paths]


def input_images(input_dir: str | Path, ids: Sequence[str] | None = None) -> list[Path]:
    """The images of a folder to predict (restricted to the stems ``ids``); an error when there are none."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: input folder not found" if not input_dir.exists() else f"{input_dir}: not a folder")
    paths = list_images(input_dir)
    if ids is not None:
        wanted = set(ids)
        paths = [p for p in paths if p.stem in wanted]
    if not paths:
        raise DataError(f"{input_dir}: no images found (png, jpg, bmp, tif, webp)")
    return paths


def predict_folder(predictor: SaliencyPredictor | str | Path, input_dir: str | Path, out_dir: str | Path,
                   batch: int = 8, ids: Sequence[str] | None = None, progress: bool = True,
                   overwrite: bool = True, into_existing: bool = False) -> list[Path]:
    """Write one 8-bit PNG map per image of ``input_dir`` (same stem) into ``out_dir``; return the paths.

    ``predictor`` is a :class:`SaliencyPredictor` or a checkpoint path; ``ids`` restricts to those stems.
    """
    paths = input_images(input_dir, ids)
    check_maps_folder(out_dir, paths, into_existing)  # before a model is loaded
    if isinstance(predictor, (str, Path)):
        predictor = SaliencyPredictor.from_checkpoint(predictor)
    return predict_paths(predictor, paths, out_dir, batch=batch, progress=progress, overwrite=overwrite,
                         into_existing=into_existing)
