"""Training options that change how fast a model trains (loader workers, last.pt interval, loss-read interval)
never change a job's fingerprint; an option that changes the weights (epochs) does."""

from __future__ import annotations

from defectbench.bench import expand_jobs, parse_config
from defectbench.bench.jobs import NOT_RESULT_TRAIN_OPTIONS, result_spec


def _hashes(train: dict | None) -> dict[str, str]:
    method = {"name": "lite", "type": "sod", "model": "litenet", **({"train": train} if train is not None else {})}
    cfg = {"experiment": "t", "datasets": [{"name": "sd900", "tasks": [{"train": "train", "test": "test"}]}],
           "methods": [method]}
    return {j.id: j.spec_hash() for j in expand_jobs(parse_config(cfg))}


def test_speed_options_keep_the_fingerprint_and_epochs_change_it():
    base = _hashes({"epochs": 3})
    assert _hashes({"epochs": 3, "workers": 4, "save_every": 2, "log_every": 10}) == base
    assert _hashes({"epochs": 3, "workers": 0}) == base
    assert _hashes({"epochs": 4, "workers": 4}) != base
    # only speed options: the same job as one without a train mapping at all
    assert _hashes({"workers": 2, "save_every": 5}) == _hashes(None) != base


def test_stored_specs_are_read_under_the_same_rule():
    spec = {"kind": "eval", "method": {"name": "lite", "type": "sod",
                                       "options": {"model": "litenet", "train": {"epochs": 3, "workers": 8}}}}
    assert result_spec(spec)["method"]["options"] == {"model": "litenet", "train": {"epochs": 3}}
    assert spec["method"]["options"]["train"] == {"epochs": 3, "workers": 8}  # the stored spec itself is not changed


def test_the_bench_and_the_trainer_agree_on_the_speed_options():
    from defectbench.train.config import SPEED_ONLY_OPTIONS, TrainConfig
    from defectbench.train.trainer import RESUME_FREE_KEYS

    assert NOT_RESULT_TRAIN_OPTIONS == SPEED_ONLY_OPTIONS <= set(TrainConfig().to_dict()) & set(RESUME_FREE_KEYS)
