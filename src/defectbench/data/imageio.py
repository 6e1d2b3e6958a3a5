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
* Label masks are recognised, not binarised at ``> 128`` (which would make them all background):
  a palette-indexed PNG, or a mask whose non-zero values are all at most 128 and take at most
  :data:`MAX_LABELS` distinct values (a 0/1 export, or class indices), is read as
  ``foreground = value (index) != 0``, and :func:`read_mask_noted` says so. A mask whose non-zero
  values are all at most 128 but take many distinct values (a dim grey-level picture, not a mask)
  is refused with the fix: rescale it to 0/255.
* Saliency maps are read by :func:`read_gray8`, which applies the same 16-bit and colour rules
  and reports that it did.
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


MAX_LABELS = 16
LABEL_MASK_NOTE = "label mask (values <= 128 or palette): foreground = non-zero"


def _png_is_palette(path: Path) -> bool:
    """True for a PNG whose IHDR colour type is 3 (palette-indexed)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return False
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[25] == 3


def _palette_indices(path: Path) -> np.ndarray:
    """Return the palette indices of a palette PNG as ``HxW`` uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("P") if im.mode != "P" else im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError):
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format); replace or remove it") from None


def read_mask_noted(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a ground-truth mask as a boolean ``HxW`` array and list the conversions applied (module rules)."""
    path = Path(path)
    if _png_is_palette(path):
        return _palette_indices(path) != 0, [LABEL_MASK_NOTE]
    gray, notes = read_gray8(path)
    top = int(gray.max()) if gray.size else 0
    if 0 < top <= 128:
        levels = np.unique(gray)
        if len(levels) - 1 > MAX_LABELS:
            raise DataError(
                f"{path}: mask values are all <= 128 with {len(levels) - 1} grey levels: neither a 0/255 mask nor a "
                f"label mask; rescale it to 0 (background) / 255 (defect)")
        return gray != 0, notes + [LABEL_MASK_NOTE]
    return gray > 128, notes


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a ground-truth mask as a boolean ``HxW`` array: binarised at > 128, label masks by the module's rule."""
    return read_mask_noted(path)[0]


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


def read_map_for_mask(path: str | os.PathLike, shape: tuple[int, int], resize: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read a saliency map as ``HxW`` uint8 of its mask's ``shape`` (bilinear resize only when asked); list conversions.

    This is the one rule by which every scorer (``eval``, the runner, the SAM command) reads a map.
    """
    pred, notes = read_gray8(path)
    if pred.shape != tuple(shape):
        if not resize:
            raise DataError(f"{path}: map is {pred.shape[1]}x{pred.shape[0]} but its mask is {shape[1]}x{shape[0]}; "
                            "write maps at image size, or allow resizing (eval --resize, `resize: true` in a config)")
        pred = cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        notes = notes + ["resized to the mask's size (bilinear)"]
    return pred, notes


def images_by_stem(folder: str | os.PathLike, what: str = "folder") -> dict[str, Path]:
    """Map each image file's exact stem to its path (``a[1].bmp`` -> ``a[1]``); two files with one stem are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} not found")
    out: dict[str, Path] = {}
    dups: dict[str, list[str]] = {}
    for f in list_images(folder):
        if f.stem in out:
            dups.setdefault(f.stem, [out[f.stem].name]).append(f.name)
        else:
            out[f.stem] = f
    if dups:
        shown = "; ".join(" and ".join(v) for v in list(dups.values())[:5])
        raise DataError(f"{folder}: {len(dups)} stems are shared by several files ({shown}); keep one file per image")
    return out
