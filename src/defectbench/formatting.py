"""Small text formats shared by the status display and the report."""

from __future__ import annotations


def format_seconds(seconds: float | None) -> str:
    """Return a short human duration (``42 s``, ``3 min 05 s``, ``2 h 10 min``)."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"
