"""VST and ICON really learn: width/depth-reduced configurations of their code, two real SD-saliency-900 images.

Both use :func:`assert_learns` (Adam, the model's own loss, 64 x 64 inputs, from scratch). The reduced
configurations run every module of the full models: VST with a 2-block T2T-ViT of width 64 (token width 32),
one convertor and one task-token block; ICON-V with VGG-16-BN at 1/8 width and a 16-channel decoder.
"""

from __future__ import annotations

import torch

from defectbench.methods.saliency.icon import ICON, VGG16BNEncoder
from defectbench.methods.saliency.vst import VST
from tests.conftest import needs_sd900
from tests.methods.saliency.learning_checks import assert_learns


@needs_sd900
def test_reduced_vst_learns_on_real_images() -> None:
    torch.manual_seed(0)
    model = VST(pretrained=False, embed_dim=64, encoder_depth=2, num_heads=2, convertor_depth=1, decoder_depth=1,
                token_dim=32, mlp_ratio=2.0)
    model.model_name = "vst (reduced)"
    assert_learns(model, size=64, max_steps=40)


@needs_sd900
def test_reduced_icon_learns_on_real_images() -> None:
    torch.manual_seed(0)
    model = ICON(VGG16BNEncoder(pretrained=False, base_width=8), pretrained=False, width=16)
    model.model_name = "icon (reduced)"
    assert_learns(model, size=64, max_steps=30)
