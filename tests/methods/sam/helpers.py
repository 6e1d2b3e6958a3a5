"""Helpers shared by the SAM tests: deterministic weights, reduced official architectures, GT-derived proposals."""

from __future__ import annotations

import zlib
from functools import partial

import numpy as np
import torch


def deterministic_state_dict(shapes: dict[str, list]) -> dict[str, torch.Tensor]:
    """Fill a ``{key: [shape, dtype]}`` layout with weights that depend only on the key (same on any machine).

    Norm scales and batch-norm variances sit around 1, other weights are scaled by 1/sqrt(fan-in), so that
    activations stay in a sensible range through deep random networks.
    """
    out = {}
    for key, (shape, dtype) in shapes.items():
        if dtype == "int64":
            out[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        t = torch.randn(shape, generator=g)
        if key.endswith("running_var"):
            t = 1.0 + 0.1 * t.abs()
        elif key.endswith("weight") and len(shape) == 1:
            t = 1.0 + 0.05 * t
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            t = t / max(1.0, fan_in) ** 0.5
        else:
            t = 0.05 * t
        out[key] = t.to(getattr(torch, dtype))
    return out


def reference_input() -> torch.Tensor:
    """The fixed ``1 x 3 x 1024 x 1024`` encoder input of the MobileSAM reference values."""
    return torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))


def sample_output(out: torch.Tensor) -> list[float]:
    """A strided sample of an encoder output, for comparing against stored reference values."""
    return [round(float(v), 6) for v in out[0, ::32, ::8, ::8].flatten()]


def tiny_sam(img_size: int = 128, embed_dim: int = 32, depth: int = 2, seed: int | None = 0, sharpen: float = 1.0,
             shrink: float = 0.0, decoder_dim: int = 256, decoder_depth: int = 2):
    """A reduced SAM with the official classes: small ViT encoder, official prompt encoder and mask decoder.

    By default the mask decoder keeps SAM's published widths (256 channels, 8 heads, 2048 MLP), so the fast
    decoder is exercised on the real decoder shapes; only the encoder and the input size are reduced. A smaller
    ``decoder_dim`` (and ``decoder_depth``) gives the fast model the runner and speed tests use at SAM's 1024 px. ``sharpen``
    scales the hypernetwork outputs so that random weights give large logits, i.e. stable, blob-like masks
    that pass SAM's stability filter (plain random weights give near-zero logits and noisy masks);
    ``shrink`` lowers the hypernetwork output bias, which makes masks smaller.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if seed is not None:
        torch.manual_seed(seed)
    emb = img_size // 16
    full = decoder_dim == 256
    model = Sam(
        image_encoder=ImageEncoderViT(
            depth=depth, embed_dim=embed_dim, img_size=img_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=[depth - 1], window_size=4 if full else 14, out_chans=decoder_dim,
        ),
        prompt_encoder=PromptEncoder(embed_dim=decoder_dim, image_embedding_size=(emb, emb),
                                     input_image_size=(img_size, img_size), mask_in_chans=16 if full else 4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=decoder_depth, embedding_dim=decoder_dim,
                                          mlp_dim=2048 if full else 2 * decoder_dim, num_heads=8 if full else 2),
            transformer_dim=decoder_dim, iou_head_depth=3 if full else 1, iou_head_hidden_dim=256 if full else 16,
        ),
    )
    if sharpen != 1.0 or shrink:
        with torch.no_grad():
            for mlp in model.mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(sharpen)
                mlp.layers[-1].bias.sub_(shrink)
            model.mask_decoder.iou_prediction_head.layers[-1].weight.mul_(sharpen)
    return model.eval()


def register_tiny(name: str = "test_tiny", img_size: int = 128, seed: int = 0, sharpen: float = 1.0,
                  shrink: float = 0.0):
    """Register :func:`tiny_sam` in the SAM registry under ``name`` (idempotent) and return its spec."""
    from defectbench.methods.sam import registry

    if name in registry.MODELS:
        return registry.MODELS[name]
    spec = registry.ModelSpec(
        name=name, family="sam", title=f"reduced SAM ({img_size}px) for tests", file_name=f"{name}.pth",
        url="(test model)", size=None, sha256=None, params_m=0.0,
        build=lambda: tiny_sam(img_size=img_size, seed=seed, sharpen=sharpen, shrink=shrink),
    )
    return registry.add_sam_model(spec)


def gt_derived_proposals(gt: np.ndarray, image: np.ndarray | None = None, seed: int = 0):
    """Proposals built from a ground-truth mask the way SAM's tend to look on defect images.

    Returns ``(masks, names)``: each connected defect component, the whole defect region dilated and
    eroded, the background (everything but the defects, which the oracle must negate to use), a few
    random blobs of texture, and an image-wide mask.
    """
    import cv2

    rng = np.random.default_rng(seed)
    h, w = gt.shape
    gt8 = gt.astype(np.uint8)
    masks, names = [], []
    n, labels = cv2.connectedComponents(gt8, connectivity=8)
    comps = sorted(range(1, n), key=lambda i: -(labels == i).sum())[:4]
    for i in comps:
        masks.append(labels == i)
        names.append(f"component{i}")
    k = np.ones((5, 5), np.uint8)
    if gt.any():
        masks.append(cv2.dilate(gt8, k) > 0)
        names.append("dilated")
        er = cv2.erode(gt8, k) > 0
        if er.any():
            masks.append(er)
            names.append("eroded")
    masks.append(~gt & (cv2.dilate(gt8, np.ones((3, 3), np.uint8)) == 0) if gt.any() else np.ones_like(gt))
    names.append("background")
    for j in range(3):
        yy, xx = np.ogrid[:h, :w]
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        r = rng.integers(max(3, min(h, w) // 20), max(4, min(h, w) // 6))
        masks.append((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        names.append(f"blob{j}")
    return np.stack(masks), names


def build_tiny_sam(decoder_depth: int = 1):
    """A SAM at SAM's 1024 px input with tiny widths everywhere (random weights): fast runner and speed tests."""
    return tiny_sam(img_size=1024, embed_dim=32, depth=1, seed=None, decoder_dim=32, decoder_depth=decoder_depth)


def vit_b_small_input(img_size: int = 256, sharpen: float = 1.0):
    """SAM ViT-B's official architecture (768 wide, 12 blocks, 12 heads, global attention in blocks 3/6/9/12, the
    published prompt encoder and mask decoder) at a small input size, random weights: cheap enough for CPU tests."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    emb = img_size // 16
    model = Sam(
        image_encoder=ImageEncoderViT(depth=12, embed_dim=768, img_size=img_size, mlp_ratio=4,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=12, patch_size=16,
                                      qkv_bias=True, use_rel_pos=True, global_attn_indexes=[2, 5, 8, 11],
                                      window_size=14, out_chans=256),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(emb, emb),
                                     input_image_size=(img_size, img_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                                 transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
    )
    if sharpen != 1.0:
        with torch.no_grad():
            for mlp in model.mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(sharpen)
    return model.eval()
