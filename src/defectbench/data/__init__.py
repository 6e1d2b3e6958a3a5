"""Datasets in their published layouts, deterministic splits, and image reading."""

from defectbench.data.dataset import Dataset
from defectbench.data.imageio import read_image, read_mask, to_gray, to_rgb
from defectbench.data.registry import list_datasets, load_dataset
from defectbench.data.sample import Sample

__all__ = ["Dataset", "Sample", "list_datasets", "load_dataset", "read_image", "read_mask", "to_gray", "to_rgb"]
