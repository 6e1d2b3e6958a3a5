"""User-facing errors: one clear line naming the file and what to do, never a deep traceback."""

from __future__ import annotations


class DefectbenchError(Exception):
    """An error caused by the user's input or environment; the CLI prints its message as one line."""


class DataError(DefectbenchError):
    """A dataset, image or mask is missing, unreadable or inconsistent."""


class CheckpointError(DefectbenchError):
    """A model checkpoint is missing, truncated or belongs to another model."""


class ConfigError(DefectbenchError):
    """An experiment configuration is invalid."""


class ExportError(DefectbenchError):
    """A model cannot be exported, or an exported model file is missing, foreign or does not fit the request."""
