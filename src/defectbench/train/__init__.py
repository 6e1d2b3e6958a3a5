"""Training and prediction of saliency models: config, augmentation, trainer with resume, checkpoints, predictor."""

from defectbench.train.checkpoint import load_trained, read_checkpoint, shipped_weights_path
from defectbench.train.config import TrainConfig
from defectbench.train.predict import SaliencyPredictor, predict_folder, predict_paths
from defectbench.train.trainer import TrainResult, evaluate_model, train_model

__all__ = ["SaliencyPredictor", "TrainConfig", "TrainResult", "evaluate_model", "load_trained", "predict_folder", "predict_paths",
           "read_checkpoint", "shipped_weights_path", "train_model"]
