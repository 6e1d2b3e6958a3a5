"""SD-saliency-900 (strip steel; Song et al. 2020): ``Source Images/*.bmp`` + ``Ground truth/*.png``."""

from __future__ import annotations

from defectbench.data.dataset import Dataset
from defectbench.data.imageio import list_images
from defectbench.data.layout import locate, pair_masks
from defectbench.data.sample import Sample
from defectbench.data.splits import sd900_splits, stored_or_computed
from defectbench.errors import DataError

NAME = "sd900"
TITLE = "SD-saliency-900"
DIRNAMES = ("SD-saliency-900", "SD-saliency-900-master", "SD900")
CLASSES = ("In", "Pa", "Sc")
CLASS_NAMES = {"In": "inclusion", "Pa": "patch", "Sc": "scratch"}
HOW_TO_GET = "run `defectbench data fetch sd900` (from github.com/SongGuorong/MCITF) or pass --data-root"


def load(data_root=None) -> Dataset:
    """Load SD-saliency-900 from the first data root that holds it, with the 540/360 community split."""
    root = locate(DIRNAMES, TITLE, HOW_TO_GET, data_root)
    img_dir, gt_dir = root / "Source Images", root / "Ground truth"
    if not img_dir.is_dir():
        raise DataError(f"{root}: no 'Source Images' folder; the published layout is 'Source Images/*.bmp' + 'Ground truth/*.png'")
    images = list_images(img_dir)
    masks = pair_masks(images, gt_dir, TITLE)
    samples = []
    for p in images:
        cls = p.stem.split("_", 1)[0]
        if cls not in CLASSES:
            raise DataError(f"{p}: unexpected file name; SD-saliency-900 images are named In_N, Pa_N or Sc_N")
        samples.append(Sample(p.stem, p, masks[p.stem], cls))
    samples.sort(key=lambda s: (s.defect_class, int(s.id.split("_")[1])))
    splits = stored_or_computed(NAME, ("train", "test"), lambda: sd900_splits([s.id for s in samples]))
    return Dataset(NAME, TITLE, root, samples, CLASSES, splits)


def expected_splits(dataset: Dataset) -> dict[str, list[str]]:
    """Recompute the split files' content from the images on disk."""
    return sd900_splits([s.id for s in dataset.samples])
