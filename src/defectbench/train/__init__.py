"""Training of saliency models: config, augmentation, the trainer with resume (the predictor and the checkpoint
format live with the models, in :mod:`defectbench.methods.saliency`)."""

from defectbench.train.config import TrainConfig
from defectbench.train.trainer import TrainResult, evaluate_model, train_model

__all__ = ["TrainConfig", "TrainResult", "evaluate_model", "train_model"]
