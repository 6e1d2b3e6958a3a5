"""A SAM with the official classes at SAM's 1024 px input but tiny widths: fast enough for runner and speed tests."""

from __future__ import annotations

from functools import partial

import torch


def build_tiny_sam(decoder_depth: int = 1):
    """Return the tiny SAM in eval mode (random weights; ``decoder_depth`` two-way transformer blocks)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    dim = 32
    return Sam(
        image_encoder=ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=dim, depth=1, num_heads=2,
                                      out_chans=dim, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      window_size=14, use_rel_pos=True),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                     mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=dim,
                                 transformer=TwoWayTransformer(depth=decoder_depth, embedding_dim=dim, mlp_dim=64,
                                                               num_heads=2),
                                 iou_head_depth=1, iou_head_hidden_dim=16),
    ).eval()
