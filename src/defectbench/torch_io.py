"""Loading PyTorch files safely: weights-only unpickling, and one clear line for every way a file can be bad."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from defectbench.errors import CheckpointError


def load_weights_only(path: str | os.PathLike, what: str = "checkpoint", mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU; a missing, unsafe or corrupt file is a CheckpointError.

    A pickle that would run code when loaded (a whole pickled model, custom classes) is refused as unsafe and
    said so, rather than reported as corrupt.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # a class or function the weights-only unpickler refuses
            raise CheckpointError(
                f"{path}: refused as unsafe: this {what} holds pickled Python objects beyond tensors, which could run "
                "code when loaded; save a state dict (model.state_dict()) instead") from None
        raise CheckpointError(f"{path}: not a readable {what} (UnpicklingError); the file is truncated or corrupt") from None
    except Exception as exc:  # noqa: BLE001 - any other failure means a bad file
        raise CheckpointError(f"{path}: not a readable {what} ({type(exc).__name__}); the file is truncated or of "
                              "another format") from None
