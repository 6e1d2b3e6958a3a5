"""VST (Liu, Zhang, Wan, Shao & Han, ICCV 2021): Visual Saliency Transformer, RGB version.

Architecture as in the paper and its official code (github.com/nnizhang/VST, ``RGB_VST/Models``), written anew:

* encoder: T2T-ViT_t-14 (:mod:`defectbench.methods.saliency.t2t_vit`), tokens at 1/16 (384 channels) and the
  T2T module's 1/8 and 1/4 tokens (64 channels);
* convertor: 4 transformer blocks on the 1/16 tokens;
* decoder: a saliency token and a contour (boundary) token join the 1/16 patch tokens in 4 transformer blocks;
  "token inference" (sigmoid attention of every patch token to a task token) gives saliency and contour
  features; reverse T2T (a linear projection then ``fold``) upsamples the patch tokens 1/16 -> 1/8 -> 1/4, each
  step fused with the encoder's tokens of that scale (MLP + token performer) and followed by 2 single-head
  transformer blocks with the task tokens; the 1/4 saliency and contour features are folded to full resolution.
  Linear heads predict saliency and contour maps at 1/16, 1/8, 1/4 and 1/1.

Train mode returns ``[s_1, s_1/4, s_1/8, s_1/16, c_1, c_1/4, c_1/8, c_1/16]`` (saliency then contour logits, the
coarse ones bilinear to input size); eval mode returns ``s_1``, the map VST's test script saves. Default loss
``"vst"``: BCE on every saliency map against the mask and on every contour map against the mask's edges, scale
weights ``(1, 0.8, 0.5, 0.5)``. The official code resizes the labels to each map's scale instead, and reads
contour labels from files made in advance (EGNet's); we derive them from the mask (:func:`~losses.mask_edges`).

Input sides must be multiples of 16 (:func:`valid_input_size`); VST's native size is 224. The official model
is fixed to one square size set at construction; ours takes any valid size, square or not (the fold sizes
follow the input).

Parameters: the official ``ImageDepthNet`` counts 44,555,606 (Table 7 of the defect paper: 44.6 M). Ours holds
44,090,862 trainable parameters: we leave out T2T-ViT's ImageNet classifier (385,000, never used by VST) and
hold as buffers what the official code keeps in frozen parameters, the fixed position table (75,648, computed
per input size here) and the performers' random features (2 x 32 x 64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from defectbench.methods.saliency.registry import register_model
from defectbench.methods.saliency.t2t_vit import (
    T2TViT,
    TokenPerformer,
    build_t2t_vit_14,
    init_vit_weights,
)
from defectbench.methods.saliency.t2t_vit import (
    valid_input_size as _t2t_valid_input_size,
)


def valid_input_size(size: int | tuple[int, int]) -> None:
    """Raise :class:`~defectbench.errors.ConfigError` unless VST can take ``size`` (sides multiples of 16)."""
    _t2t_valid_input_size(size, model="VST")


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.GELU(), nn.Linear(hidden, cout))


def _to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``B x (H W) x C`` row-major tokens to ``B x C x H x W``."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


class TransformerStack(nn.Module):
    """``depth`` ViT blocks (no qkv bias) then LayerNorm, T2T-ViT initialisation.

    The norm is named ``norm_name`` so that the official VST checkpoints' keys load unchanged.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float, norm_name: str = "norm"):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=False) for _ in range(depth)])
        self.norm_name = norm_name
        setattr(self, norm_name, nn.LayerNorm(dim))
        self.apply(init_vit_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blocks then the final norm."""
        for block in self.blocks:
            x = block(x)
        return getattr(self, self.norm_name)(x)


class Convertor(nn.Module):
    """VST's convertor: a transformer stack on the encoder's 1/16 tokens."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.encoderlayer = TransformerStack(dim, depth, num_heads, mlp_ratio, norm_name="rgb_norm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x N x dim`` tokens, refined."""
        return self.encoderlayer(x)


class TokenInference(nn.Module):
    """VST's token inference: patch tokens attend (sigmoid, one head) to one task token; residual on the patches.

    ``fea`` is ``[saliency token, patch tokens..., contour token]``; ``token_index`` 0 reads the saliency token,
    -1 the contour token. Returns the ``B x N x C`` patch features.
    """

    def __init__(self, dim: int, token_index: int):
        super().__init__()
        self.token_index = token_index
        self.scale = dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, fea: torch.Tensor) -> torch.Tensor:
        """``patches + proj(sigmoid(q(patches) k(token)^T * scale) v(token))``."""
        x = self.norm(fea)
        token, patches = x[:, self.token_index : self.token_index + 1 or None], x[:, 1:-1]
        attn = torch.sigmoid(self.q(patches) @ self.k(token).transpose(1, 2) * self.scale)  # B x N x 1
        return self.proj(attn @ self.v(token)) + fea[:, 1:-1]


class TaskTokens(nn.Module):
    """The decoder's first stage: saliency and contour tokens join the 1/16 patch tokens in a transformer."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp_s = _mlp(dim, dim, dim)
        self.saliency_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.contour_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoderlayer = TransformerStack(dim, depth, num_heads, mlp_ratio)
        self.saliency_token_pre = TokenInference(dim, 0)
        self.contour_token_pre = TokenInference(dim, -1)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return saliency features, all tokens, the saliency token, contour features, the contour token."""
        b = tokens.shape[0]
        fea = torch.cat([self.saliency_token.expand(b, -1, -1), self.mlp_s(self.norm(tokens)),
                         self.contour_token.expand(b, -1, -1)], dim=1)
        fea = self.encoderlayer(fea)
        return self.saliency_token_pre(fea), fea, fea[:, :1], self.contour_token_pre(fea), fea[:, -1:]


class TokenPrediction(nn.Module):
    """VST's ``token_trans``: 64-channel patch tokens to ``dim``, with the task tokens through 2 one-head blocks.

    Returns the saliency and contour features (back to 64 channels), all tokens, and both task tokens.
    """

    def __init__(self, in_dim: int, dim: int, depth: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.mlp = _mlp(in_dim, dim, dim)
        self.encoderlayer = TransformerStack(dim, depth, 1, mlp_ratio)
        self.saliency_token_pre = TokenInference(dim, 0)
        self.contour_token_pre = TokenInference(dim, -1)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp2 = _mlp(dim, in_dim, in_dim)
        self.norm2_c = nn.LayerNorm(dim)
        self.mlp2_c = _mlp(dim, in_dim, in_dim)

    def forward(self, fea: torch.Tensor, saliency_token: torch.Tensor, contour_token: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One scale of token-based multi-task prediction."""
        fea = self.encoderlayer(torch.cat([saliency_token, self.mlp(self.norm(fea)), contour_token], dim=1))
        saliency = self.mlp2(self.norm2(self.saliency_token_pre(fea)))
        contour = self.mlp2_c(self.norm2_c(self.contour_token_pre(fea)))
        return saliency, contour, fea, fea[:, :1], fea[:, -1:]


class ReverseT2T(nn.Module):
    """Token upsampling by reverse T2T (linear projection, ``fold``), optionally fused with encoder tokens.

    ``fold`` sums the overlapping ``k x k`` patches into a map ``stride`` times larger than the token grid.
    """

    def __init__(self, dim: int, token_dim: int, kernel: int, stride: int, padding: int, fuse: bool):
        super().__init__()
        self.kernel, self.stride, self.padding, self.fuse = kernel, stride, padding, fuse
        self.project = nn.Linear(token_dim, token_dim * kernel * kernel)
        if fuse:
            self.concatFuse = _mlp(token_dim * 2, token_dim, token_dim)
            self.att = TokenPerformer(token_dim, token_dim, value_skip=False)
            self.norm = nn.LayerNorm(dim)
            self.mlp = _mlp(dim, token_dim, token_dim)

    def forward(self, dec: torch.Tensor, grid: tuple[int, int], enc: torch.Tensor | None = None) -> torch.Tensor:
        """Upsample ``B x (h w) x C`` tokens on the ``grid`` (h, w) by ``stride``; fuse ``enc`` of the new scale."""
        if self.fuse:
            dec = self.mlp(self.norm(dec))
        size = (grid[0] * self.stride, grid[1] * self.stride)
        up = F.fold(self.project(dec).transpose(1, 2), size, kernel_size=self.kernel, stride=self.stride, padding=self.padding)
        dec = up.flatten(2).transpose(1, 2)
        if self.fuse:
            dec = self.att(self.concatFuse(torch.cat([dec, enc], dim=2)))
        return dec


def _xavier_init(module: nn.Module) -> None:
    """VST's decoder initialisation: Xavier-uniform Linear weights with zero bias."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Decoder(nn.Module):
    """VST's RGB decoder after the task-token stage: 1/16 heads, two reverse-T2T + token-prediction scales, 1/1."""

    def __init__(self, dim: int = 384, token_dim: int = 64, depth: int = 2, mlp_ratio: float = 3.0):
        super().__init__()
        self.norm, self.mlp = nn.LayerNorm(dim), _mlp(dim, dim, token_dim)
        self.norm_c, self.mlp_c = nn.LayerNorm(dim), _mlp(dim, dim, token_dim)
        self.decoder1 = ReverseT2T(dim, token_dim, 3, 2, 1, fuse=True)
        self.decoder2 = ReverseT2T(dim, token_dim, 3, 2, 1, fuse=True)
        self.decoder3 = ReverseT2T(dim, token_dim, 7, 4, 2, fuse=False)
        self.decoder3_c = ReverseT2T(dim, token_dim, 7, 4, 2, fuse=False)
        self.token_pre_1_8 = TokenPrediction(token_dim, dim, depth, mlp_ratio)
        self.token_pre_1_4 = TokenPrediction(token_dim, dim, depth, mlp_ratio)
        for name in ("pre_1_16", "pre_1_8", "pre_1_4", "pre_1_1", "pre_1_16_c", "pre_1_8_c", "pre_1_4_c", "pre_1_1_c"):
            setattr(self, name, nn.Linear(token_dim, 1))
        self.apply(_xavier_init)

    def forward(self, saliency_16: torch.Tensor, tokens_16: torch.Tensor, saliency_token: torch.Tensor,
                contour_16: torch.Tensor, contour_token: torch.Tensor, enc_8: torch.Tensor, enc_4: torch.Tensor,
                grid: tuple[int, int], with_contour: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Saliency and contour logit maps ``[1/16, 1/8, 1/4, 1/1]`` (contour list empty if not ``with_contour``)."""
        h, w = grid
        masks = [_to_map(self.pre_1_16(self.mlp(self.norm(saliency_16))), h, w)]
        contours = [_to_map(self.pre_1_16_c(self.mlp_c(self.norm_c(contour_16))), h, w)] if with_contour else []

        fea_8 = self.decoder1(tokens_16[:, 1:-1], (h, w), enc_8)
        sal_8, con_8, tokens_8, saliency_token, contour_token = self.token_pre_1_8(fea_8, saliency_token, contour_token)
        masks.append(_to_map(self.pre_1_8(sal_8), 2 * h, 2 * w))
        fea_4 = self.decoder2(tokens_8[:, 1:-1], (2 * h, 2 * w), enc_4)
        sal_4, con_4, _, _, _ = self.token_pre_1_4(fea_4, saliency_token, contour_token)
        masks.append(_to_map(self.pre_1_4(sal_4), 4 * h, 4 * w))
        masks.append(_to_map(self.pre_1_1(self.decoder3(sal_4, (4 * h, 4 * w))), 16 * h, 16 * w))
        if with_contour:
            contours.append(_to_map(self.pre_1_8_c(con_8), 2 * h, 2 * w))
            contours.append(_to_map(self.pre_1_4_c(con_4), 4 * h, 4 * w))
            contours.append(_to_map(self.pre_1_1_c(self.decoder3_c(con_4, (4 * h, 4 * w))), 16 * h, 16 * w))
        return masks, contours


class VST(nn.Module):
    """VST for RGB saliency: T2T-ViT encoder, transformer convertor, token-based multi-task decoder.

    ``embed_dim``, ``encoder_depth``, ``num_heads``, ``convertor_depth``, ``decoder_depth`` and ``token_dim``
    give width/depth-reduced configurations of the same code (for tests); the defaults are VST's, and ImageNet
    weights exist only for them.
    """

    default_loss = "vst"

    def __init__(self, pretrained: bool = True, backbone_weights: str | None = None, embed_dim: int = 384,
                 encoder_depth: int = 14, num_heads: int = 6, convertor_depth: int = 4, decoder_depth: int = 4,
                 token_dim: int = 64, mlp_ratio: float = 3.0):
        super().__init__()
        if (embed_dim, encoder_depth, num_heads, token_dim, mlp_ratio) == (384, 14, 6, 64, 3.0):
            self.rgb_backbone = build_t2t_vit_14(pretrained, backbone_weights, tokens_type="transformer")
        elif pretrained:
            raise ValueError("ImageNet weights exist only for VST's own T2T-ViT_t-14 (pass pretrained=False)")
        else:
            self.rgb_backbone = T2TViT("transformer", embed_dim, encoder_depth, num_heads, mlp_ratio, token_dim)
        self.transformer = Convertor(embed_dim, convertor_depth, num_heads, mlp_ratio)
        self.token_trans = TaskTokens(embed_dim, decoder_depth, num_heads, mlp_ratio)
        self.decoder = Decoder(embed_dim, token_dim, depth=2, mlp_ratio=mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Train: ``[s_1, s_4, s_8, s_16, c_1, c_4, c_8, c_16]`` logits at input size; eval: ``s_1``."""
        size = x.shape[2:]
        grid = (size[0] // 16, size[1] // 16)
        tokens_16, enc_8, enc_4 = self.rgb_backbone(x)
        saliency_16, all_16, saliency_token, contour_16, contour_token = self.token_trans(self.transformer(tokens_16))
        masks, contours = self.decoder(saliency_16, all_16, saliency_token, contour_16, contour_token, enc_8, enc_4,
                                       grid, with_contour=self.training)
        if not self.training:
            return masks[-1]
        ordered = [masks[3], masks[2], masks[1], masks[0], contours[3], contours[2], contours[1], contours[0]]
        return [o if o.shape[2:] == size else F.interpolate(o, size=size, mode="bilinear", align_corners=False)
                for o in ordered]


@register_model("vst")
def vst(pretrained: bool = True, backbone_weights: str | None = None) -> VST:
    """VST with a T2T-ViT_t-14 encoder (Liu et al., ICCV 2021); input sides multiples of 16 (native 224)."""
    return VST(pretrained=pretrained, backbone_weights=backbone_weights)


vst.valid_input_size = valid_input_size  # type: ignore[attr-defined]  # checked by the trainer before building data
