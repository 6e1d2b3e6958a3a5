"""SAM's mask decoder, re-associated for many single-point prompts on one image (same outputs, less work).

``segment_anything``'s ``MaskDecoder`` copies the ``64 x 64 x 256`` image embedding once per prompt and runs
every projection on it. For the automatic generator's 1024 single-point prompts per image that is where the
time goes. The decoder is linear almost everywhere, so the same numbers come out of a different bracketing:

* layer 1 reads the image embedding unchanged: its image-side key, value and query projections are the
  same for every prompt and are computed once per image (:meth:`FastSamDecoder.prepare`);
* token-to-image attention has only 7 queries: ``softmax(Q (X W_k)^T)`` is computed as
  ``softmax((Q W_k) X^T)`` (the key bias adds a per-query constant that softmax ignores) and
  ``softmax(.) (X W_v^T + b_v)`` as ``(softmax(.) X) W_v^T + b_v`` (softmax rows sum to one), so no
  ``N x 128`` projection of the per-prompt image tokens is formed;
* image-to-token attention has only 7 keys: the query projection is folded into the keys
  (``(X W_q^T + b_q) K^T = X (K W_q)^T + b_q K^T``) and the output projection into the values
  (``A V W_o^T = A (V W_o^T)``), i.e. rank-56 products instead of ``N x 256 x 128`` ones;
* the first transposed convolution of the upscaler is linear in the final image tokens, which are two
  layer norms of "image embedding + two rank-56 updates"; written out over the layer-norm statistics it
  is one product of the image embedding with the convolution weights (once per image) plus two rank-57
  products per prompt, instead of an ``N x 256 x 256`` product per prompt (:meth:`FastSamDecoder.upscale`);
* only the 3 multimask outputs are upscaled, only for prompts that pass the predicted-IoU filter, and only
  over the low-resolution rows and columns that the image (not SAM's padding) uses: the transposed
  convolutions have stride = kernel, so each output pixel depends on one embedding position.

The arithmetic differs from the official bracketing only by float rounding; the test suite compares both on
the official decoder weights layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class ImageContext:
    """Per-image quantities shared by all prompts (``N = h * w`` embedding positions)."""

    src: torch.Tensor  # 1 x N x C   image embedding + no-mask embedding
    pe: torch.Tensor  # 1 x N x C   dense positional encoding
    k0t: torch.Tensor  # H x d x N  layer-1 token-to-image keys (transposed)
    v0: torch.Tensor  # H x N x d   layer-1 token-to-image values
    qi0t: torch.Tensor  # H x d x N  layer-1 image-to-token queries (transposed)
    hw: tuple[int, int]
    up: _UpscaleConsts


@dataclass
class DecodedPrompts:
    """The decoder's outputs for a batch of ``B`` prompts, before mask upscaling.

    Besides the predicted IoU and hypernetwork weights it keeps the rank-``H*T`` image updates of both
    image-to-token attentions and the layer-norm statistics, from which the first transposed convolution
    of the upscaler is assembled without a full ``N x 256 x 256`` product per prompt.
    """

    iou: torch.Tensor  # B x 3 predicted IoU of the multimask outputs
    hyper: torch.Tensor  # B x 3 x C/8 hypernetwork weights of the multimask outputs
    a1: torch.Tensor  # B x (HT+1) x N   layer-1 image-to-token attention (update = a1[:, :HT]^T @ r1), then -mean1
    r1: torch.Tensor  # B x HT x C
    rstd1: torch.Tensor  # B x N          1/std of layer-1 norm4 input
    a2: torch.Tensor  # B x (HT+3) x N   the same for layer 2, then -mean2, then ones, then std2
    r2: torch.Tensor
    rstd2: torch.Tensor

    def __len__(self) -> int:
        return self.iou.shape[0]


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    """``B x T x (h*d)`` -> ``B x h x T x d``."""
    b, t, c = x.shape
    return x.view(b, t, h, c // h).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """``B x h x T x d`` -> ``B x T x (h*d)``."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class FastSamDecoder:
    """Decode single positive point prompts with a ``segment_anything`` ``Sam`` (SAM or MobileSAM) model."""

    def __init__(self, sam: nn.Module) -> None:
        self.sam = sam
        self.pe_enc = sam.prompt_encoder
        self.dec = sam.mask_decoder
        self.tr = self.dec.transformer
        if len(self.tr.layers) != 2 or not self.tr.layers[0].skip_first_layer_pe:
            raise ValueError("fast decoder expects SAM's two-layer two-way transformer")

    @torch.no_grad()
    def prepare(self, features: torch.Tensor) -> ImageContext:
        """Precompute the prompt-independent quantities of one image embedding (``1 x C x h x w``)."""
        _, c, h, w = features.shape
        dense = self.pe_enc.no_mask_embed.weight.reshape(1, c, 1, 1)
        src = (features + dense).flatten(2).transpose(1, 2).contiguous()  # 1 x N x C
        pe = self.pe_enc.get_dense_pe().flatten(2).transpose(1, 2).to(src).contiguous()
        layer = self.tr.layers[0]
        t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        k0 = _heads(t2i.k_proj(src + pe), t2i.num_heads)[0]  # H x N x d
        v0 = _heads(t2i.v_proj(src), t2i.num_heads)[0]
        qi0 = _heads(i2t.q_proj(src + pe), i2t.num_heads)[0]  # H x N x d
        # the first transposed convolution, distributed over the two norm4 layers (see DecodedPrompts)
        conv = self.dec.output_upscaling[0]
        wc = conv.weight.permute(0, 2, 3, 1).reshape(c, -1)  # C x 4*C/4, column = (ky*2+kx)*C/4 + out
        g1, b1 = self.tr.layers[0].norm4.weight, self.tr.layers[0].norm4.bias
        g2, b2 = self.tr.layers[1].norm4.weight, self.tr.layers[1].norm4.bias
        g12 = (g1 * g2)[:, None] * wc
        g2w = g2[:, None] * wc
        up = _UpscaleConsts(
            s=(src[0] @ g12).view(h, w, -1), g12=g12, g2=g2w, c1=g12.sum(0), e1=b1 @ g2w, c2=g2w.sum(0),
            e2=b2 @ wc + conv.bias.repeat(4),
        )
        return ImageContext(src, pe, k0.transpose(1, 2).contiguous(), v0.contiguous(),
                            qi0.transpose(1, 2).contiguous(), (h, w), up)

    def _tokens(self, coords: torch.Tensor) -> torch.Tensor:
        """Prompt tokens (IoU token, 4 mask tokens, point, padding point) for ``B x 2`` input-frame points."""
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int, device=coords.device)
        sparse, _ = self.pe_enc(points=(coords[:, None, :], labels), boxes=None, masks=None)
        out = torch.cat([self.dec.iou_token.weight, self.dec.mask_tokens.weight], dim=0)
        return torch.cat([out.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse], dim=1)

    @staticmethod
    def _t2i_first(a: nn.Module, q_in: torch.Tensor, ctx: ImageContext) -> torch.Tensor:
        """Token-to-image attention of layer 1 (image keys/values shared by all prompts: one GEMM per head)."""
        nh = a.num_heads
        b, t, _ = q_in.shape
        q = a.q_proj(q_in).view(b * t, nh, -1).transpose(0, 1)  # H x BT x d
        q = q / math.sqrt(q.shape[-1])
        attn = torch.softmax(q @ ctx.k0t, dim=-1)  # H x BT x N
        out = (attn @ ctx.v0).transpose(0, 1).reshape(b, t, -1)  # B x T x (H*d)
        return a.out_proj(out)

    @staticmethod
    def _t2i(a: nn.Module, q_in: torch.Tensor, keys: torch.Tensor, keys_pe: torch.Tensor) -> torch.Tensor:
        """Token-to-image attention with projections folded into the 7 queries (see the module docstring)."""
        nh = a.num_heads
        q = _heads(a.q_proj(q_in), nh)  # B x H x T x d
        b, _, t, d = q.shape
        c = keys.shape[-1]
        wk = a.k_proj.weight.view(nh, d, c) / math.sqrt(d)
        qk = torch.einsum("bhtd,hdc->bhtc", q, wk).reshape(b, nh * t, c)
        attn = torch.softmax(qk @ keys_pe.transpose(1, 2), dim=-1)  # B x HT x N
        pooled = (attn @ keys).view(b, nh, t, c)
        wv = a.v_proj.weight.view(nh, d, c)
        out = torch.einsum("bhtc,hdc->bhtd", pooled, wv) + a.v_proj.bias.view(1, nh, 1, d)
        return a.out_proj(_merge(out))

    @staticmethod
    def _i2t(a: nn.Module, image_q: torch.Tensor | None, k_in: torch.Tensor, v_in: torch.Tensor,
             extra_rows: int, shared_qt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-to-token attention as a rank-H*T update ``attn[:, :HT]^T @ r``.

        Returns ``attn`` (``B x (HT + extra_rows) x N``, softmax over each head's T tokens; the extra rows
        are left for the caller) and ``r`` (``B x HT x C``). ``shared_qt`` (``H x d x N``) are precomputed
        query projections (layer 1); otherwise the query projection of ``image_q`` (``B x N x C``) is folded
        into the keys. The output bias is folded into ``r`` (each head's attention sums to one, so the
        columns of ``attn`` sum to H).
        """
        nh = a.num_heads
        k = _heads(a.k_proj(k_in), nh)  # B x H x T x d
        v = _heads(a.v_proj(v_in), nh)
        b, _, t, d = k.shape
        c = a.out_proj.weight.shape[0]
        k = k / math.sqrt(d)
        n = image_q.shape[1] if image_q is not None else shared_qt.shape[-1]
        attn = k.new_empty(b, nh * t + extra_rows, n)
        if shared_qt is not None:  # one GEMM per head over all prompts, softmax over T, then B-major layout
            logits = k.transpose(0, 1).reshape(nh, b * t, d) @ shared_qt  # H x BT x N
            probs = torch.softmax(logits.view(nh, b, t, n), dim=2)
            attn[:, : nh * t].view(b, nh, t, n).copy_(probs.transpose(0, 1))
        else:
            wq = a.q_proj.weight.view(nh, d, -1)
            m = torch.einsum("bhtd,hdc->bhtc", k, wq).reshape(b, nh * t, -1)
            bias = torch.einsum("bhtd,hd->bht", k, a.q_proj.bias.view(nh, d)).reshape(b, nh * t, 1)
            logits = torch.baddbmm(bias, m, image_q.transpose(1, 2)).view(b, nh, t, n)
            attn[:, : nh * t] = torch.softmax(logits, dim=2).view(b, nh * t, n)
        wo = a.out_proj.weight.view(c, nh, d)
        r = torch.einsum("bhtd,chd->bhtc", v, wo).reshape(b, nh * t, c) + a.out_proj.bias / nh
        return attn, r

    @torch.no_grad()
    def decode(self, ctx: ImageContext, coords: torch.Tensor) -> DecodedPrompts:
        """Run the two-way transformer and the heads for ``B x 2`` point prompts in the model's input frame."""
        tok = self._tokens(coords)
        tr = self.tr
        l0, l1 = tr.layers
        b = tok.shape[0]
        # layer 1: the image side is the same for all prompts
        q = l0.norm1(l0.self_attn(q=tok, k=tok, v=tok))
        q = l0.norm2(q + self._t2i_first(l0.cross_attn_token_to_image, q + tok, ctx))
        q = l0.norm3(q + l0.mlp(q))
        a1, r1 = self._i2t(l0.cross_attn_image_to_token, None, q + tok, q, 1, shared_qt=ctx.qi0t)
        ht = r1.shape[1]
        x = torch.baddbmm(ctx.src.expand(b, -1, -1), a1[:, :ht].transpose(1, 2), r1)
        n4 = l0.norm4
        keys, mu1, rstd1 = torch.native_layer_norm(x, (x.shape[-1],), n4.weight, n4.bias, n4.eps)
        torch.neg(mu1[..., 0], out=a1[:, ht])
        # layer 2
        qp = q + tok
        q = l1.norm1(q + l1.self_attn(q=qp, k=qp, v=q))
        keys_pe = keys + ctx.pe
        q = l1.norm2(q + self._t2i(l1.cross_attn_token_to_image, q + tok, keys, keys_pe))
        q = l1.norm3(q + l1.mlp(q))
        a2, r2 = self._i2t(l1.cross_attn_image_to_token, keys_pe, q + tok, q, 3)
        del keys_pe
        x = torch.baddbmm(keys, a2[:, :ht].transpose(1, 2), r2)
        n4 = l1.norm4
        keys, mu2, rstd2 = torch.native_layer_norm(x, (x.shape[-1],), n4.weight, n4.bias, n4.eps)
        del x
        torch.neg(mu2[..., 0], out=a2[:, ht])
        a2[:, ht + 1] = 1.0
        torch.reciprocal(rstd2[..., 0], out=a2[:, ht + 2])
        q = tr.norm_final_attn(q + self._t2i(tr.final_attn_token_to_image, q + tok, keys, keys + ctx.pe))
        iou = self.dec.iou_prediction_head(q[:, 0])[:, 1:]
        mask_tokens = q[:, 1:1 + self.dec.num_mask_tokens]
        hyper = torch.stack([self.dec.output_hypernetworks_mlps[j](mask_tokens[:, j])
                             for j in range(1, self.dec.num_mask_tokens)], dim=1)
        return DecodedPrompts(iou, hyper, a1, r1, rstd1[..., 0], a2, r2, rstd2[..., 0])

    @torch.no_grad()
    def upscale(self, ctx: ImageContext, dp: DecodedPrompts, idx: torch.Tensor | None = None,
                rows: int | None = None, cols: int | None = None) -> torch.Tensor:
        """Low-resolution logits ``M x 3 x rows x cols`` (at most ``4h x 4w``) of the decoded prompts ``idx``.

        Only the first ``rows`` / ``cols`` low-resolution pixels are computed (the transposed convolutions
        have stride = kernel, so a low-resolution pixel depends on one embedding position only).
        """
        h, w = ctx.hw
        rows = 4 * h if rows is None else rows
        cols = 4 * w if cols is None else cols
        hr, wr = -(-rows // 4), -(-cols // 4)
        u = ctx.up

        def pick(t: torch.Tensor) -> torch.Tensor:
            t = t if idx is None else t[idx]
            if hr == h and wr == w:
                return t
            return t.reshape(t.shape[0], -1, h, w)[:, :, :hr, :wr].reshape(t.shape[0], -1, hr * wr)

        a1, a2 = pick(dp.a1), pick(dp.a2)
        rstd1, rstd2 = pick(dp.rstd1[:, None])[:, 0], pick(dp.rstd2[:, None])[:, 0]
        r1, r2, hyper = (dp.r1, dp.r2, dp.hyper) if idx is None else (dp.r1[idx], dp.r2[idx], dp.hyper[idx])
        m = a1.shape[0]
        s = u.s[:hr, :wr].reshape(1, hr * wr, -1).expand(m, -1, -1)
        q1 = torch.cat([r1 @ u.g12, u.c1.expand(m, 1, -1)], dim=1)
        y = torch.baddbmm(s, a1.transpose(1, 2), q1)
        y.mul_(rstd1[..., None])
        # rows of a2: attention, -mean2, 1, std2 (the last carries e2, which is not scaled by rstd2)
        q2 = torch.cat([r2 @ u.g2, u.c2.expand(m, 1, -1), u.e1.expand(m, 1, -1), u.e2.expand(m, 1, -1)], dim=1)
        y.baddbmm_(a2.transpose(1, 2), q2)
        y.mul_(rstd2[..., None])  # = ConvTranspose2d #1 output, M x hr*wr x (2*2*C/4)
        up = self.dec.output_upscaling
        norm, act1, conv2, act2 = up[1], up[2], up[3], up[4]
        c4 = conv2.weight.shape[0]
        y = act1(torch.nn.functional.layer_norm(y.view(m, -1, c4), (c4,), norm.weight, norm.bias, norm.eps))
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c4, -1)
        y = act2(torch.addmm(conv2.bias.repeat(4), y.view(-1, c4), w2))  # (M*hr*wr*4) x (4*C/8)
        c8 = conv2.weight.shape[1]
        logits = torch.bmm(y.view(m, -1, c8), hyper.transpose(1, 2))  # M x (hr*wr*16) x 3
        # sub-pixel order: (y, x, ky1, kx1, ky2, kx2) -> row 4y+2ky1+ky2, column 4x+2kx1+kx2
        logits = logits.view(m, hr, wr, 2, 2, 2, 2, 3).permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(m, 3, 4 * hr, 4 * wr)
        return logits[:, :, :rows, :cols]


@dataclass
class _UpscaleConsts:
    """Per-image constants of the first transposed convolution written over the norm4 statistics."""

    s: torch.Tensor  # h x w x P   image embedding through both norm scales and the conv weights
    g12: torch.Tensor  # C x P
    g2: torch.Tensor  # C x P
    c1: torch.Tensor  # P
    e1: torch.Tensor  # P
    c2: torch.Tensor  # P
    e2: torch.Tensor  # P (includes the conv bias)
