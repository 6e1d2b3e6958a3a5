"""VST: official parameter count, output conventions, size check, state-dict round trip, encoder weights, loss."""

from __future__ import annotations

import io

import pytest
import torch

from defectbench.errors import CheckpointError, ConfigError
from defectbench.methods.saliency import create_model
from defectbench.methods.saliency import vst as vst_module
from defectbench.methods.saliency.losses import create_loss, mask_edges
from defectbench.methods.saliency.t2t_vit import T2TViT
from defectbench.methods.saliency.vst import VST, valid_input_size
from tests.methods.saliency.model_checks import check_forward_shapes, unused_parameters

# Reference, not a result: sum(p.numel() for p in ImageDepthNet(args).parameters()) of the official code
# (github.com/nnizhang/VST, RGB_VST/Models at commit 00bc414, img_size 224, T2T-ViT weights not loaded), run in
# /tmp outside this repository. It counts T2T-ViT's unused ImageNet classifier (385,000), the frozen position
# table (197 x 384) and the performers' frozen random features (2 x 32 x 64), which VST holds as parameters.
OFFICIAL_PARAMS = 44_555_606


@pytest.fixture(scope="module")
def model() -> VST:
    torch.manual_seed(0)
    return create_model("vst", pretrained=False)


def test_parameter_count_matches_official(model: VST) -> None:
    ours = sum(p.numel() for p in model.parameters())
    assert ours + 385_000 + 197 * 384 + 2 * 32 * 64 == OFFICIAL_PARAMS
    assert sum(b.numel() for b in model.buffers()) == 2 * 32 * 64  # the performers' random features


def test_default_loss_is_saliency_plus_contour(model: VST) -> None:
    assert model.default_loss == "vst"


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_forward_shapes_train_and_eval(model: VST, size: tuple[int, int]) -> None:
    check_forward_shapes(model, size, n_train_outputs=8)  # saliency 1, 1/4, 1/8, 1/16; contour the same


def test_eval_output_is_the_full_resolution_saliency_map(model: VST) -> None:
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        main = model(x)
        model.train()
        for m in model.modules():  # dropout off so both passes compute the same function
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        outs = model(x)
    model.eval()
    torch.testing.assert_close(outs[0], main)
    assert not torch.allclose(outs[4], main)  # the contour map is another output


def test_every_parameter_is_used_by_the_training_loss(model: VST) -> None:
    assert unused_parameters(model) == []


def test_state_dict_round_trip_is_bit_exact(model: VST) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(5)
    other = create_model("vst", pretrained=False)
    other.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = torch.randn(1, 3, 48, 64)
    model.eval()
    other.eval()
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    assert torch.equal(model.decoder.decoder1.att.w, other.decoder.decoder1.att.w)


def test_invalid_input_size_is_refused_before_any_forward() -> None:
    with pytest.raises(ConfigError, match=r"VST cannot take input size 100.*multiples of 16"):
        valid_input_size(100)
    with pytest.raises(ConfigError, match="multiples of 16"):
        vst_module.vst.valid_input_size((224, 230))
    valid_input_size(224)


def test_forward_with_an_invalid_size_raises_the_config_error(model: VST) -> None:
    model.eval()
    with pytest.raises(ConfigError, match="multiples of 16"):
        model(torch.randn(1, 3, 72, 72))


def test_encoder_weights_come_from_a_local_file(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match=r"T2T-ViT_t-14 ImageNet weights not found.*81\.7_T2T_ViTt_14"):
        create_model("vst")
    torch.manual_seed(3)
    ref = T2TViT("transformer").state_dict()
    path = tmp_path / "81.7_T2T_ViTt_14.pth.tar"
    torch.save({"state_dict_ema": ref}, path)
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    net = create_model("vst")
    torch.testing.assert_close(net.rgb_backbone.blocks[5].mlp.fc2.weight, ref["blocks.5.mlp.fc2.weight"])
    torch.testing.assert_close(net.rgb_backbone.tokens_to_token.project.weight, ref["tokens_to_token.project.weight"])


def test_reduced_configuration_refuses_imagenet_weights() -> None:
    with pytest.raises(ValueError, match="pretrained=False"):
        VST(pretrained=True, embed_dim=64)


def test_vst_loss_weights_saliency_and_contour_maps() -> None:
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1.0
    edges = mask_edges(target)
    assert 0 < edges.sum() < target.sum()  # a band around the square's border
    zero = torch.zeros(1, 1, 16, 16)
    good = [(target * 2 - 1) * 20] * 4 + [(edges * 2 - 1) * 20] * 4
    loss = create_loss("vst")
    assert loss(good, target).item() < 1e-6
    bce0 = torch.nn.functional.binary_cross_entropy_with_logits(zero, target).item()
    only_saliency_wrong = [zero] + good[1:]
    assert loss(only_saliency_wrong, target).item() == pytest.approx(1.0 * bce0, rel=1e-5)
    only_coarse_contour_wrong = good[:7] + [zero]
    assert loss(only_coarse_contour_wrong, target).item() == pytest.approx(0.5 * bce0, rel=1e-5)
    with pytest.raises(ValueError, match="8 output weights"):
        loss(good[:5], target)
