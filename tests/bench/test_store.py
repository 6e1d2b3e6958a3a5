"""The SQLite results store: exact score round-trips, one-transaction job results, schema checks."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from defectbench.bench.blob import decode_fields, encode_fields, scores_to_fields
from defectbench.bench.store import ImageRow, ResultsStore
from defectbench.errors import DefectbenchError
from defectbench.metrics import ImageScores, aggregate, score_image


def _scores(rng, n=12, size=40):
    out = []
    for _ in range(n):
        gt = np.zeros((size, size), bool)
        y, x = rng.integers(5, size - 15, 2)
        gt[y:y + 10, x:x + 8] = True
        pred = np.clip(gt * 200 + rng.integers(0, 80, gt.shape), 0, 255).astype(np.uint8)
        out.append(score_image(pred, gt))
    return out


def test_blob_round_trip_keeps_aggregation(rng):
    scores = _scores(rng)
    decoded = [ImageScores(**decode_fields(encode_fields(scores_to_fields(s)))) for s in scores]
    for d, s in zip(decoded, scores, strict=True):
        assert d.tp.dtype == s.tp.dtype and d.em_curve.dtype == s.em_curve.dtype
        np.testing.assert_array_equal(d.tp, s.tp)
        assert d.S_alpha == s.S_alpha and d.n_fg == s.n_fg
    a, b = aggregate(scores), aggregate(decoded)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-6), k
    assert len(encode_fields(scores_to_fields(scores[0]))) < 6000


def _row(job, image, fields, role="test", split="test"):
    return ImageRow(job, image, split, role, "A", fields, 0.1, True, 0.05, 40, 40, f"{image}.png")


def test_finish_job_is_one_transaction(tmp_path, rng):
    from defectbench.bench import parse_config
    from defectbench.bench.jobs import expand_jobs

    cfg = parse_config({"experiment": "x", "datasets": [{"name": "folder:/nowhere", "id": "d"}],
                        "methods": [{"name": "m", "type": "maps", "path": "p"}, {"name": "n", "type": "maps", "path": "q"}]})
    jobs = expand_jobs(cfg)
    store = ResultsStore(tmp_path / "r.sqlite")
    assert store.sync_jobs(jobs) == []
    fields = scores_to_fields(_scores(rng, 1)[0])
    # a failing insert (duplicate image id) must leave neither rows nor a done status
    with pytest.raises(sqlite3.IntegrityError):
        store.finish_job(jobs[0].id, [_row(jobs[0].id, "a", fields), _row(jobs[0].id, "a", fields)], seconds=1,
                         timings={}, run_dir="r", maps_dir="m", info={})
    assert store.count_images() == 0 and store.job(jobs[0].id).status == "pending"
    store.finish_job(jobs[0].id, [_row(jobs[0].id, "a", fields), _row(jobs[0].id, "b", fields, "train", "train")],
                     seconds=1.5, timings={"score_s": 1.0}, run_dir="r", maps_dir="m", info={"k": 1})
    rec = store.job(jobs[0].id)
    assert (rec.status, rec.n_images, rec.seconds, rec.info) == ("done", 2, 1.5, {"k": 1})
    rows = store.image_rows([jobs[0].id])
    assert [(r.image_id, r.role, r.split) for r in rows] == [("a", "test", "test"), ("b", "train", "train")]
    assert rows[0].scalar("S_alpha") == fields["S_alpha"]
    # re-syncing a finished job with the same spec keeps it; a changed spec is reported
    assert store.sync_jobs(jobs) == []
    cfg2 = parse_config({"experiment": "x", "datasets": [{"name": "folder:/nowhere", "id": "d"}],
                         "methods": [{"name": "m", "type": "maps", "path": "other"}, {"name": "n", "type": "maps", "path": "q"}]})
    assert store.sync_jobs(expand_jobs(cfg2)) == [jobs[0].id]
    store.reset_job(jobs[0].id)
    assert store.count_images() == 0 and store.job(jobs[0].id).status == "pending"
    store.close()


def test_readonly_store_errors(tmp_path):
    with pytest.raises(DefectbenchError, match="no results store"):
        ResultsStore(tmp_path / "missing.sqlite", readonly=True)
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE jobs (x)")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(DefectbenchError, match="format 99"):
        ResultsStore(path)


def test_a_new_store_appears_with_its_tables_and_format(tmp_path, monkeypatch):
    """A reader that opens the store the moment its file exists (``status`` at a run's start) finds a whole store:
    it is written under a temporary name and moved into place (a ray test once read format 0 here)."""
    seen = []
    real_replace = __import__("os").replace

    def replace(src, dst):  # noqa: ANN001, ANN202
        conn = sqlite3.connect(str(src))
        seen.append((conn.execute("PRAGMA user_version").fetchone()[0],
                     {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}))
        conn.close()
        assert not (tmp_path / "r.sqlite").exists()  # nothing at the final name before the move
        return real_replace(src, dst)

    monkeypatch.setattr("defectbench.bench.store.os.replace", replace)
    ResultsStore(tmp_path / "r.sqlite").close()
    assert len(seen) == 1 and seen[0][0] >= 1 and {"jobs", "images"} <= seen[0][1]
    ResultsStore(tmp_path / "r.sqlite", readonly=True).close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["r.sqlite"]
