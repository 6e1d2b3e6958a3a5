"""`defectbench run | status | report` on a small experiment, and one-line errors."""

from __future__ import annotations

import pytest

from defectbench.cli import main
from tests.bench.synthetic import write_config


def test_run_status_report_cycle(tmp_path, synth, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", synth["dataset"], {"good": synth["good"], "gone": tmp_path / "gone"})
    assert main(["run", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "syn-test/good/seed0" in out and "2 jobs in runs/synth" in out
    assert main(["run", str(cfg), "--report"]) == 1  # one job failed: exit status 1, the other is done
    out = capsys.readouterr().out
    assert "1 done now" in out and "1 failed" in out and "gone: maps folder" in out.replace("\n", " ")
    assert (tmp_path / "runs/synth/report/index.html").is_file()
    assert main(["status", "runs/synth", "--all"]) == 0
    out = capsys.readouterr().out
    assert "syn-test/good/seed0" in out and "1 done, 1 failed" in out and "no runner active" in out
    assert main(["report", "runs/synth", "--no-figures", "--out", "rep2"]) == 0
    assert (tmp_path / "rep2/tables/main_syn-test.md").is_file() and not (tmp_path / "rep2/figures").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["status", "runs/none"], "no results store here"),
    (["report", "runs/none"], "no results store here"),
    (["run", "nope.yaml"], "config file not found"),
])
def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("defectbench: error:") and fragment in err and "\n" not in err
