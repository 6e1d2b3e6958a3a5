"""Experiment configs: validation errors name the file and key; the shipped configs load and expand."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from defectbench.bench import expand_jobs, load_config, parse_config
from defectbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _cfg(**over):
    cfg = {"experiment": "t", "seeds": [0, 1, 2],
           "datasets": [{"name": "mt", "tasks": [{"train": "1to1-train", "test": "1to1-test"}], "extra_eval": ["free"]}],
           "methods": [{"name": "litenet", "type": "sod", "model": "litenet", "train": {"epochs": 2}},
                       {"name": "lite-shipped", "type": "sod", "model": "litenet", "checkpoint": "shipped:mt"},
                       {"name": "sam-h-oracle", "type": "sam", "model": "vit_h", "select": "oracle-combine"},
                       {"name": "theirs", "type": "maps", "path": "maps/{dataset}"}]}
    cfg.update(over)
    return cfg


def test_defaults_seeds_and_labels():
    c = parse_config(_cfg())
    assert [t.key for t in c.tasks] == ["mt-1to1-test"]
    assert c.tasks[0].extra == ("free",)
    seeds = {m.name: m.seeds for m in c.methods}
    assert seeds == {"litenet": (0, 1, 2), "lite-shipped": (0,), "sam-h-oracle": (0,), "theirs": (0,)}
    sam = c.method("sam-h-oracle")
    assert sam.uses_gt and "oracle" in sam.label
    jobs = expand_jobs(c)
    ids = [j.id for j in jobs]
    assert len(ids) == len(set(ids)) == 3 + 1 + 1 + 1
    # maps first (cheap), then trained models, then SAM
    assert ids[0] == "mt-1to1-test/theirs/seed0" and ids[-1] == "mt-1to1-test/sam-h-oracle/seed0"


def test_spec_hash_tracks_settings():
    a = expand_jobs(parse_config(_cfg()))
    cfg = _cfg()
    cfg["methods"][0]["train"] = {"epochs": 3}
    b = expand_jobs(parse_config(cfg))
    ha = {j.id: j.spec_hash() for j in a}
    hb = {j.id: j.spec_hash() for j in b}
    changed = sorted(k for k in ha if ha[k] != hb[k])
    assert changed == [f"mt-1to1-test/litenet/seed{s}" for s in range(3)]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda c: c.update(bogus=1), "unknown key 'bogus'"),
    (lambda c: c["datasets"][0].update(name="kolektor"), "unknown dataset 'kolektor'"),
    (lambda c: c["datasets"][0]["tasks"][0].update(test="1to1-tset"), "no split '1to1-tset'"),
    (lambda c: c["datasets"][0]["tasks"][0].update(test="1to1-train"), "never be scored on its training images"),
    (lambda c: c["datasets"][0].update(extra_eval=["1to1-train"]), "never be scored on its training images"),
    (lambda c: c["methods"].append({"name": "litenet", "type": "maps", "path": "x"}), "used twice"),
    (lambda c: c["methods"][2].pop("select"), "needs 'select', one of oracle-combine"),
    (lambda c: c["methods"][2].update(select="best"), "got 'best'"),
    (lambda c: c["methods"][2].update(model="vit_x"), "unknown SAM model 'vit_x'"),
    (lambda c: c["methods"][0].update(model="unet"), "unknown saliency model 'unet'"),
    (lambda c: c["methods"][0]["train"].update(epohcs=3), "unknown training option(s) epohcs"),
    (lambda c: c["methods"][0]["train"].update(split="test"), "'split' is set by the task"),
    (lambda c: c["methods"][0].update(type="magic"), "unknown type 'magic'"),
    (lambda c: c["methods"][0].update(name="a/b"), "folder-safe"),
    (lambda c: c.update(seeds=[1, 1]), "lists a seed twice"),
    (lambda c: c.update(speed={"methods": ["nope"]}), "'nope' is not among"),
])
def test_errors_are_one_clear_line(tmp_path, mutate, fragment):
    cfg = _cfg()
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert fragment in msg and str(path) in msg and "\n" not in msg


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("experiment: x\ndatasets: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+ not valid YAML"):
        load_config(path)


def test_paper_config_is_the_papers_matrix():
    c = load_config(REPO / "configs" / "paper.yaml")
    keys = {t.key: (t.dataset, t.train, t.test) for t in c.tasks}
    assert keys["sd900-test"] == ("sd900", "train", "test")
    assert keys["mt-1to1-test"] == ("mt", "1to1-train", "1to1-test")
    assert keys["mt-7to3-test"] == ("mt", "7to3-train", "7to3-test")
    assert keys["nrsd-test"] == ("nrsd", "train", "test")
    sams = [m for m in c.methods if m.type == "sam"]
    assert any(m.uses_gt and m.options["model"] == "vit_h" for m in sams)
    assert any(not m.uses_gt and m.options["model"] == "vit_h" for m in sams)
    trained = [m for m in c.methods if m.type == "sod" and not m.options.get("checkpoint")]
    # the paper's 13 saliency baselines, in the variants it used (CPD: VGG-16, ICON: VGG-16), and ours
    paper_13 = {"cpd_vgg", "scrn", "minet", "gcpanet", "f3net", "c2fnet", "vst", "icon", "edn", "corrnet", "edrnet",
                "dacnet", "csepnet"}
    models = [m.options["model"] for m in trained]
    assert set(models) == paper_13 | {"litenet"} and len(models) == len(set(models)) == 14
    from defectbench.methods.saliency import list_models

    assert set(models) <= set(list_models())
    assert all(len(m.seeds) == 3 for m in trained)
    jobs = expand_jobs(c)
    assert len({j.id for j in jobs}) == len(jobs) > 4 * len(trained) * 3


def test_quick_config_is_small():
    c = load_config(REPO / "configs" / "quick.yaml")
    jobs = expand_jobs(c)
    trained = [j for j in jobs if j.method.type == "sod" and not j.method.options.get("checkpoint")]
    assert 0 < len(trained) <= 4
    # brief: at most 2500 image-epochs at <= 160 px per trained job (about 2 minutes on a 2-core CPU)
    for j in trained:
        train = j.method.options["train"]
        n_train = {"sd900": 540, "mt": 196}[j.task.dataset]
        assert int(train["epochs"]) * n_train <= 2500 and int(train["size"]) <= 160, j.id


def test_paper_jobs_start(tmp_path, monkeypatch):
    """Jobs of the paper matrix start: SAM without a checkpoint is skipped naming the file, NRSD-MN without data fails."""
    monkeypatch.delenv("DEFECTBENCH_CHECKPOINTS", raising=False)
    from defectbench.bench import run_experiment

    cfg = load_config(REPO / "configs" / "paper.yaml")
    summary = run_experiment(cfg, tmp_path / "runs", data_root=str(tmp_path / "no-data"), progress=False, device="cpu",
                             only=["sd900-test/sam-vit_h-*", "nrsd-test/litenet/seed0"])
    rows = ("learned", "oracle", "prior", "point-largest", "point-per-region", "box-largest", "box-per-region", "box-all",
            "box-per-region-best3", "box-per-region-jitter", "clicks")  # automatic rows, then the prompt rows
    expected = [f"sd900-test/sam-vit_h-{s}/seed0" for s in rows]
    expected += [f"sd900-test/sam-vit_h-from-litenet/seed{k}" for k in range(3)]  # the hybrid, one per litenet seed
    assert sorted(summary.skipped) == sorted(expected)
    assert all("sam_vit_h_4b8939.pth" in m for m in summary.skipped.values())
    assert "NRSD-MN not found" in summary.failed["nrsd-test/litenet/seed0"]
