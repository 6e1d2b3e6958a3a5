"""The exponential moving average of the weights (``ema_decay``): what is averaged, what is saved, and that a run
interrupted after an epoch and resumed ends bit-for-bit equal to an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from defectbench.errors import ConfigError
from defectbench.train import TrainConfig, train_model, trainer


def test_average_covers_weights_and_batchnorm_statistics() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    assert trainer.moving_average(model, 0.0) is None
    ema = trainer.moving_average(model, 0.75)
    w1 = model[0].weight.detach().clone()
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(2.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module[0].weight, 0.75 * w1 + 0.25 * (w1 + 1.0))
    torch.testing.assert_close(ema.module[1].running_mean, torch.full((2,), 0.5))  # 0.75 * 0 + 0.25 * 2
    assert int(ema.n_averaged) == 2


def test_decay_must_be_below_one() -> None:
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="ema_decay"):
            TrainConfig.for_model("litenet", {"ema_decay": bad})


def test_ema_run_saves_the_average_and_resumes_bit_for_bit(tmp_path, sd900_root, monkeypatch) -> None:
    cfg = TrainConfig.for_model("litenet", dict(model_kwargs={"width": 16}, epochs=2, batch=4, size=64, limit=8,
                                                val_fraction=0.25, warmup_epochs=0, data_root=str(sd900_root),
                                                threads=1, ema_decay=0.9))
    straight = train_model(cfg, out_dir=tmp_path / "straight", progress=False)
    a = torch.load(straight.last_checkpoint, weights_only=True)
    raw, averaged = a["train_state"]["raw_state_dict"], a["state_dict"]
    assert a["train_state"]["ema_n_averaged"] == 2 * 1  # 6 training images, batch 4: one step per epoch
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw if raw[k].is_floating_point())

    # interrupt the second run right after its first last.pt, then resume it
    save = trainer.save_checkpoint

    def save_then_stop(path, ckpt):  # noqa: ANN001, ANN202
        save(path, ckpt)
        if path.name == "last.pt":
            raise KeyboardInterrupt

    (tmp_path / "resumed").mkdir()
    monkeypatch.setattr(trainer, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, out_dir=tmp_path / "resumed", progress=False)
    monkeypatch.setattr(trainer, "save_checkpoint", save)
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["train_state"]["epoch"] == 1
    train_model(cfg, out_dir=tmp_path / "resumed", resume=True, progress=False)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    for key in ("state_dict",):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), name
    for name in raw:
        assert torch.equal(raw[name], b["train_state"]["raw_state_dict"][name]), name
    assert b["train_state"]["ema_n_averaged"] == a["train_state"]["ema_n_averaged"]
    best_a = torch.load(straight.best_checkpoint, weights_only=True)["state_dict"]
    best_b = torch.load(tmp_path / "resumed" / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
