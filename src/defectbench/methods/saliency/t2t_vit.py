"""T2T-ViT-14 encoder (Yuan et al., ICCV 2021), the backbone of VST, with ImageNet weights from a local file.

Architecture as in the official code (github.com/yitu-opensource/T2T-ViT, ``models/t2t_vit.py``, and VST's copy
in github.com/nnizhang/VST, ``RGB_VST/Models``), written anew:

* tokens-to-token module: a soft split (``unfold`` 7 x 7, stride 4) to 1/4-resolution tokens, a token
  transformer (``"transformer"``, T2T-ViT_t) or token performer (``"performer"``, T2T-ViT) of width 64, a soft
  split (3 x 3, stride 2) to 1/8, a second token transformer/performer, a last soft split to 1/16 and a linear
  projection to 384 channels;
* a class token, the fixed sinusoidal position encoding and 14 ViT blocks (6 heads, MLP ratio 3, no qkv bias),
  then LayerNorm. The ImageNet classifier is left out (VST never uses it).

:meth:`T2TViT.forward` returns the 1/16 tokens (class token dropped) and the 1/8 and 1/4 tokens of the T2T module
(64 channels), which VST's decoder fuses. Any input whose sides are multiples of 16 works
(:func:`valid_input_size`); the position encoding, fixed and not learned, is computed for the input's token count
(at 224 x 224 it equals the 197-row table in the official weights file).

VST uses T2T-ViT_t-14 (``tokens_type="transformer"``), whose official weights are ``81.7_T2T_ViTt_14.pth.tar``
(VST's README calls the same model ``80.7_T2T_ViT_t_14.pth.tar``; both names are looked for). The performer
variant T2T-ViT-14 (``81.5_T2T_ViT_14.pth.tar``) is available too.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from defectbench.errors import CheckpointError, ConfigError
from defectbench.downloads.catalog import backbone
from defectbench.methods.saliency.backbones import _find_weights, load_exact

#: official ImageNet weights per token type (catalog entries; the first file name is the official one)
T2T_VIT_14_WEIGHTS = {"transformer": backbone("t2t_vit_t_14"), "performer": backbone("t2t_vit_14")}
T2T_VIT_14_FILES = {kind: entry.file_names for kind, entry in T2T_VIT_14_WEIGHTS.items()}
T2T_VIT_14_URLS = {kind: entry.url for kind, entry in T2T_VIT_14_WEIGHTS.items()}
#: total stride of the tokens-to-token module (soft splits of stride 4, 2, 2)
T2T_STRIDE = 16


def valid_input_size(size: int | tuple[int, int], model: str = "T2T-ViT") -> None:
    """Raise :class:`ConfigError` unless both sides of ``size`` are positive multiples of 16 (the token grid's stride)."""
    sides = (size, size) if isinstance(size, int) else tuple(size)
    if len(sides) != 2 or any(int(s) != s or s < T2T_STRIDE or s % T2T_STRIDE for s in sides):
        raise ConfigError(
            f"{model} cannot take input size {size}: its token grid needs sides that are multiples of {T2T_STRIDE} "
            f"(e.g. 224, its native size, 256, 352 or 384); set the training size to one of those"
        )


def sinusoid_encoding(n_position: int, dim: int) -> torch.Tensor:
    """The fixed ``1 x n_position x dim`` sine/cosine position table of T2T-ViT (angle ``pos / 10000^(2 (j // 2) / dim)``)."""
    pos = np.arange(n_position, dtype=np.float64)[:, None]
    rates = np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None, :]
    table = pos / rates
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()[None]


class Mlp(nn.Sequential):
    """Linear, GELU, Linear (``fc1``, ``act``, ``fc2``)."""

    def __init__(self, cin: int, hidden: int, cout: int):
        super().__init__()
        self.fc1 = nn.Linear(cin, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, cout)


class TokenAttention(nn.Module):
    """Single-head attention from ``dim`` to ``out_dim`` channels with the values as skip connection (T2T's)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.out_dim = out_dim
        self.scale = dim**-0.5  # the official code scales by the input width (num_heads=1)
        self.qkv = nn.Linear(dim, out_dim * 3, bias=False)
        self.proj = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``v + proj(softmax(q k^T * scale) v)``."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return v + self.proj(attn @ v)


class TokenTransformer(nn.Module):
    """T2T's token transformer: LN, :class:`TokenAttention` (``dim`` -> ``out_dim``), then a residual LN-MLP."""

    def __init__(self, dim: int, out_dim: int, mlp_ratio: float = 1.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TokenAttention(dim, out_dim)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = Mlp(out_dim, int(out_dim * mlp_ratio), out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x N x dim`` tokens in, ``B x N x out_dim`` tokens out."""
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokenPerformer(nn.Module):
    """T2T's token performer: linear attention with positive random features (fixed orthogonal ``w``), residual MLP.

    ``value_skip=True`` is T2T-ViT's version (the values are the skip connection, so widths may change);
    ``False`` is VST's decoder version (``x + attention(x)``, same width). ``w`` is a buffer (the official code
    holds it in a frozen parameter); dropout 0.1 after the attention projection and the MLP, as in the official code.
    """

    def __init__(self, dim: int, out_dim: int, kernel_ratio: float = 0.5, dropout: float = 0.1, value_skip: bool = True):
        super().__init__()
        if not value_skip and dim != out_dim:
            raise ValueError("a performer without value skip keeps the width (dim == out_dim)")
        self.emb, self.value_skip = out_dim, value_skip
        self.kqv = nn.Linear(dim, 3 * out_dim)
        self.dp = nn.Dropout(dropout)
        self.proj = nn.Linear(out_dim, out_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = nn.Sequential(nn.Linear(out_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim), nn.Dropout(dropout))
        self.m = int(out_dim * kernel_ratio)
        self.register_buffer("w", nn.init.orthogonal_(torch.empty(self.m, out_dim)) * math.sqrt(self.m))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Positive random features ``exp(w^T x - |x|^2 / 2) / sqrt(m)`` (float32)."""
        x = x.float()
        return torch.exp(x @ self.w.t() - x.square().sum(dim=-1, keepdim=True) / 2) / math.sqrt(self.m)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Linear (performer) single-head attention of ``B x N x dim`` tokens, projected (plus ``v`` if ``value_skip``)."""
        k, q, v = torch.split(self.kqv(x), self.emb, dim=-1)
        kp, qp = self._features(k), self._features(q)  # B x N x m
        denominator = qp @ kp.sum(dim=1).unsqueeze(-1)  # B x N x 1
        kptv = v.float().transpose(1, 2) @ kp  # B x emb x m
        y = self.dp(self.proj(((qp @ kptv.transpose(1, 2)) / (denominator + 1e-8)).to(x.dtype)))
        return v + y if self.value_skip else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention (value skip, or ``x +`` it), then ``+ mlp(LN x)``."""
        x = self.attention(self.norm1(x)) if self.value_skip else x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``B x (H W) x C`` row-major tokens to a ``B x C x H x W`` map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


class TokensToToken(nn.Module):
    """T2T module: soft splits (7/4, 3/2, 3/2) with two token transformers/performers between, then a projection."""

    def __init__(self, tokens_type: str = "transformer", in_chans: int = 3, embed_dim: int = 384, token_dim: int = 64):
        super().__init__()
        if tokens_type == "transformer":
            self.attention1 = TokenTransformer(in_chans * 7 * 7, token_dim)
            self.attention2 = TokenTransformer(token_dim * 3 * 3, token_dim)
        elif tokens_type == "performer":
            self.attention1 = TokenPerformer(in_chans * 7 * 7, token_dim)
            self.attention2 = TokenPerformer(token_dim * 3 * 3, token_dim)
        else:
            raise ValueError(f"tokens_type must be 'transformer' or 'performer', not {tokens_type!r}")
        self.project = nn.Linear(token_dim * 3 * 3, embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the 1/16 tokens (``embed_dim``), the 1/8 and the 1/4 tokens (``token_dim``)."""
        h, w = x.shape[2] // 4, x.shape[3] // 4
        x_1_4 = self.attention1(F.unfold(x, kernel_size=7, stride=4, padding=2).transpose(1, 2))
        x = F.unfold(_tokens_to_map(x_1_4, h, w), kernel_size=3, stride=2, padding=1).transpose(1, 2)
        x_1_8 = self.attention2(x)
        x = F.unfold(_tokens_to_map(x_1_8, h // 2, w // 2), kernel_size=3, stride=2, padding=1).transpose(1, 2)
        return self.project(x), x_1_8, x_1_4


def init_vit_weights(module: nn.Module) -> None:
    """T2T-ViT's initialisation: truncated-normal (std 0.02) Linear weights with zero bias, unit/zero LayerNorm."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class T2TViT(nn.Module):
    """T2T-ViT without classifier: T2T module, class token, sinusoidal positions, ViT blocks, final LayerNorm."""

    def __init__(self, tokens_type: str = "transformer", embed_dim: int = 384, depth: int = 14, num_heads: int = 6,
                 mlp_ratio: float = 3.0, token_dim: int = 64):
        super().__init__()
        self.embed_dim = embed_dim
        self.tokens_to_token = TokensToToken(tokens_type, embed_dim=embed_dim, token_dim=token_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=False) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self._positions: dict[int, torch.Tensor] = {}
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_vit_weights)

    def position_encoding(self, n_tokens: int, like: torch.Tensor) -> torch.Tensor:
        """The fixed sinusoidal table for ``n_tokens`` patches plus the class token (cached per token count)."""
        if n_tokens not in self._positions:
            self._positions[n_tokens] = sinusoid_encoding(n_tokens + 1, self.embed_dim)
        return self._positions[n_tokens].to(device=like.device, dtype=like.dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return tokens at 1/16 (``B x HW/256 x embed_dim``), 1/8 and 1/4 (``B x . x token_dim``), row-major."""
        valid_input_size(tuple(x.shape[2:]))
        x, x_1_8, x_1_4 = self.tokens_to_token(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.position_encoding(x.shape[1] - 1, x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1:], x_1_8, x_1_4


# ---------------------------------------------------------------------------------------------- ImageNet weights


def find_t2t_weights(tokens_type: str, weights_path: str | Path | None) -> Path:
    """Locate the official T2T-ViT-14 weights: ``weights_path``, else the official file in the checkpoints folder."""
    entry = T2T_VIT_14_WEIGHTS[tokens_type]
    variant = "T2T-ViT_t-14" if tokens_type == "transformer" else "T2T-ViT-14"
    return _find_weights(entry.file_name, weights_path, entry.url, variant)


def read_t2t_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a T2T-ViT release file (a timm training checkpoint): the EMA weights if present, else the weights."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # timm checkpoints store the training args
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means a bad file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}); the file is truncated or of another format") from None
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_t2t_weights(net: T2TViT, path: Path) -> None:
    """Load official T2T-ViT weights into ``net`` (classifier and fixed position table dropped), every shape checked."""
    state = {k: v for k, v in read_t2t_state_dict(path).items() if not k.startswith("head.") and k != "pos_embed"}
    load_exact(net, state, path, "a T2T-ViT-14 ImageNet state dict of this token type")


def build_t2t_vit_14(pretrained: bool = True, weights_path: str | Path | None = None,
                     tokens_type: str = "transformer") -> T2TViT:
    """Return T2T-ViT_t-14 (``"transformer"``, VST's) or T2T-ViT-14 (``"performer"``), ImageNet weights if ``pretrained``."""
    if tokens_type not in T2T_VIT_14_FILES:
        raise ValueError(f"tokens_type must be one of {sorted(T2T_VIT_14_FILES)}")
    net = T2TViT(tokens_type=tokens_type)
    if pretrained:
        load_t2t_weights(net, find_t2t_weights(tokens_type, weights_path))
    return net
