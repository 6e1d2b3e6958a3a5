"""Every promptable segmenter we run, by name: official file, download address, size, hash and builder.

One table (:data:`MODELS`) serves the loaders, the proposal cache keys and ``defectbench sam checkpoints``.
Builders construct the *official* architecture with random weights (the ``segment-anything`` builders for
SAM, the ``sam2`` package's hydra configs for SAM 2.1, :mod:`defectbench.methods.sam.mobilesam` for
MobileSAM); weights come only from :func:`defectbench.methods.sam.checkpoints.load_model`. Nothing here
downloads anything.

Sizes and SHA-256 digests are those of the files Meta / the MobileSAM authors publish (the SAM 2.1 values as
recorded, identically, by several independent projects that pin these downloads); a value we could not confirm
would be ``None``, and then only the key/shape check applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from defectbench.errors import DefectbenchError

SAM1_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
MOBILESAM_URL = "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/"


@dataclass(frozen=True)
class ModelSpec:
    """One model: its family (``sam``, ``sam2``, ``mobile_sam``), official checkpoint and random-weight builder.

    ``state_key`` names the entry of the checkpoint dictionary that holds the state dict (SAM 2.1 files are
    ``{"model": state_dict}``), ``None`` when the file is the state dict itself. ``amg_defaults`` are the
    published automatic-mask-generation settings of the family that differ from SAM's. ``params_m`` is the
    number of values in the state dict, in millions.
    """

    name: str
    family: str
    title: str
    file_name: str
    url: str
    size: int | None
    sha256: str | None
    params_m: float
    build: Callable[[], Any] = field(compare=False, repr=False)
    state_key: str | None = None
    amg_defaults: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def _sam1(variant: str) -> Callable[[], Any]:
    def build() -> Any:
        from segment_anything import sam_model_registry

        return sam_model_registry[variant]().eval()

    return build


def _sam21(config: str) -> Callable[[], Any]:
    def build() -> Any:
        from sam2.build_sam import build_sam2

        # apply_postprocessing=True is what SAM2AutomaticMaskGenerator.from_pretrained uses
        return build_sam2(config, ckpt_path=None, device="cpu", mode="eval", apply_postprocessing=True)

    return build


def _mobile_sam() -> Any:
    from defectbench.methods.sam.mobilesam import build_mobile_sam

    return build_mobile_sam().eval()


# SAM 2's published generator differs from SAM's only in its predicted-IoU threshold (0.8 instead of 0.88).
_SAM2_AMG = {"pred_iou_thresh": 0.8}

_SPECS = [
    ModelSpec("vit_b", "sam", "SAM ViT-B", "sam_vit_b_01ec64.pth", SAM1_URL + "sam_vit_b_01ec64.pth",
              375042383, "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", 93.74, _sam1("vit_b")),
    ModelSpec("vit_l", "sam", "SAM ViT-L", "sam_vit_l_0b3195.pth", SAM1_URL + "sam_vit_l_0b3195.pth",
              1249524607, "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622", 312.34, _sam1("vit_l")),
    ModelSpec("vit_h", "sam", "SAM ViT-H", "sam_vit_h_4b8939.pth", SAM1_URL + "sam_vit_h_4b8939.pth",
              2564550879, "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", 641.09, _sam1("vit_h"),
              aliases=("default",)),
    ModelSpec("sam2.1_hiera_t", "sam2", "SAM 2.1 Hiera-T", "sam2.1_hiera_tiny.pt", SAM21_URL + "sam2.1_hiera_tiny.pt",
              156008466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69", 38.96,
              _sam21("configs/sam2.1/sam2.1_hiera_t.yaml"), state_key="model",
              amg_defaults=_SAM2_AMG, aliases=("sam2.1_hiera_tiny",)),
    ModelSpec("sam2.1_hiera_s", "sam2", "SAM 2.1 Hiera-S", "sam2.1_hiera_small.pt", SAM21_URL + "sam2.1_hiera_small.pt",
              184416285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38", 46.06,
              _sam21("configs/sam2.1/sam2.1_hiera_s.yaml"), state_key="model",
              amg_defaults=_SAM2_AMG, aliases=("sam2.1_hiera_small",)),
    ModelSpec("sam2.1_hiera_b+", "sam2", "SAM 2.1 Hiera-B+", "sam2.1_hiera_base_plus.pt",
              SAM21_URL + "sam2.1_hiera_base_plus.pt", 323606802,
              "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5", 80.85,
              _sam21("configs/sam2.1/sam2.1_hiera_b+.yaml"), state_key="model",
              amg_defaults=_SAM2_AMG, aliases=("sam2.1_hiera_base_plus",)),
    ModelSpec("sam2.1_hiera_l", "sam2", "SAM 2.1 Hiera-L", "sam2.1_hiera_large.pt", SAM21_URL + "sam2.1_hiera_large.pt",
              898083611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318", 224.45,
              _sam21("configs/sam2.1/sam2.1_hiera_l.yaml"), state_key="model",
              amg_defaults=_SAM2_AMG, aliases=("sam2.1_hiera_large",)),
    ModelSpec("mobile_sam", "mobile_sam", "MobileSAM (TinyViT-5M)", "mobile_sam.pt", MOBILESAM_URL + "mobile_sam.pt",
              40728226, "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f", 10.14, _mobile_sam,
              aliases=("mobilesam", "vit_t")),
]

MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
_ALIASES: dict[str, str] = {a: s.name for s in _SPECS for a in s.aliases}


def add_sam_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (used for reduced test architectures); a taken name is an error."""
    if spec.name in MODELS or spec.name in _ALIASES:
        raise ValueError(f"SAM model {spec.name!r} registered twice")
    MODELS[spec.name] = spec
    return spec


def remove_sam_model(name: str) -> None:
    """Remove a model added with :func:`add_sam_model` (tests)."""
    MODELS.pop(name, None)


def list_models() -> list[str]:
    """Return the registered model names in table order."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    """Return the spec of a model name or alias; unknown names are a one-line error listing the choices."""
    key = _ALIASES.get(name, name)
    if key not in MODELS:
        raise DefectbenchError(f"unknown SAM model {name!r}; choose one of {', '.join(list_models())}")
    return MODELS[key]
