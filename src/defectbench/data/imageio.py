"""Reading images, masks and saliency maps: the one place where pixel formats are converted.

Conversion rules (documented once, used everywhere):

* Images are returned as the dataset stores them: an ``HxW`` uint8 array for grayscale files
  (all three published defect datasets), an ``HxWx3`` uint8 **RGB** array for colour files.
  :func:`to_rgb` turns either into the ``HxWx3`` RGB array that networks take (a grayscale image
  is replicated into three channels).
* Ground-truth masks are read as 8-bit grayscale and binarised at ``> 128`` (the rule of
  PySODMetrics and the SOD toolkits; MT masks are JPEG-like, not strictly binary). A 16-bit
  mask is scaled to 8 bits first (``value // 257``); a colour mask is converted with the ITU-R
  BT.601 luma rule (``cv2.COLOR_BGR2GRAY``).
* Saliency maps are read by :func:`read_saliency_map`, which applies the same 16-bit and colour
  rules and reports that it did.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from defectbench.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _decode(path: Path, flags: int) -> np.ndarray:
    """Decode an image file with OpenCV (works with any path, spaces and non-ASCII included)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror})") from None
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format); replace or remove it")
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as stored: ``HxW`` uint8 for grayscale files, ``HxWx3`` uint8 RGB for colour files."""
    img = _decode(Path(path), cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; convert the image to 8-bit")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.shape[2] == 1:
            img = img[:, :, 0]
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def to_gray(img: np.ndarray) -> np.ndarray:
    """Return an ``HxW`` uint8 image: grayscale unchanged, RGB by the BT.601 luma rule."""
    if img.ndim == 2:
        return img
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Return the ``HxWx3`` uint8 RGB array that networks take (grayscale replicated to 3 channels)."""
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return img


def read_gray8(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read any image as ``HxW`` uint8 and list the conversions applied (16-bit, colour)."""
    img = _decode(Path(path), cv2.IMREAD_UNCHANGED)
    notes: list[str] = []
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) // 257).astype(np.uint8)
        notes.append("16-bit scaled to 8-bit (value // 257)")
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; save it as an 8-bit PNG")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 1], img[:, :, 2]):
            img = img[:, :, 0]
            notes.append("3 identical channels reduced to 1")
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            notes.append("colour converted to gray (BT.601 luma)")
    return np.ascontiguousarray(img), notes


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a ground-truth mask as a boolean ``HxW`` array, binarised at > 128."""
    gray, _ = read_gray8(path)
    return gray > 128


def list_images(folder: Path) -> list[Path]:
    """Return the image files of a folder (any common extension), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def encode_png(gray: np.ndarray) -> bytes:
    """Encode an ``HxW`` uint8 array as PNG bytes."""
    ok, buf = cv2.imencode(".png", gray)
    if not ok:
        raise DataError("could not encode PNG")
    return buf.tobytes()


def saliency_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Convert a float map in [0, 1] to uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def write_saliency_map(path: str | os.PathLike, prob: np.ndarray) -> None:
    """Write a float [0, 1] (or uint8) saliency map as an 8-bit grayscale PNG, atomically."""
    from defectbench.atomic import atomic_write_bytes

    arr = prob if np.asarray(prob).dtype == np.uint8 else saliency_to_uint8(prob)
    atomic_write_bytes(path, encode_png(arr))
