"""Models load from files in the official formats; wrong, truncated and missing files give one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from defectbench.cli import main
from defectbench.errors import CheckpointError
from defectbench.methods.sam import checkpoints as ck
from defectbench.methods.sam.registry import MODELS, get_spec

from .helpers import deterministic_state_dict, reference_input, sample_output

DATA = Path(__file__).parent / "data"
OFFICIAL = ["vit_b", "vit_l", "vit_h", "sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l",
            "mobile_sam"]


def _layout_file(model: str, path: Path) -> Path:
    """An official-format checkpoint of ``model`` whose tensors are broadcast scalars (exact keys and shapes,
    a few kilobytes on disk): used for the big models, where a full random file would cost gigabytes."""
    spec = get_spec(model)
    layout = ck.expected_layout(spec)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.zeros((), dtype=torch.long)
        else:
            state[k] = (torch.rand(1, generator=gen) * 0.02).expand(shape)
    torch.save({spec.state_key: state} if spec.state_key else state, path)
    return path


def test_registry_lists_every_model_with_official_file_and_url():
    assert list(MODELS)[: len(OFFICIAL)] == OFFICIAL
    assert get_spec("vit_h").file_name == "sam_vit_h_4b8939.pth"
    assert get_spec("mobile_sam").url.endswith("/mobile_sam.pt")
    assert get_spec("sam2.1_hiera_tiny").name == "sam2.1_hiera_t"  # alias
    assert get_spec("vit_b").sha256 == "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"
    assert get_spec("sam2.1_hiera_l").amg_defaults == {"pred_iou_thresh": 0.8}


@pytest.mark.parametrize("model", ["mobile_sam", "sam2.1_hiera_t"])
def test_small_models_load_from_random_official_checkpoint(tmp_path, model):
    """A randomly initialised official architecture saved in the official format loads, weights intact."""
    spec = get_spec(model)
    path = ck.save_random_checkpoint(model, tmp_path / spec.file_name, seed=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = raw[spec.state_key] if spec.state_key else raw
    with pytest.raises(CheckpointError) as err:  # random weights are not the official file: refused by default
        ck.load_model(model, path, "cpu", cache_root=tmp_path / "cache")
    msg = str(err.value)
    assert f"its sha256 is {ck.file_sha256(path)}" in msg and spec.sha256 in msg and "--allow-unofficial" in msg
    net, info = ck.load_model(model, path, "cpu", cache_root=tmp_path / "cache", allow_unofficial=True)
    loaded = net.state_dict()
    assert set(loaded) == set(state)
    key = next(k for k in state if k.endswith("weight") and state[k].ndim >= 2)
    assert torch.equal(loaded[key], state[key])
    assert info.sha256 == ck.file_sha256(path) and info.official is False


@pytest.mark.parametrize("model", ["vit_b", "vit_l", "vit_h", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l"])
def test_large_models_load_from_official_layout(tmp_path, model):
    path = _layout_file(model, tmp_path / get_spec(model).file_name)
    net, _ = ck.load_model(model, path, "cpu", cache_root=tmp_path / "cache", allow_unofficial=True)
    state = net.state_dict()
    n_values = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) / 1e6
    assert abs(n_values - get_spec(model).params_m) < 0.01
    raw = torch.load(path, map_location="cpu", weights_only=True)
    raw = raw.get(get_spec(model).state_key, raw)
    key = next(k for k in raw if raw[k].ndim >= 2)
    assert torch.equal(state[key], raw[key].expand_as(state[key]))
    del net, state


def test_mobile_sam_key_layout_is_the_official_one():
    """Our TinyViT + SAM decoder has exactly the keys and shapes of the official mobile_sam.pt layout
    (recorded from ChaoningZhang/MobileSAM's build_sam_vit_t, see data/mobile_sam_reference.json)."""
    ref = json.loads((DATA / "mobile_sam_reference.json").read_text())["keys"]
    ours = ck.expected_layout(get_spec("mobile_sam"))
    assert list(ours) == list(ref)
    assert all(list(ours[k]) == ref[k][0] for k in ref)


def test_mobile_sam_encoder_reproduces_official_outputs():
    """With the same deterministic weights, our encoder matches values computed by the official code."""
    ref = json.loads((DATA / "mobile_sam_reference.json").read_text())
    from defectbench.methods.sam.mobilesam import build_mobile_sam

    net = build_mobile_sam().eval()
    net.load_state_dict(deterministic_state_dict(ref["keys"]), strict=True)
    with torch.no_grad():
        out = net.image_encoder(reference_input())
    assert list(out.shape) == ref["encoder_output_shape"]
    assert torch.allclose(torch.tensor(sample_output(out)), torch.tensor(ref["encoder_output_sample"]), atol=2e-4)


def test_vit_b_file_given_for_vit_h_is_named(tmp_path):
    path = _layout_file("vit_b", tmp_path / "sam_vit_h_4b8939.pth")
    with pytest.raises(CheckpointError) as err:
        ck.load_model("vit_h", path, "cpu")
    msg = str(err.value)
    assert "SAM ViT-B checkpoint" in msg and "--model vit_b" in msg and "\n" not in msg


def test_sam2_file_given_for_mobile_sam_is_named(tmp_path):
    path = _layout_file("sam2.1_hiera_t", tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="SAM 2.1 Hiera-T"):
        ck.load_model("mobile_sam", path, "cpu")


def test_truncated_and_foreign_files(tmp_path):
    path = ck.save_random_checkpoint("mobile_sam", tmp_path / "mobile_sam.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ck.load_model("mobile_sam", path, "cpu")
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        ck.load_model("mobile_sam", path, "cpu")
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="does not match the MobileSAM"):
        ck.load_model("mobile_sam", path, "cpu")


def test_missing_checkpoint_says_where_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        ck.locate("vit_b")
    assert str(tmp_path / "sam_vit_b_01ec64.pth") in str(err.value)
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in str(err.value)
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS")
    with pytest.raises(CheckpointError, match="--checkpoint PATH or set \\$DEFECTBENCH_CHECKPOINTS"):
        ck.locate("vit_b")


def test_checkpoints_folder_lookup_and_status(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    ck.save_random_checkpoint("mobile_sam", tmp_path / "mobile_sam.pt")
    assert ck.locate("mobile_sam") == tmp_path / "mobile_sam.pt"
    rows = {r["model"]: r for r in ck.status_rows(verify=True, cache_root=tmp_path / "cache")}
    assert rows["mobile_sam"]["found"] and rows["mobile_sam"]["status"] == "sha256 differs"
    assert not rows["vit_h"]["found"] and rows["vit_h"]["status"] == "missing"
    assert rows["vit_h"]["size"] == 2564550879
    # the hash is remembered: a second call does not re-read the file
    memo = json.loads((tmp_path / "cache" / "checkpoint_hashes.json").read_text())
    assert list(memo.values()) == [ck.file_sha256(tmp_path / "mobile_sam.pt")]


def test_cli_checkpoint_errors_are_one_line(tmp_path, capsys, data_root):
    path = _layout_file("vit_b", tmp_path / "wrong.pth")
    code = main(["sam", "predict", "--model", "vit_h", "--checkpoint", str(path), "--dataset", "sd900",
                 "--data-root", str(data_root), "--limit", "1", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "out"), "--select", "prior"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("defectbench: error: ") and "SAM ViT-B" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_cli_lists_checkpoints(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    assert main(["sam", "checkpoints", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows][: len(OFFICIAL)] == OFFICIAL
    assert all(r["url"].startswith("https://") for r in rows)
