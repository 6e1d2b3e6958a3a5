"""Test-time image corruptions (the robustness axis): deterministic, seeded per image, named ``<kind>-<severity>``.

Each corruption acts on the image as the dataset stores it (``HxW`` grayscale or ``HxWx3`` RGB, uint8); grayscale
images stay grayscale and noise is drawn once per pixel (the same value on the three channels of an RGB pixel would
be wrong for colour images, so RGB images get independent noise per channel). The noise of an image is drawn from
``numpy.random.Generator(PCG64(seed))`` with ``seed`` taken from ``sha256(f"{name}:{image_id}")``, so a corrupted
image depends only on the corruption, the image and its id: every method, run and machine sees the same pixels.

| kind | severity | what |
| --- | --- | --- |
| ``saltpepper`` | 1-50 (% of pixels) | that share of pixels set to 0 or 255 (half each), as EDRNet and DACNet report |
| ``gaussnoise`` | 1-100 (grey levels) | additive Gaussian noise of that standard deviation, clipped to [0, 255] |
| ``gaussblur`` | 1-10 (pixels) | Gaussian blur of that sigma (kernel 2 * ceil(3 sigma) + 1) |
| ``brighter`` / ``darker`` | 1-200 (grey levels) | that value added / subtracted, clipped |
| ``lowcontrast`` | 1-99 (% kept) | contrast around the image mean scaled to that share |
| ``jpeg`` | 1-95 (quality) | JPEG compression at that quality, decoded again |
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from defectbench.errors import ConfigError, DataError

Corruption = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _salt_pepper(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    out = img.copy()
    hit = rng.random(img.shape[:2]) < severity / 100.0
    salt = rng.random(img.shape[:2]) < 0.5
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


def _gauss_noise(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, severity, img.shape)
    return np.clip(np.rint(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def _gauss_blur(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    k = 2 * math.ceil(3 * severity) + 1
    return cv2.GaussianBlur(img, (k, k), sigmaX=severity, sigmaY=severity, borderType=cv2.BORDER_REFLECT_101)


def _shift(sign: int) -> Corruption:
    def shift(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
        return np.clip(img.astype(np.int32) + sign * int(severity), 0, 255).astype(np.uint8)
    return shift


def _low_contrast(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    f = img.astype(np.float64)
    mean = f.mean()
    return np.clip(np.rint(mean + (f - mean) * severity / 100.0), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(severity)])
    if not ok:
        raise DataError("JPEG encoding failed")
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out if out.ndim == 2 else cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


# kind -> (function, lowest severity, highest severity)
KINDS: dict[str, tuple[Corruption, int, int]] = {
    "saltpepper": (_salt_pepper, 1, 50),
    "gaussnoise": (_gauss_noise, 1, 100),
    "gaussblur": (_gauss_blur, 1, 10),
    "brighter": (_shift(+1), 1, 200),
    "darker": (_shift(-1), 1, 200),
    "lowcontrast": (_low_contrast, 1, 99),
    "jpeg": (_jpeg, 1, 95),
}
NAME_RE = re.compile(r"^([a-z]+)-(\d+)$")


def parse_corruption(name: str) -> tuple[str, int]:
    """Split and check a corruption name such as ``saltpepper-10``; a :class:`ConfigError` line names what is wrong."""
    m = NAME_RE.match(str(name))
    kinds = ", ".join(f"{k}-<{lo}..{hi}>" for k, (_, lo, hi) in KINDS.items())
    if not m or m.group(1) not in KINDS:
        raise ConfigError(f"unknown corruption {name!r}; use <kind>-<severity>, one of: {kinds}")
    kind, severity = m.group(1), int(m.group(2))
    _, lo, hi = KINDS[kind]
    if not lo <= severity <= hi:
        raise ConfigError(f"corruption {name!r}: severity {severity} does not exist for {kind}; it must be {lo}..{hi}")
    return kind, severity


def image_seed(name: str, image_id: str) -> int:
    """The noise seed of one image under one corruption (independent of run, machine and library versions)."""
    return int.from_bytes(hashlib.sha256(f"{name}:{image_id}".encode()).digest()[:8], "little")


def corrupt(img: np.ndarray, name: str, image_id: str) -> np.ndarray:
    """Return ``img`` under corruption ``name`` (e.g. ``jpeg-10``), seeded by the corruption and ``image_id``."""
    kind, severity = parse_corruption(name)
    fn = KINDS[kind][0]
    rng = np.random.Generator(np.random.PCG64(image_seed(name, image_id)))
    out = fn(np.ascontiguousarray(img), float(severity), rng)
    assert out.shape == img.shape and out.dtype == np.uint8
    return out


def corrupted_dataset(dataset: Any, split: str, name: str, folder: Path,
                      progress: Callable[[int], None] | None = None) -> Any:
    """Return a copy of ``dataset`` whose ``split`` images are their corrupted versions, written once into ``folder``.

    Files are ``<folder>/<image id>.png`` (lossless, so what a method reads is exactly the corrupted pixels), made
    on first use and reused by every later job; masks are unchanged, other splits keep their clean images.
    """
    from dataclasses import replace

    from defectbench.atomic import atomic_write_bytes
    from defectbench.data.imageio import read_image

    parse_corruption(name)
    folder = Path(folder)
    by_id = {s.id: s for s in dataset.split(split)}
    out = []
    for sample in dataset.samples:
        if sample.id not in by_id:
            out.append(sample)
            continue
        path = folder / f"{sample.id}.png"
        if not path.is_file():
            img = corrupt(read_image(sample.image_path), name, sample.id)
            ok, buf = cv2.imencode(".png", img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            if not ok:
                raise DataError(f"{path}: cannot encode the corrupted image")
            atomic_write_bytes(path, buf.tobytes())
        if progress is not None:
            progress(1)
        out.append(replace(sample, image_path=path))
    return replace(dataset, samples=out, title=f"{dataset.title} ({name})")
