"""Compact, self-describing bytes for one image's scores (scalars plus 256-threshold curves) in a SQLite BLOB."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"DBZ1"  # zlib-compressed payload: header length, JSON header, raw arrays


def scores_to_fields(scores: Any) -> dict[str, Any]:
    """Return the fields of an ``ImageScores`` (dataclass, NamedTuple or plain object) as a dict."""
    if dataclasses.is_dataclass(scores):
        return {f.name: getattr(scores, f.name) for f in dataclasses.fields(scores)}
    if hasattr(scores, "_asdict"):
        return dict(scores._asdict())
    if isinstance(scores, dict):
        return dict(scores)
    return dict(vars(scores))


def encode_fields(fields: dict[str, Any]) -> bytes:
    """Pack scalars (JSON) and arrays (float64 stored as float32, small int64 as int32) into zlib-compressed bytes."""
    scalars: dict[str, Any] = {}
    arrays: list[tuple[str, np.ndarray]] = []
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            arrays.append((name, value))
        elif isinstance(value, np.generic):
            scalars[name] = value.item()
        else:
            scalars[name] = value
    stored = [(n, _compact(a)) for n, a in arrays]
    header = {"scalars": scalars,
              "arrays": [[n, s.dtype.str, list(s.shape), a.dtype.str] for (n, a), (_, s) in zip(arrays, stored, strict=True)]}
    head = json.dumps(header, separators=(",", ":")).encode()
    payload = struct.pack("<I", len(head)) + head + b"".join(s.tobytes() for _, s in stored)
    return MAGIC + zlib.compress(payload, 1)


def _compact(arr: np.ndarray) -> np.ndarray:
    """float64 -> float32 (curves in [0, 1]); int64 -> int32 when the values fit (pixel counts)."""
    if arr.dtype == np.float64:
        return np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype == np.int64 and (arr.size == 0 or (arr.min() >= -(2**31) and arr.max() < 2**31)):
        return np.ascontiguousarray(arr, dtype=np.int32)
    return np.ascontiguousarray(arr)


def decode_fields(blob: bytes) -> dict[str, Any]:
    """Unpack bytes written by :func:`encode_fields` into scalars and arrays of their original dtypes."""
    if blob[:4] != MAGIC:
        raise ValueError("not a defectbench score blob")
    blob = zlib.decompress(blob[4:])
    (n,) = struct.unpack("<I", blob[:4])
    header = json.loads(blob[4:4 + n])
    out: dict[str, Any] = dict(header["scalars"])
    pos = 4 + n
    for name, dtype, shape, original in header["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape))
        out[name] = np.frombuffer(blob, dtype=dt, count=count, offset=pos).reshape(shape).astype(np.dtype(original))
        pos += count * dt.itemsize
    return out
