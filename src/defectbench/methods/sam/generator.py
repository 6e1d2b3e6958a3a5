"""Automatic mask generation: SAM's grid-of-points protocol, in our fast implementation or the official one.

Both generators take an ``H x W x 3`` RGB uint8 image and return :class:`~.proposals.Proposals` with the
semantics of ``SamAutomaticMaskGenerator`` (and ``SAM2AutomaticMaskGenerator`` for SAM 2.1): a grid of
single positive points per crop, three masks per point, a predicted-IoU filter, a stability-score filter,
masks touching a crop's inner edge dropped, box NMS per crop and across crops, optional removal of small
regions. :class:`AmgParams` holds the published defaults.

:class:`FastMaskGenerator` (the default) returns the same masks with less work:

* the decoder is :class:`~.fast_decoder.FastSamDecoder` (SAM and MobileSAM) — the official decoder's
  arithmetic re-associated so nothing is done per prompt that is the same for all prompts;
* the predicted-IoU filter runs *before* masks are upscaled (the IoU head does not depend on them), so
  masks that are thrown away are never upscaled or post-processed;
* logits go from low resolution to image resolution by one matrix product per axis
  (:mod:`.upsample`) instead of a 1024 x 1024 intermediate map per mask;
* run-length encoding is vectorised NumPy instead of a per-mask PyTorch loop.

For SAM 2.1 the official SAM 2 mask decoder is called directly (its high-resolution skip features make the
re-association above SAM-specific); the other three points apply. ``OfficialMaskGenerator`` wraps the
official classes and converts their output, for comparison (``--generator official``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torchvision.ops.boxes import batched_nms, box_area

from defectbench.errors import ConfigError
from defectbench.methods.sam.embeddings import EmbeddingCache, predictor_arrays, restore_predictor
from defectbench.methods.sam.proposals import Proposals, image_sha256, masks_to_rle
from defectbench.methods.sam.registry import get_spec
from defectbench.methods.sam.upsample import axis_matrices, upsample_logits, used_extent

GENERATORS = ("fast", "official")


@dataclass(frozen=True)
class AmgParams:
    """Automatic mask generation settings; the defaults are SAM's published ones (``SamAutomaticMaskGenerator``)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    @classmethod
    def for_model(cls, model: str, overrides: dict[str, Any] | None = None) -> AmgParams:
        """Return the model family's published defaults with ``overrides`` (``None`` values ignored) applied."""
        values = dict(get_spec(model).amg_defaults)
        types = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if key not in types:
                raise ConfigError(f"unknown automatic-mask-generation setting {key!r}; known: {', '.join(sorted(types))}")
            try:  # 0 from YAML and 0.0 from a flag must give the same cache key
                values[key] = types[key](value)
            except (TypeError, ValueError):
                raise ConfigError(f"automatic-mask-generation setting {key} must be a number, got {value!r}") from None
        params = cls(**values)
        params.validate()
        return params

    def validate(self) -> None:
        """Raise ConfigError for settings outside their meaningful range."""
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise ConfigError("points_per_side and points_per_batch must be at least 1")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {v}")
        if self.crop_n_layers < 0 or self.min_mask_region_area < 0:
            raise ConfigError("crop_n_layers and min_mask_region_area must not be negative")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dictionary (for cache keys and run records)."""
        return dataclasses.asdict(self)

    def point_grids(self) -> list[np.ndarray]:
        """Return the normalised point grid of each crop layer."""
        from segment_anything.utils.amg import build_all_layer_point_grids

        return build_all_layer_point_grids(self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor)


class MaskGenerator(Protocol):
    """Anything that turns an RGB image into proposals."""

    name: str
    params: AmgParams

    def generate(self, image: np.ndarray) -> Proposals:
        """Return the proposals of an ``H x W x 3`` uint8 RGB image."""
        ...


# --------------------------------------------------------------------------------------------------------
# our generator


class _Sam1Engine:
    """Image encoding (official ``SamPredictor``) and fast decoding for SAM / MobileSAM."""

    family = "sam"

    def __init__(self, model: torch.nn.Module) -> None:
        from segment_anything import SamPredictor

        from defectbench.methods.sam.fast_decoder import FastSamDecoder

        self.predictor = SamPredictor(model)
        self.decoder = FastSamDecoder(model)
        self.img_size = model.image_encoder.img_size
        self.ctx = None

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)
        self.ctx = self.decoder.prepare(self.predictor.features)
        self.hw = image.shape[:2]

    def load_embedding(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the image state from cached encoder output instead of running the encoder."""
        restore_predictor(self.predictor, self.family, arrays, self.predictor.device)
        self.ctx = self.decoder.prepare(self.predictor.features)
        self.hw = tuple(int(v) for v in arrays["orig_hw"])

    def embedding(self) -> dict[str, np.ndarray]:
        """The current image's encoder output, for the embedding cache."""
        return predictor_arrays(self.predictor, self.family, self.hw)

    def transform_points(self, points: np.ndarray) -> torch.Tensor:
        coords = self.predictor.transform.apply_coords(points, self.hw)
        return torch.as_tensor(coords, dtype=torch.float32, device=self.predictor.device)

    def decode(self, coords: torch.Tensor) -> tuple[torch.Tensor, Any]:
        dp = self.decoder.decode(self.ctx, coords)
        return dp.iou, dp

    def lowres(self, state: Any, idx: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        return self.decoder.upscale(self.ctx, state, idx, rows, cols)

    def reset(self) -> None:
        self.predictor.reset_image()
        self.ctx = None


class _Sam2Engine:
    """Image encoding and decoding with the official SAM 2 predictor's modules, low resolution only."""

    family = "sam2"

    def __init__(self, model: torch.nn.Module) -> None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.predictor = SAM2ImagePredictor(model)
        _fit_feature_sizes(self.predictor, model)
        self.model = model

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)
        self.hw = image.shape[:2]

    def load_embedding(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the image state from cached encoder output instead of running the encoder."""
        restore_predictor(self.predictor, self.family, arrays, self.predictor.device)
        self.hw = tuple(int(v) for v in arrays["orig_hw"])

    def embedding(self) -> dict[str, np.ndarray]:
        """The current image's encoder output, for the embedding cache."""
        return predictor_arrays(self.predictor, self.family, self.hw)

    def transform_points(self, points: np.ndarray) -> torch.Tensor:
        pts = torch.as_tensor(points, dtype=torch.float32, device=self.predictor.device)
        return self.predictor._transforms.transform_coords(pts, normalize=True, orig_hw=self.hw)

    def decode(self, coords: torch.Tensor) -> tuple[torch.Tensor, Any]:
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int, device=coords.device)
        sparse, dense = self.model.sam_prompt_encoder(points=(coords[:, None, :], labels), boxes=None, masks=None)
        feats = self.predictor._features
        high = [lvl[-1].unsqueeze(0) for lvl in feats["high_res_feats"]]
        low, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=feats["image_embed"][-1].unsqueeze(0), image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True,
            repeat_image=coords.shape[0] > 1, high_res_features=high,
        )
        return iou, low

    def lowres(self, state: Any, idx: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        return state[idx][:, :, :rows, :cols]

    def reset(self) -> None:
        self.predictor.reset_predictor()


def _fit_feature_sizes(predictor: Any, model: torch.nn.Module) -> None:
    """SAM 2's predictor hard-codes the feature sizes of a 1024 input; derive them from the model instead
    (identical for the published models, needed for reduced test models)."""
    s = int(model.image_size)
    predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]


def _stability(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """SAM's stability score: IoU of the masks thresholded at +offset and -offset (threshold 0)."""
    inter = (logits > offset).sum((-1, -2), dtype=torch.int32)
    union = (logits > -offset).sum((-1, -2), dtype=torch.int32)
    return inter / union


class FastMaskGenerator:
    """Our automatic mask generator (see the module docstring); ``keep_logits`` stores low-res logits.

    With ``embeddings`` (the model's :class:`~defectbench.methods.sam.embeddings.EmbeddingCache`) the uncropped
    layer's encoder output is read from that cache when present and written to it when absent, the cache the
    prompt protocols use: one encoder pass per image for the automatic masks and every prompt row (exact float32,
    so the proposals are the same either way). ``counts`` holds the encoder calls and the cached embeddings used.
    """

    name = "fast"

    def __init__(self, model: torch.nn.Module, family: str, params: AmgParams, keep_logits: bool = True,
                 decode_chunk: int = 16, upscale_chunk: int = 4, embeddings: EmbeddingCache | None = None) -> None:
        if family == "sam2" and params.min_mask_region_area > 0:
            raise ConfigError("min_mask_region_area > 0 with SAM 2.1 needs --generator official")
        self.params = params
        self.family = family
        self.engine = _Sam2Engine(model) if family == "sam2" else _Sam1Engine(model)
        self.keep_logits = keep_logits
        # prompts decoded / upscaled together: small enough for the per-prompt image tensors to stay in cache
        self.decode_chunk = decode_chunk
        self.upscale_chunk = upscale_chunk
        self.img_size = model.image_size if family == "sam2" else model.image_encoder.img_size
        self.timings: dict[str, float] = {}
        self.embeddings = embeddings
        self.counts = {"encoder_calls": 0, "cached_embeddings": 0}

    def _tick(self, key: str, t0: float) -> float:
        t = time.perf_counter()
        self.timings[key] = self.timings.get(key, 0.0) + t - t0
        return t

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> Proposals:
        """Return the proposals of an ``H x W x 3`` uint8 RGB image."""
        from segment_anything.utils.amg import generate_crop_boxes

        p = self.params
        h, w = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes((h, w), p.crop_n_layers, p.crop_overlap_ratio)
        grids = p.point_grids()
        parts = [self._process_crop(image, box, grids[layer], (h, w)) for box, layer in zip(crop_boxes, layer_idxs)]
        data = {k: [x for part in parts for x in part[k]] if isinstance(parts[0][k], list) else
                torch.cat([part[k] for part in parts]) for k in parts[0]}
        if len(crop_boxes) > 1 and len(data["rles"]):
            keep = batched_nms(data["boxes"].float(), 1 / box_area(data["crop_boxes"].float()),
                               torch.zeros(len(data["boxes"])), iou_threshold=p.crop_nms_thresh)
            data = _filter(data, keep)
        if p.min_mask_region_area > 0 and len(data["rles"]):
            data = _remove_small_regions(data, p.min_mask_region_area, max(p.box_nms_thresh, p.crop_nms_thresh), (h, w))
        return Proposals(
            size=(h, w), rles=data["rles"], predicted_iou=data["iou"].numpy().astype(np.float32),
            stability_score=data["stability"].numpy().astype(np.float32), boxes=data["boxes"].numpy().astype(np.float32),
            points=data["points"].numpy().astype(np.float32), crop_boxes=data["crop_boxes"].numpy().astype(np.int32),
            lowres_logits=data["lowres"] if self.keep_logits else None,
            lowres_meta={"family": self.family, "img_size": self.img_size, "low_size": self.img_size // 4},
            info={"generator": self.name},
        )

    def _encode(self, image: np.ndarray, crop: np.ndarray, whole: bool) -> None:
        """Set the crop as the engine's image: the whole image's embedding from the shared cache when there is one
        (written there after an encoder pass when absent), any other crop through the encoder."""
        key = image_sha256(image) if whole and self.embeddings is not None else None
        arrays = self.embeddings.get_for(key, image.shape[:2]) if key is not None else None
        if arrays is not None:
            self.engine.load_embedding(arrays)
            self.counts["cached_embeddings"] += 1
            return
        self.engine.set_image(crop)
        self.counts["encoder_calls"] += 1
        if key is not None:
            self.embeddings.put(key, self.engine.embedding())

    def _process_crop(self, image: np.ndarray, crop_box: list[int], grid: np.ndarray,
                      orig_hw: tuple[int, int]) -> dict[str, Any]:
        """One crop's masks: computed on the model's device, returned as CPU tensors (RLE and logits as NumPy)."""
        from segment_anything.utils.amg import batched_mask_to_box, is_box_near_crop_edge

        p = self.params
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        ch, cw = crop.shape[:2]
        t = time.perf_counter()
        self._encode(image, crop, list(crop_box) == [0, 0, orig_hw[1], orig_hw[0]])
        t = self._tick("encode", t)
        points = grid * np.array([[cw, ch]])
        coords = self.engine.transform_points(points)
        dev = coords.device  # the model's: everything per prompt stays there until the crop's results are final
        meta = {"family": self.family, "img_size": self.img_size, "low_size": self.img_size // 4}
        ay, ax = axis_matrices(meta, (ch, cw))
        rows, cols = used_extent(ay), used_extent(ax)
        ay, ax = ay.to(dev), ax.to(dev)
        points_t = torch.as_tensor(points, dtype=torch.float32, device=dev)
        full = [0, 0, orig_hw[1], orig_hw[0]]
        out: dict[str, list] = {k: [] for k in ("rles", "iou", "stability", "boxes", "points", "lowres")}
        step = min(p.points_per_batch, self.decode_chunk)  # results do not depend on the batching
        for start in range(0, len(points), step):
            sl = slice(start, start + step)
            iou, state = self.engine.decode(coords[sl])
            t = self._tick("decode", t)
            keep = iou > p.pred_iou_thresh if p.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
            prompts = torch.nonzero(keep.any(1))[:, 0]
            for c0 in range(0, len(prompts), self.upscale_chunk):
                idx = prompts[c0:c0 + self.upscale_chunk]
                low = self.engine.lowres(state, idx, rows, cols)  # M x 3 x rows x cols
                sel = keep[idx]
                low = low[sel]
                if not len(low):
                    continue
                which = torch.nonzero(sel)
                t = self._tick("upscale", t)
                logits = upsample_logits(low, ay, ax)
                stab = _stability(logits, p.stability_score_offset)
                ok = stab >= p.stability_score_thresh if p.stability_score_thresh > 0 else torch.ones_like(stab, dtype=torch.bool)
                masks = logits[ok] > 0.0
                t = self._tick("postprocess", t)
                if not len(masks):
                    continue
                boxes = batched_mask_to_box(masks)
                edge_ok = ~is_box_near_crop_edge(boxes, list(crop_box), full)
                masks, boxes = masks[edge_ok], boxes[edge_ok]
                chosen = which[ok][edge_ok]
                prompt_ids = idx[chosen[:, 0]] + start
                mask_ids = chosen[:, 1]
                out["iou"].append(iou[idx[chosen[:, 0]], mask_ids])
                out["stability"].append(stab[ok][edge_ok])
                out["boxes"].append(boxes)
                out["points"].append(points_t[prompt_ids])
                if self.keep_logits:
                    out["lowres"].extend(low[ok][edge_ok].cpu().numpy().astype(np.float16))
                out["rles"].extend(masks_to_rle(_uncrop(masks, crop_box, orig_hw).cpu().numpy()))
                t = self._tick("postprocess", t)
        self.engine.reset()
        data = {k: (v if k in ("rles", "lowres") else (torch.cat(v) if v else None)) for k, v in out.items()}
        n = len(data["rles"])
        if n == 0:
            return {"rles": [], "lowres": [], "iou": torch.zeros(0), "stability": torch.zeros(0),
                    "boxes": torch.zeros(0, 4), "points": torch.zeros(0, 2), "crop_boxes": torch.zeros(0, 4, dtype=torch.int)}
        keep = batched_nms(data["boxes"].float(), data["iou"], torch.zeros(n, device=dev),
                           iou_threshold=p.box_nms_thresh)
        data = _filter(data, keep)
        offset = torch.tensor([x0, y0, x0, y0], device=dev)
        data["boxes"] = data["boxes"] + offset
        data["points"] = data["points"] + offset[:2]
        data["crop_boxes"] = torch.tensor([crop_box] * len(keep), dtype=torch.int, device=dev).reshape(-1, 4)
        if not self.keep_logits:
            data["lowres"] = []
        self._tick("postprocess", t)
        return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in data.items()}  # crops merge on the CPU


def _uncrop(masks: torch.Tensor, crop_box: list[int], orig_hw: tuple[int, int]) -> torch.Tensor:
    """Place crop-sized masks into the full image (zero outside the crop)."""
    x0, y0, x1, y1 = crop_box
    h, w = orig_hw
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return masks
    return torch.nn.functional.pad(masks, (x0, w - x1, y0, h - y1), value=False)


def _filter(data: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """Keep the entries ``keep`` (indices) of every field (empty lists stay empty)."""
    idx = keep.tolist()
    return {k: ([v[i] for i in idx] if v else v) if isinstance(v, list) else v[keep] for k, v in data.items()}


def _remove_small_regions(data: dict[str, Any], min_area: int, nms_thresh: float,
                          hw: tuple[int, int]) -> dict[str, Any]:
    """SAM's small-region post-processing (holes and islands below ``min_area``), then box NMS again."""
    from segment_anything.utils.amg import batched_mask_to_box, remove_small_regions

    from defectbench.methods.sam.proposals import rle_to_mask

    masks, scores = [], []
    for counts in data["rles"]:
        m = rle_to_mask(counts, hw)
        m, changed1 = remove_small_regions(m, min_area, mode="holes")
        m, changed2 = remove_small_regions(m, min_area, mode="islands")
        masks.append(torch.as_tensor(m))
        scores.append(0.0 if (changed1 or changed2) else 1.0)
    stacked = torch.stack(masks)
    boxes = batched_mask_to_box(stacked)
    keep = batched_nms(boxes.float(), torch.tensor(scores), torch.zeros(len(boxes)), iou_threshold=nms_thresh)
    data = dict(data)
    data["rles"] = list(data["rles"])
    data["boxes"] = data["boxes"].clone()
    for i in keep.tolist():
        if scores[i] == 0.0:
            data["rles"][i] = masks_to_rle(stacked[i:i + 1].numpy())[0]
            data["boxes"][i] = boxes[i]
    return _filter(data, keep)


# --------------------------------------------------------------------------------------------------------
# the official generators, for comparison


class OfficialMaskGenerator:
    """``SamAutomaticMaskGenerator`` / ``SAM2AutomaticMaskGenerator`` with their output converted to Proposals."""

    name = "official"

    def __init__(self, model: torch.nn.Module, family: str, params: AmgParams) -> None:
        kwargs = params.to_dict()
        if family == "sam2":
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

            self.gen = SAM2AutomaticMaskGenerator(model, output_mode="uncompressed_rle", **kwargs)
            _fit_feature_sizes(self.gen.predictor, model)
        else:
            from segment_anything import SamAutomaticMaskGenerator

            self.gen = SamAutomaticMaskGenerator(model, output_mode="uncompressed_rle", **kwargs)
        self.params = params
        self.family = family

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> Proposals:
        """Return the proposals of an ``H x W x 3`` uint8 RGB image."""
        anns = self.gen.generate(image)
        h, w = image.shape[:2]
        if not anns:
            return Proposals.empty((h, w))

        def xyxy(b: list[float]) -> list[float]:
            return [b[0], b[1], b[0] + b[2], b[1] + b[3]]

        return Proposals(
            size=(h, w), rles=[np.asarray(a["segmentation"]["counts"], dtype=np.int32) for a in anns],
            predicted_iou=np.array([a["predicted_iou"] for a in anns], np.float32),
            stability_score=np.array([a["stability_score"] for a in anns], np.float32),
            boxes=np.array([xyxy(a["bbox"]) for a in anns], np.float32),
            points=np.array([a["point_coords"][0] for a in anns], np.float32),
            crop_boxes=np.array([xyxy(a["crop_box"]) for a in anns], np.int32),
            info={"generator": self.name},
        )


def make_generator(kind: str, model: torch.nn.Module, model_name: str, params: AmgParams,
                   keep_logits: bool = True, embeddings: EmbeddingCache | None = None) -> MaskGenerator:
    """Return the ``fast`` (default) or ``official`` generator for a loaded model (``embeddings``: the shared
    embedding cache the fast generator reads and fills for the whole image; the official one runs its own encoder)."""
    family = "sam2" if get_spec(model_name).family == "sam2" else "sam"
    if kind == "fast":
        return FastMaskGenerator(model, family, params, keep_logits=keep_logits, embeddings=embeddings)
    if kind == "official":
        return OfficialMaskGenerator(model, family, params)
    raise ConfigError(f"unknown generator {kind!r}; choose one of {', '.join(GENERATORS)}")
