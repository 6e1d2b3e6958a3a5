"""Res2Net-50 v1b 26w x 4s: official layout and parameter count, hierarchical splits, weights from local files."""

from __future__ import annotations

import pytest
import torch

from defectbench.errors import CheckpointError
from defectbench.methods.saliency.res2net import (
    RES2NET50_V1B_FILE,
    Bottle2neck,
    Res2NetV1b,
    build_res2net50_v1b,
)

# Reference, not a result: sum(p.numel() for p in res2net50_v1b_26w_4s().parameters()) and its state-dict length in
# the official code (github.com/Res2Net/Res2Net-PretrainedModels res2net_v1b.py, the copy in C2FNet's
# lib/Res2Net_v1b.py at commit 712bae7), run outside this repository. Loading its state dict into ours by name gave
# bit-identical logits (max diff 0.0).
OFFICIAL_PARAMS = 25_718_352
OFFICIAL_STATE_KEYS = 524
CLASSIFIER_PARAMS = 2048 * 1000 + 1000


@pytest.fixture(scope="module")
def net() -> Res2NetV1b:
    torch.manual_seed(0)
    return build_res2net50_v1b(pretrained=False)


def test_parameter_count_and_key_names_are_official(net: Res2NetV1b) -> None:
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_PARAMS
    keys = list(net.state_dict())
    assert len(keys) == OFFICIAL_STATE_KEYS
    for key in ("conv1.0.weight", "conv1.1.running_mean", "conv1.6.weight", "bn1.weight", "layer1.0.convs.2.weight",
                "layer1.0.bns.2.bias", "layer1.0.downsample.1.weight", "layer4.0.downsample.2.running_var",
                "layer4.2.conv3.weight", "fc.weight"):
        assert key in keys
    trunk = build_res2net50_v1b(pretrained=False, classifier=False)
    assert sum(p.numel() for p in trunk.parameters()) == OFFICIAL_PARAMS - CLASSIFIER_PARAMS
    with pytest.raises(RuntimeError, match="without a classifier"):
        trunk(torch.randn(1, 3, 32, 32))


def test_deep_stem_and_average_pool_shortcut(net: Res2NetV1b) -> None:
    assert [m.kernel_size for m in net.conv1 if isinstance(m, torch.nn.Conv2d)] == [(3, 3)] * 3
    shortcut = net.layer2[0].downsample
    assert isinstance(shortcut[0], torch.nn.AvgPool2d) and shortcut[0].ceil_mode and not shortcut[0].count_include_pad
    assert shortcut[1].stride == (1, 1)
    assert net.layer2[0].pool is not None and net.layer2[1].pool is None


def test_feature_strides_and_classifier(net: Res2NetV1b) -> None:
    net.eval()
    with torch.no_grad():
        feats = net.features(torch.randn(1, 3, 64, 96))
        logits = net(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 16, 24), (512, 8, 12), (1024, 4, 6), (2048, 2, 3)]
    assert logits.shape == (2, 1000)


def test_normal_block_chains_its_splits_and_stage_block_does_not() -> None:
    torch.manual_seed(1)
    for first_of_stage, stride in ((False, 1), (True, 2)):
        block = Bottle2neck(64, 16, stride=stride, first_of_stage=first_of_stage,
                            downsample=None if not first_of_stage else torch.nn.Sequential(
                                torch.nn.AvgPool2d(2, 2), torch.nn.Conv2d(64, 64, 1))).eval()
        seen: dict[str, torch.Tensor] = {}
        block.convs[1].register_forward_hook(lambda m, args, out, seen=seen: seen.__setitem__("in1", args[0]))
        block.convs[0].register_forward_hook(lambda m, args, out, seen=seen: seen.__setitem__("out0", out))
        x = torch.randn(1, 64, 8, 8)
        with torch.no_grad():
            block(x)
            split1 = torch.split(torch.relu(block.bn1(block.conv1(x))), block.width, dim=1)[1]
            previous = torch.relu(block.bns[0](seen["out0"]))
        expected = split1 if first_of_stage else split1 + previous
        torch.testing.assert_close(seen["in1"], expected)


def test_weights_load_from_a_local_file_with_every_key_checked(tmp_path, monkeypatch, stand_in_official) -> None:
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    file_name, url = RES2NET50_V1B_FILE
    with pytest.raises(CheckpointError, match=f"Res2Net-50 v1b ImageNet weights not found: download {url}"):
        build_res2net50_v1b()
    torch.manual_seed(2)
    ref = Res2NetV1b().state_dict()
    (tmp_path / file_name).parent.mkdir(exist_ok=True)
    torch.save(ref, tmp_path / file_name)
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="not the official res2net50.*starts with 3cf99910"):
        build_res2net50_v1b()  # a file under the official name is checked against the hash prefix in that name
    stand_in_official("res2net50_v1b", tmp_path / file_name)
    net = build_res2net50_v1b()
    for key in ("conv1.0.weight", "layer3.2.convs.1.weight", "layer1.0.downsample.2.running_mean", "fc.bias"):
        torch.testing.assert_close(net.state_dict()[key], ref[key])
    trunk = build_res2net50_v1b(classifier=False)  # the file's classifier is ignored
    torch.testing.assert_close(trunk.layer4[2].bn3.weight, ref["layer4.2.bn3.weight"])

    bad = dict(ref)
    bad["layer2.0.convs.0.weight"] = torch.zeros(52, 52, 1, 1)
    del bad["layer4.2.conv3.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"1 missing, 0 unexpected, 1 wrong-shaped.*layer2.0.convs.0.weight"):
        build_res2net50_v1b(weights_path=tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="backbone weights file not found"):
        build_res2net50_v1b(weights_path=tmp_path / "nope.pth")
