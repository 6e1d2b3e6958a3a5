"""Per-model training recipes: the optimiser and schedule of each model's paper (defaults a config overrides).

* ``edrnet`` -- EDRNet (Song et al. 2020) trains like BASNet: Adam, lr 1e-3, no weight decay, constant lr.
* ``cpd`` -- CPD (Wu et al. 2019): Adam, lr 1e-4, x0.1 every 50 epochs, gradients clamped to [-0.5, 0.5].
* ``f3net`` -- F3Net (Wei et al. 2020): SGD, momentum 0.9, weight decay 5e-4, lr 0.05 for the decoder and
  0.005 for the backbone, triangular warm-up / linear decay over the whole run.
* ``litenet`` -- ours: AdamW, lr 1e-3, weight decay 1e-4, 2 warm-up epochs then cosine decay.
* the baselines of issues 10 and 11 (``cpd_vgg``, ``edn``, ``corrnet``, ``dacnet``, ``csepnet``, ``icon``, ``vst``,
  ``scrn``, ``minet``, ``gcpanet``, ``c2fnet``): their official training scripts, noted where ours differ.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "edrnet": dict(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant", warmup_epochs=0.0),
    "cpd": dict(optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="step", step_epochs=50, warmup_epochs=0.0,
                grad_clip_value=0.5),
    "f3net": dict(optimizer="sgd", lr=0.05, backbone_lr_mult=0.1, momentum=0.9, weight_decay=5e-4,
                  schedule="triangle", warmup_epochs=0.0),
    "litenet": dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_epochs=2.0),
    "cpd_vgg": dict(optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="step", step_epochs=50, warmup_epochs=0.0,
                    grad_clip_value=0.5),
    # EDN: Adam betas (0.9, 0.99) officially (ours 0.999); poly 0.9 per iteration after a 200-iteration warm-up
    "edn": dict(optimizer="adam", lr=5e-5, weight_decay=1e-4, schedule="poly", warmup_epochs=0.15, min_lr_ratio=0.0),
    "corrnet": dict(optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="step", step_epochs=30, warmup_epochs=0.0,
                    grad_clip_value=0.5),
    "dacnet": dict(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant", warmup_epochs=0.0),
    # CSEPNet: officially no weight decay on biases/BN and poly 0.9 stepped per epoch
    "csepnet": dict(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4, schedule="poly", warmup_epochs=0.0,
                    min_lr_ratio=0.0),
    # ICON-V: F3Net's triangle schedule, SGD (officially Nesterov; ours plain momentum), 60 epochs, batch 8, 352
    "icon": dict(optimizer="sgd", lr=0.05, backbone_lr_mult=0.1, momentum=0.9, weight_decay=2e-5, schedule="triangle",
                 warmup_epochs=0.0),
    # VST: Adam, x0.1 at 50 % and 75 % of 60k iterations officially; one step at 32 of ~63 epochs here
    "vst": dict(optimizer="adam", lr=1e-4, backbone_lr_mult=0.1, weight_decay=0.0, schedule="step", step_epochs=32,
                warmup_epochs=0.0),
    # SCRN: SGD lr 2e-3, x0.1 every 20 epochs (officially also multi-scale 0.75/1/1.25 per batch: not here)
    "scrn": dict(optimizer="sgd", lr=2e-3, momentum=0.9, weight_decay=5e-4, schedule="step", step_epochs=20,
                 warmup_epochs=0.0, aug_flip=False, aug_rot90=False, aug_crop_prob=0.0, aug_brightness=0.0,
                 aug_contrast=0.0),
    # MINet: SGD lr 1e-3, poly 0.9 (officially no decay on biases/BN and +-10 degree rotation: not here)
    "minet": dict(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4, schedule="poly", min_lr_ratio=0.0,
                  warmup_epochs=0.0, aug_flip=True, aug_rot90=False, aug_crop_prob=0.0, aug_brightness=0.1,
                  aug_contrast=0.1),
    # GCPANet: triangular lr 1e-3 -> 0.1 -> 1e-3, backbone x0.1 (officially Nesterov; 288 crops of 320 ~ scale 0.81)
    "gcpanet": dict(optimizer="sgd", lr=0.1, backbone_lr_mult=0.1, momentum=0.9, weight_decay=5e-4,
                    schedule="triangle", warmup_epochs=0.0, aug_flip=True, aug_rot90=False, aug_crop_prob=1.0,
                    aug_crop_scale=(0.81, 0.81), aug_brightness=0.0, aug_contrast=0.0),
    # C2FNet: AdaX officially (AdamW here), lr 1e-4, poly 0.9, gradients clamped to 0.5 (multi-scale: not here)
    "c2fnet": dict(optimizer="adamw", lr=1e-4, weight_decay=5e-4, schedule="poly", min_lr_ratio=0.0,
                   warmup_epochs=0.0, grad_clip_value=0.5, aug_flip=False, aug_rot90=False, aug_crop_prob=0.0,
                   aug_brightness=0.0, aug_contrast=0.0),
}


def recipe(model: str) -> dict[str, Any]:
    """Return the paper recipe of ``model`` (an empty dict for models without one)."""
    return dict(RECIPES.get(model, {}))
