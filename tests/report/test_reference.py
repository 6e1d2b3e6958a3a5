"""The paper's numbers shipped as package data match the shared reference files and the paper's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectbench.reference import paper_accuracy, paper_efficiency, paper_rows_for, paper_table_for

SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference"


@pytest.mark.parametrize("name", ["paper_accuracy.csv", "paper_efficiency.csv"])
def test_package_copy_equals_shared_reference(name):
    if not (SHARED / name).is_file():
        pytest.skip("../shared/reference not present")
    from importlib import resources

    assert resources.files("defectbench.reference").joinpath(name).read_text() == (SHARED / name).read_text()


def test_tables_and_lookups():
    rows = paper_accuracy()
    assert {r.table for r in rows} == {3, 4, 5, 6}
    assert [paper_table_for(*k) for k in (("sd900", "test"), ("mt", "1to1-test"), ("nrsd", "test"), ("mt", "7to3-test"))] == [3, 4, 5, 6]
    assert paper_table_for("mt", "free") is None and paper_rows_for("folder:x", "test") == []
    sam = [r for r in paper_rows_for("sd900", "test") if r.method == "SAM"][0]
    assert sam.scores == {"S_alpha": 0.668, "MAE": 0.172, "max_E": 0.729, "weighted_F": 0.599, "max_F": 0.628}
    minet = [r for r in paper_rows_for("sd900", "test") if r.method == "MINet"][0]
    assert minet.scores["weighted_F"] is None  # printed as "-" in the paper
    assert len(paper_rows_for("mt", "7to3-test")) == 4
    speed = {p.method: p for p in paper_efficiency()}
    assert speed["SAM"].fps == 0.2 and speed["CPD"].params_m == 29.2 and len(speed) == 10
