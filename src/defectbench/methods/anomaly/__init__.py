"""Methods fitted on defect-free images only (the anomaly-detection regime): PatchCore and PaDiM on a frozen
ImageNet backbone, with a score-to-map rule fitted on held-out defect-free images."""

from defectbench.methods.anomaly.calibration import ScoreToMap, min_images
from defectbench.methods.anomaly.method import KINDS, AnomalyMethod, AnomalySpec, build_model, fit_anomaly

__all__ = ["KINDS", "AnomalyMethod", "AnomalySpec", "ScoreToMap", "build_model", "fit_anomaly", "min_images"]
