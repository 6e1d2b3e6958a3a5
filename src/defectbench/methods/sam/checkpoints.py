"""Finding, checking, hashing and loading official SAM-family checkpoints.

Where a checkpoint is looked for: ``--checkpoint PATH`` (``checkpoint=`` here), else the official file name in the
checkpoints folder (``$DEFECTBENCH_CHECKPOINTS``, else ``~/.cache/defectbench/checkpoints``) or torch hub's cache.
Nothing is downloaded here; ``defectbench weights fetch MODEL`` does that.

Every failure is one :class:`~defectbench.errors.CheckpointError` line naming the file and what to do:
a missing file (with the download address), a truncated or corrupt file, a file of another model
(``sam_vit_b`` weights given for ``vit_h`` is recognised and named), or a file whose SHA-256 is not the official
one (refused unless ``allow_unofficial``, for one's own fine-tuned weights). The keys and shapes are checked
against the official architecture built on the ``meta`` device *before* the real model is built, so a wrong file
fails in a second even for ViT-H.

The SHA-256 of a checkpoint keys the proposal cache; it is computed once per file and remembered in
``<cache root>/checkpoint_hashes.json`` (keyed by path, size and modification time).
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectbench.downloads.catalog import sam_file
from defectbench.downloads.files import cached_sha256, file_sha256, find, verify
from defectbench.errors import CheckpointError
from defectbench.methods.sam.registry import MODELS, ModelSpec, get_spec
from defectbench.paths import CHECKPOINTS_ENV, weights_dir

__all__ = ["cached_sha256", "file_sha256"]  # re-exported: the hashing of checkpoints lives in downloads.files
UNOFFICIAL_HINT = ("for your own fine-tuned weights pass --allow-unofficial (in an experiment config: "
                   "allow_unofficial: true)")

RANDOM = "random"


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a model's weights come from: a file (with its hash) or random initialisation (``path is None``)."""

    model: str
    path: Path | None
    sha256: str
    official: bool | None

    @property
    def label(self) -> str:
        """A short human label: the file name or ``random (seed N)``."""
        return self.path.name if self.path else f"random weights ({self.sha256})"


def candidate_path(spec: ModelSpec, checkpoint: str | os.PathLike | None = None) -> Path:
    """Return the path a checkpoint would be read from: the explicit path, else the official file where it is
    found (checkpoints folder, torch hub's cache), else where ``defectbench weights fetch`` would put it."""
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    return find(sam_file(spec.name)) or weights_dir() / spec.file_name


def locate(model: str, checkpoint: str | os.PathLike | None = None) -> Path:
    """Return the checkpoint file of ``model``; a missing file is a one-line error with the download address."""
    spec = get_spec(model)
    path = candidate_path(spec, checkpoint)
    if path.is_dir():
        path = path / spec.file_name
    if not path.is_file():
        how = ("" if checkpoint is not None else f"run `defectbench weights fetch {spec.name}`, or pass "
               f"--checkpoint PATH or set ${CHECKPOINTS_ENV} to the folder holding {spec.file_name}; ")
        raise CheckpointError(f"{path}: checkpoint not found; {how}download {spec.file_name} from {spec.url}")
    return path


def verify_checkpoint(spec: ModelSpec, path: Path, cache_root: str | os.PathLike | None = None,
                      allow_unofficial: bool = False) -> CheckpointInfo:
    """Hash ``path`` (remembered per file) and return its identity; a file whose SHA-256 is not the official one is
    a one-line error with both hashes, unless ``allow_unofficial`` (then it is recorded as unofficial)."""
    entry = sam_file(spec.name)
    try:
        digest = verify(path, entry, cache_root, UNOFFICIAL_HINT, allow_unofficial)
    except CheckpointError:
        check_layout(spec, read_state_dict(path, spec), path)  # a file of another model is named as such first
        raise
    return CheckpointInfo(spec.name, path, digest, (digest == spec.sha256) if spec.sha256 else None)


def read_state_dict(path: Path, spec: ModelSpec) -> dict[str, Any]:
    """Read a checkpoint file into a state dict (tensors on CPU); truncated or foreign files are clear errors."""
    import torch

    size = path.stat().st_size
    hint = f" (official size {spec.size} bytes, this file {size})" if spec.size and spec.size != size else ""
    if size == 0:
        raise CheckpointError(f"{path}: file is empty; download {spec.file_name} again from {spec.url}")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint, probably truncated or corrupt{hint} ({first[:120]}); "
            f"download {spec.file_name} again from {spec.url}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors of foreign files have many types
        if "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"{path}: refused as unsafe: it holds pickled Python objects beyond tensors, which could run code when "
                f"loaded; use the official {spec.file_name} from {spec.url}") from None
        raise CheckpointError(
            f"{path}: not a {spec.title} checkpoint ({type(exc).__name__}: {str(exc)[:120]}); "
            f"download {spec.file_name} from {spec.url}"
        ) from None
    if isinstance(obj, dict) and spec.state_key and isinstance(obj.get(spec.state_key), dict):
        obj = obj[spec.state_key]
    elif isinstance(obj, dict) and not spec.state_key and isinstance(obj.get("model"), dict) and \
            not any(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = obj["model"]  # a SAM 2 style wrapper around a SAM 1 state dict
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: holds no state dict of tensors, so it is not a {spec.title} checkpoint; "
            f"download {spec.file_name} from {spec.url}"
        )
    return obj


def identify(state: dict[str, Any]) -> str | None:
    """Guess which registered model a state dict belongs to from a few tell-tale parameter shapes."""
    def shape(key: str) -> tuple[int, ...] | None:
        t = state.get(key)
        return tuple(t.shape) if t is not None else None

    if (s := shape("image_encoder.patch_embed.proj.weight")) is not None:
        return {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}.get(s[0])
    if shape("image_encoder.patch_embed.seq.0.c.weight") is not None:
        return "mobile_sam"
    if (s := shape("image_encoder.trunk.patch_embed.proj.weight")) is not None:
        n_blocks = len({k.split(".")[3] for k in state if k.startswith("image_encoder.trunk.blocks.")})
        if s[0] == 96:
            return "sam2.1_hiera_t" if n_blocks <= 12 else "sam2.1_hiera_s"
        return {112: "sam2.1_hiera_b+", 144: "sam2.1_hiera_l"}.get(s[0])
    return None


_LAYOUTS: dict[str, dict[str, tuple[int, ...]]] = {}


def expected_layout(spec: ModelSpec, model: Any | None = None) -> dict[str, tuple[int, ...]]:
    """Return the official architecture's state-dict keys and shapes (remembered per model name).

    Built on the meta device (no memory, no time) where the builder allows it; otherwise from ``model``
    when given, else from a real build.
    """
    import torch

    if spec.name not in _LAYOUTS:
        if model is None:
            try:
                with torch.device("meta"):
                    model = spec.build()
            except Exception:  # noqa: BLE001 - some builders (SAM 2's Hiera) need real tensors at construction
                model = spec.build()
        _LAYOUTS[spec.name] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _LAYOUTS[spec.name]


def _meta_buildable(spec: ModelSpec) -> bool:
    import torch

    try:
        with torch.device("meta"):
            spec.build()
        return True
    except Exception:  # noqa: BLE001
        return False


def check_layout(spec: ModelSpec, state: dict[str, Any], path: Path, model: Any | None = None) -> None:
    """Raise a one-line CheckpointError unless ``state`` has exactly the keys and shapes of ``spec``'s model."""
    expected = expected_layout(spec, model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if not (missing or unexpected or wrong):
        return
    guess = identify(state)
    if guess and guess != spec.name and guess in MODELS:
        other = MODELS[guess]
        raise CheckpointError(
            f"{path}: this is a {other.title} checkpoint ({other.file_name}), not {spec.title}; "
            f"run with --model {guess} or give the {spec.file_name} file"
        )
    detail = (f"{len(missing)} missing keys (first: {missing[0]})" if missing else
              f"{len(unexpected)} unexpected keys (first: {unexpected[0]})" if unexpected else
              f"{len(wrong)} shape mismatches (first: {wrong[0]} {tuple(state[wrong[0]].shape)} "
              f"instead of {expected[wrong[0]]})")
    raise CheckpointError(
        f"{path}: does not match the {spec.title} architecture ({detail}); give the official {spec.file_name} "
        f"({spec.url})"
    )


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def skip_weight_init() -> Iterator[None]:
    """Make ``torch.nn.init`` functions no-ops while a model whose weights will all be loaded is built.

    Random initialisation of ViT-H alone takes ~10 s on a CPU; every persistent tensor is overwritten by
    ``load_state_dict(strict=True)`` right after, and buffers built from explicit values are unaffected.
    """
    import torch.nn.init as init

    saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
    try:
        for name in saved:
            setattr(init, name, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def load_model(model: str, checkpoint: str | os.PathLike | None = None, device: str = "cpu",
               random_seed: int | None = None, cache_root: str | os.PathLike | None = None,
               allow_unofficial: bool = False) -> tuple[Any, CheckpointInfo]:
    """Build ``model`` with the official weights (or random ones when ``random_seed`` is given) on ``device``.

    Returns the model in eval mode and a :class:`CheckpointInfo` whose ``sha256`` keys the proposal cache
    (``random-seed<N>`` for random weights). A file of the right architecture whose SHA-256 is not the official
    one is refused unless ``allow_unofficial`` (one's own fine-tuned weights).
    """
    import torch

    spec = get_spec(model)
    if random_seed is not None:
        torch.manual_seed(random_seed)
        net = spec.build()
        return net.to(device).eval(), CheckpointInfo(spec.name, None, f"random-seed{random_seed}", None)
    path = locate(spec.name, checkpoint)
    state = read_state_dict(path, spec)
    if spec.name in _LAYOUTS or _meta_buildable(spec):
        check_layout(spec, state, path)  # before the (possibly large) real build
        info = verify_checkpoint(spec, path, cache_root, allow_unofficial)
        with skip_weight_init():
            net = spec.build()
    else:
        with skip_weight_init():
            net = spec.build()
        check_layout(spec, state, path, net)
        info = verify_checkpoint(spec, path, cache_root, allow_unofficial)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval(), info


def checkpoint_identity(model: str, checkpoint: str | os.PathLike | None = None, random_seed: int | None = None,
                        cache_root: str | os.PathLike | None = None, allow_unofficial: bool = False) -> CheckpointInfo:
    """Return the weights' identity (file and hash) without building the model, for cache look-ups (a file that is
    not the official one is refused here already, unless ``allow_unofficial``)."""
    spec = get_spec(model)
    if random_seed is not None:
        return CheckpointInfo(spec.name, None, f"random-seed{random_seed}", None)
    return verify_checkpoint(spec, locate(spec.name, checkpoint), cache_root, allow_unofficial)


def save_random_checkpoint(model: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a randomly initialised ``model`` in the official file format (tests, smoke runs)."""
    import torch

    spec = get_spec(model)
    torch.manual_seed(seed)
    state = spec.build().state_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({spec.state_key: state} if spec.state_key else state, path)
    return path


def status_rows(verify: bool = False, cache_root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Return one row per model for ``defectbench sam checkpoints``: file, URL, size, hash and whether found."""
    from defectbench.downloads.files import status

    rows = []
    for spec in MODELS.values():
        if spec.url.startswith("(test"):
            continue
        st = status(sam_file(spec.name), verify, cache_root)
        rows.append({"model": spec.name, "title": spec.title, "file": spec.file_name, "url": spec.url,
                     "size": spec.size, "sha256": spec.sha256, "found": st["path"] is not None, "path": st["path"],
                     "status": st["status"]})
    return rows
