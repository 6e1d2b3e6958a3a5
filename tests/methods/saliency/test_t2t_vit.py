"""T2T-ViT-14 encoder: token shapes, the fixed position table, input-size check, official weight files."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from defectbench.errors import CheckpointError, ConfigError
from defectbench.methods.saliency.t2t_vit import (
    T2TViT,
    TokenPerformer,
    build_t2t_vit_14,
    sinusoid_encoding,
    valid_input_size,
)

# Reference, not a result: sum(p.numel() for p in T2t_vit_t_14(pretrained=False).parameters()) of VST's copy of
# the official code (github.com/nnizhang/VST, RGB_VST/Models/t2t_vit.py), run in /tmp outside this repository:
# 21,541,070, of which the ImageNet classifier is 385,000 and the frozen position table 197 x 384 = 75,648.
OFFICIAL_T2T_VIT_T_14_PARAMS = 21_541_070


def test_parameter_count_is_the_official_minus_classifier_and_position_table() -> None:
    net = T2TViT("transformer")
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_T2T_VIT_T_14_PARAMS - 385_000 - 197 * 384


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_tokens_at_three_scales(size: tuple[int, int]) -> None:
    net = T2TViT("transformer", embed_dim=48, depth=1, num_heads=2, token_dim=16).eval()
    h, w = size
    with torch.no_grad():
        t16, t8, t4 = net(torch.randn(2, 3, h, w))
    assert t16.shape == (2, h * w // 256, 48)
    assert t8.shape == (2, h * w // 64, 16) and t4.shape == (2, h * w // 16, 16)


def test_sinusoid_table_values() -> None:
    table = sinusoid_encoding(197, 384)[0]
    assert table.shape == (197, 384)
    assert table[0, 0] == 0 and table[0, 1] == 1  # sin(0), cos(0)
    pos, j = 37, 10  # even column: sin(pos / 10000^(j / d)); the next one is its cosine
    angle = pos / 10000 ** (j / 384)
    assert table[pos, j].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, j + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("size", [224, 352, (64, 96), (16, 16)])
def test_valid_sizes_pass(size) -> None:
    valid_input_size(size)


@pytest.mark.parametrize("size", [100, (224, 200), 8, 0])
def test_invalid_sizes_raise_a_clear_error(size) -> None:
    with pytest.raises(ConfigError, match="multiples of 16"):
        valid_input_size(size)


def test_forward_with_an_invalid_size_raises_the_config_error() -> None:
    net = T2TViT("transformer", embed_dim=48, depth=1, num_heads=2, token_dim=16)
    with pytest.raises(ConfigError, match="multiples of 16"):
        net(torch.randn(1, 3, 72, 72))


def test_performer_without_value_skip_keeps_the_input() -> None:
    torch.manual_seed(0)
    perf = TokenPerformer(16, 16, value_skip=False).eval()
    for p in perf.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(perf(x), x)  # zero attention and MLP: the residuals leave x unchanged
    assert "w" in perf.state_dict() and not any(n == "w" for n, _ in perf.named_parameters())


def _release_file(tmp_path, tokens_type: str, seed: int):
    """A timm-style training checkpoint like the official release: weights, EMA weights, args, classifier."""
    torch.manual_seed(seed)
    ema = T2TViT(tokens_type).state_dict()
    ema.update({"pos_embed": sinusoid_encoding(197, 384), "head.weight": torch.randn(1000, 384), "head.bias": torch.zeros(1000)})
    plain = {k: torch.zeros_like(v) for k, v in ema.items()}
    path = tmp_path / f"{tokens_type}.pth.tar"
    torch.save({"epoch": 309, "state_dict": plain, "state_dict_ema": ema, "args": argparse.Namespace(model="t2t")}, path)
    return path, ema


@pytest.fixture(scope="module")
def transformer_release(tmp_path_factory):
    return _release_file(tmp_path_factory.mktemp("t2t"), "transformer", seed=1)


def test_official_weights_load_from_a_local_file(transformer_release) -> None:
    path, ema = transformer_release
    net = build_t2t_vit_14(pretrained=True, weights_path=path)
    torch.testing.assert_close(net.blocks[13].attn.qkv.weight, ema["blocks.13.attn.qkv.weight"])  # EMA weights used
    torch.testing.assert_close(net.tokens_to_token.attention1.attn.qkv.weight, ema["tokens_to_token.attention1.attn.qkv.weight"])
    torch.testing.assert_close(net.cls_token, ema["cls_token"])


def test_weights_of_the_other_token_type_are_refused(tmp_path) -> None:
    path, _ = _release_file(tmp_path, "performer", seed=2)
    with pytest.raises(CheckpointError, match="not a T2T-ViT-14 ImageNet state dict"):
        build_t2t_vit_14(pretrained=True, weights_path=path)
    performer = build_t2t_vit_14(pretrained=True, weights_path=path, tokens_type="performer")
    assert performer.tokens_to_token.attention1.w.shape == (32, 64)


def test_missing_weights_name_the_official_file(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match=r"81\.7_T2T_ViTt_14\.pth\.tar.*--no-pretrained"):
        build_t2t_vit_14(pretrained=True)
    with pytest.raises(CheckpointError, match="not found"):
        build_t2t_vit_14(pretrained=True, weights_path=tmp_path / "absent.pth.tar")
    (tmp_path / "broken.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        build_t2t_vit_14(pretrained=True, weights_path=tmp_path / "broken.pth.tar")
