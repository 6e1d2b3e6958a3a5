"""Real `anomaly` jobs on small synthetic parts: fitted on the good/ images, calibrated on others, scored beside maps
made elsewhere, reported in the main, false-alarm, anomaly and efficiency tables; resumed without refitting; and
every bad input refused in one line with exit status 2 before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from defectbench.bench import ResultsStore, load_config, run_experiment
from defectbench.cli import main
from defectbench.data import load_dataset
from defectbench.data.imageio import read_gray8
from tests.methods.anomaly.synthetic import make_parts

FAST = {"size": 128, "coreset_ratio": 0.1, "target_false_alarms": 0.1}


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    """train/ (4), test/ (6) scratched parts and good/ (60 defect-free: 30 fit, 12 calibrate, 18 test)."""
    return make_parts(tmp_path_factory.mktemp("parts") / "ds")


def _write(path: Path, dataset: str, methods: list[dict], extra=("free-test",), **top) -> Path:
    cfg = {"experiment": path.stem, "datasets": [{"name": dataset, "id": "syn", "tasks": [{"train": "train", "test": "test"}],
                                                 **({"extra_eval": list(extra)} if extra else {})}],
           "methods": methods, **top}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _saliency_like_maps(dataset: Path, out: Path) -> Path:
    """Maps of a fake saliency method: a blurred copy of the mask (defect images), faint noise (good images)."""
    import cv2

    from tests.conftest import write_png

    rng = np.random.default_rng(5)
    for mask in sorted((dataset / "test" / "masks").glob("*.png")):
        m = cv2.GaussianBlur(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).astype(float), (9, 9), 3)
        write_png(out / mask.name, np.clip(m * 0.8 + rng.random(m.shape) * 60, 0, 255).astype(np.uint8))
    for good in sorted((dataset / "good").glob("*.png")):
        write_png(out / good.name, (rng.random((128, 144)) * 90).astype(np.uint8))
    return out


def test_anomaly_rows_in_every_table_and_resume_without_refit(parts, tmp_path, monkeypatch):
    from defectbench.report import build_tables

    theirs = _saliency_like_maps(parts, tmp_path / "theirs")
    cfg = load_config(_write(tmp_path / "anom.yaml", f"folder:{parts}", [
        {"name": "pc", "type": "anomaly", "model": "patchcore", **FAST},
        {"name": "pd", "type": "anomaly", "model": "padim", **FAST},
        {"name": "theirs", "type": "maps", "path": str(theirs)},
    ], speed={"device": "cpu", "image_size": 96, "max_seconds": 0.3}))
    summary = run_experiment(cfg, tmp_path / "runs", progress=False, device="cpu")
    assert not summary.failed and len(summary.done) == 5, summary.failed
    exp = tmp_path / "runs" / "anom"
    ds = load_dataset(f"folder:{parts}")
    test_ids = {s.id for s in ds.split("test")} | {s.id for s in ds.split("free-test")}
    for name in ("pc", "pd"):
        job = exp / f"syn-test/{name}/seed0"
        assert {p.stem for p in (job / "maps").iterdir()} == test_ids  # never a fit or calibration image
        assert (job / "fit/anomaly.safetensors").is_file()
        info = json.loads((job / "run.json").read_text())["info"]
        assert info["method"]["rule"]["calibration_images"] == 12 and info["method"]["fit_images"] == 30
        assert info["anomaly"]["n_anomalous"] == 6 and info["anomaly"]["n_normal"] == 18
        assert info["anomaly"]["image_AUROC"] > 0.9  # the scratched parts rank above the good ones
    # the maps made elsewhere get the same numbers, recomputed here from their files with scikit-learn
    with ResultsStore(exp / "results.sqlite", readonly=True) as store:
        rec = store.job("syn-test/theirs/seed0")
    pairs = [(read_gray8(theirs / f"{i}.png")[0], ds[i].mask()) for i in sorted(test_ids)]
    expected_px = roc_auc_score(np.concatenate([g.ravel() for _, g in pairs]), np.concatenate([m.ravel() for m, _ in pairs]))
    expected_img = roc_auc_score([g.any() for _, g in pairs], [m.max() for m, _ in pairs])
    assert rec.info["anomaly"]["pixel_AUROC"] == pytest.approx(expected_px, abs=1e-12)
    assert rec.info["anomaly"]["image_AUROC"] == pytest.approx(expected_img, abs=1e-12)

    from defectbench.report import load_results

    tables = {t.key: t for ts in build_tables(load_results(exp)).values() for t in ts}
    labels = lambda key: [r.cells["method"].text for r in tables[key].rows]  # noqa: E731
    for key in ("main_syn-test", "falsealarms_syn-test_free-test", "anomaly_syn-test"):
        assert {"pc", "pd", "theirs"} <= set(labels(key)), key
    anomaly_rows = {r.cells["method"].text: r for r in tables["anomaly_syn-test"].rows}
    assert anomaly_rows["theirs"].cells["pixel_AUROC"].value == pytest.approx(expected_px)
    efficiency = {r.cells["method"].text: r for r in tables["efficiency"].rows if r.group == "ours"}
    assert efficiency["patchcore-efficientnet_lite0"].cells["what"].text.startswith("predict, fitted bank ")
    assert efficiency["padim-efficientnet_lite0"].cells["fps"].value > 0

    # a resumed job loads its saved fit (fitting again would fail here) and writes the same maps
    import defectbench.methods.anomaly as anomaly_pkg
    from defectbench.bench.executors import JobContext
    from defectbench.bench.families import anomaly as family
    from defectbench.bench.jobs import expand_jobs

    job = next(j for j in expand_jobs(cfg) if j.id == "syn-test/pc/seed0")
    maps = exp / job.id / "maps"
    before = {p.name: p.read_bytes() for p in maps.iterdir()}
    for p in list(maps.iterdir())[:5]:
        p.unlink()
    monkeypatch.setattr(anomaly_pkg, "fit_anomaly", lambda *a, **k: pytest.fail("refitted instead of loading"))
    produced = family.run(job, JobContext(exp, "cpu", lambda task: ds))
    assert produced.info["training"] == "loaded the fit saved by an earlier attempt"
    assert {p.name: p.read_bytes() for p in maps.iterdir()} == before


def _refused(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    line = err.splitlines()[-1]  # `run` may first say how many jobs the config holds
    assert line.startswith("defectbench: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in line, err
    return line


@pytest.mark.parametrize("ratio", [0, 1.5, -0.2, "half"])
def test_coreset_ratio_outside_0_1_is_refused(tmp_path, capsys, parts, ratio):
    cfg = _write(tmp_path / "r.yaml", f"folder:{parts}", [{"name": "pc", "type": "anomaly", "model": "patchcore",
                                                          "coreset_ratio": ratio}])
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], "coreset_ratio must be in (0, 1]")
    assert not (tmp_path / "runs").exists()


def test_missing_backbone_weights_are_refused(tmp_path, capsys, parts, monkeypatch):
    monkeypatch.setenv("DEFECTBENCH_CHECKPOINTS", str(tmp_path))
    cfg = _write(tmp_path / "w.yaml", f"folder:{parts}", [{"name": "pc", "type": "anomaly", "model": "patchcore",
                                                          "backbone": "wide_resnet50_2"}])
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], "wide_resnet50_2-95faca4d.pth",
             "defectbench weights fetch", "methods[0]")
    _refused(capsys, ["run", str(cfg), "--dry-run"], "wide_resnet50_2-95faca4d.pth")


@pytest.mark.parametrize("dataset,title", [("sd900", "SD-saliency-900"), ("nrsd", "NRSD-MN")])
def test_datasets_without_defect_free_images_are_refused(tmp_path, capsys, dataset, title):
    cfg = _write(tmp_path / "d.yaml", dataset, [{"name": "pc", "type": "anomaly", "model": "patchcore"}], extra=())
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], title, "no defect-free images",
             "datasets: [mt]")


def test_folder_without_good_images_and_too_small_calibration_are_refused_before_any_work(tmp_path, capsys):
    bare = make_parts(tmp_path / "bare", n_good=0, n_test=2, n_train=1)
    cfg = _write(tmp_path / "g.yaml", f"folder:{bare}",
                 [{"name": "pc", "type": "anomaly", "model": "patchcore", **FAST},
                  {"name": "other", "type": "maps", "path": str(tmp_path)}], extra=())
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], "has no defect-free images", "good/")
    assert not (tmp_path / "runs/g/syn-test").exists()  # no job started, the maps method's neither
    small = make_parts(tmp_path / "small", n_good=30, n_test=2, n_train=1)  # 15 fit, 6 calibrate, 9 test
    cfg = _write(tmp_path / "c.yaml", f"folder:{small}", [{"name": "pc", "type": "anomaly", "model": "patchcore"}])
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], "'free-calib' holds 6",
             "needs at least 19", "target_false_alarms")
    assert not (tmp_path / "runs/c/syn-test").exists()


def test_fit_or_calibration_images_are_never_scored(tmp_path, capsys, parts):
    cfg = _write(tmp_path / "s.yaml", f"folder:{parts}", [{"name": "pc", "type": "anomaly", "model": "patchcore"}],
                 extra=("free-calib",))
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], "'free-calib'", "also scored")
    cfg = _write(tmp_path / "t.yaml", f"folder:{parts}", [{"name": "pc", "type": "anomaly", "model": "patchcore",
                                                          "target_false_alarms": 0.1}], extra=("free",))
    _refused(capsys, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")], "never be scored")


def test_speed_without_a_fit_times_a_bank_of_the_configured_size(parts, tmp_path):
    from defectbench.bench.speed import measure_anomaly
    from defectbench.methods.anomaly.coreset import coreset_size

    cfg = load_config(_write(tmp_path / "v.yaml", f"folder:{parts}", [
        {"name": "pc", "type": "anomaly", "model": "patchcore", "size": 96, "coreset_ratio": 0.05, "fit_limit": 40}]))
    rec = measure_anomaly(cfg.methods[0], image_size=80, max_seconds=0.2)
    rows = coreset_size((96 // 8) ** 2 * 40, 0.05)
    assert rec.what == f"predict, random bank {rows}×152" and rec.image_size == 96 and rec.fps > 0
    assert rec.model == "patchcore-efficientnet_lite0" and 0.5 < rec.params_m < 3


def test_the_shipped_anomaly_config():
    from defectbench.bench.jobs import expand_jobs

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "anomaly.yaml")
    (task,) = cfg.tasks
    assert (task.dataset, task.train, task.test, task.extra) == ("mt", "1to1-train", "1to1-test", ("free-test",))
    kinds = {m.name: (m.settings.model, m.settings.backbone) for m in cfg.methods if m.type == "anomaly"}
    assert kinds == {"patchcore-lite0": ("patchcore", "efficientnet_lite0"), "padim-lite0": ("padim", "efficientnet_lite0"),
                     "patchcore-lite2": ("patchcore", "efficientnet_lite2"), "padim-lite2": ("padim", "efficientnet_lite2")}
    ids = [j.id for j in expand_jobs(cfg)]
    assert len(ids) == 11 and "speed/anomaly-patchcore-lite0" in ids and "mt-1to1-test/litenet-task/seed0" in ids
