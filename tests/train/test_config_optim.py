"""Training config validation, paper recipes and learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from defectbench.errors import ConfigError
from defectbench.train.config import TrainConfig, load_config_file
from defectbench.train.optim import lr_factor


def test_recipes_and_overrides() -> None:
    cfg = TrainConfig.for_model("f3net", {"epochs": 5})
    assert (cfg.optimizer, cfg.lr, cfg.backbone_lr_mult, cfg.schedule, cfg.epochs) == ("sgd", 0.05, 0.1, "triangle", 5)
    assert TrainConfig.for_model("cpd").grad_clip_value == 0.5
    assert TrainConfig.for_model("litenet", {"lr": 5e-4}).lr == 5e-4
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_options_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown training option.*epoch_count"):
        TrainConfig.from_dict({"epoch_count": 3})
    with pytest.raises(ConfigError, match="size 200 is out of range; it must be a positive multiple of 32"):
        TrainConfig.from_dict({"size": 200})
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 7\n  lr: 0.01\n")
    assert load_config_file(tmp_path / "c.yaml") == {"epochs": 7, "lr": 0.01}
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(tmp_path / "bad.yaml")


def test_schedules() -> None:
    cfg = TrainConfig(epochs=10, warmup_epochs=1, schedule="cosine", min_lr_ratio=0.0)
    spe = 10
    assert lr_factor(cfg, 0, spe) == pytest.approx(0.1)
    assert lr_factor(cfg, 9, spe) == pytest.approx(1.0)
    assert lr_factor(cfg, 10, spe) == pytest.approx(1.0)
    assert lr_factor(cfg, 55, spe) == pytest.approx(0.5)
    assert lr_factor(cfg, 99, spe) < 0.001
    tri = TrainConfig(epochs=10, schedule="triangle")
    peak = max(lr_factor(tri, s, spe) for s in range(100))
    assert peak == pytest.approx(1.0, abs=0.02) and lr_factor(tri, 99, spe) < 0.02
    step = TrainConfig(epochs=100, schedule="step", step_epochs=50, warmup_epochs=0)
    assert lr_factor(step, 499, 10) == 1.0 and lr_factor(step, 500, 10) == pytest.approx(0.1)
    const = TrainConfig(epochs=3, schedule="constant", warmup_epochs=0)
    assert all(lr_factor(const, s, 4) == 1.0 for s in range(12))
    assert not math.isnan(lr_factor(TrainConfig(epochs=1, warmup_epochs=0), 0, 1))


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("lr", -1.0, "> 0"), ("lr", 0.0, "> 0"), ("weight_decay", -1.0, ">= 0"), ("epochs", 0, ">= 1"),
    ("batch", 0, ">= 1"), ("batch", -1, ">= 1"), ("size", 0, "multiple of 32"), ("size", -64, "multiple of 32"),
    ("size", 200, "multiple of 32"), ("limit", 0, ">= 1"), ("limit", -3, ">= 1"), ("momentum", 1.5, "[0, 1]"),
    ("val_fraction", 1.0, "[0, 1)"), ("warmup_epochs", -1.0, ">= 0"), ("lr", float("nan"), "> 0"),
    ("aug_crop_scale", (0.0, 1.0), "0 < low"), ("grad_clip_value", 0.0, "> 0"),
])
def test_out_of_range_values_name_the_option_and_range(option, value, allowed) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.for_model("litenet", {option: value}, source="command line")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"command line: {option} ") and allowed in message


def test_model_args_are_checked_against_the_factory() -> None:
    with pytest.raises(ConfigError, match=r"model_args nosuch not taken by model 'litenet'; it takes: .*width"):
        TrainConfig.for_model("litenet", {"model_kwargs": {"nosuch": 1}})
    with pytest.raises(ConfigError, match="unknown model 'nosuchnet'"):
        TrainConfig.for_model("nosuchnet")
    assert TrainConfig.for_model("litenet", {"model_kwargs": {"width": 16}}).model_kwargs == {"width": 16}
    assert TrainConfig.for_model("litenet", {"limit": 1}).limit == 1


@pytest.mark.parametrize(("argv", "config", "named"), [
    (["--model-args", '{"nosuch": 1}'], None, "model_args nosuch"),
    ([], "lr: -1\n", "lr -1"),
    ([], "limit: 0\n", "limit 0"),
    ([], "weight_decay: -0.5\n", "weight_decay -0.5"),
])
def test_cli_rejects_bad_values_in_one_line_before_creating_anything(tmp_path, capsys, argv, config, named) -> None:
    from defectbench.cli import main

    if config:
        (tmp_path / "c.yaml").write_text(config)
        argv = [*argv, "--config", str(tmp_path / "c.yaml")]
    out = tmp_path / "run"
    rc = main(["train", "--model", "litenet", "--out", str(out), "--no-progress", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and named in err[0] and "Traceback" not in err[0]
    assert not out.exists()
