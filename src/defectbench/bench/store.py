"""The results store: one SQLite file per experiment (``runs/<experiment>/results.sqlite``).

Tables:

* ``meta``: experiment-level records (config text and hash, last run's versions, git commit, device);
* ``jobs``: one row per job of the matrix, its status (``pending``, ``running``, ``done``, ``failed``,
  ``skipped``), error, timings and the metadata of the run that made it;
* ``images``: per-image metric rows of finished jobs (split, role, defect class, the scalar metrics,
  predicted area) plus every score field — the 256-threshold curves included — in a BLOB, so that any
  grouping (per class, per split) is aggregated exactly as over a whole split;
* ``speed``: per-model efficiency measurements (parameters, size, FPS, device).

A job's rows and its ``done`` status are written in ONE transaction: a kill at any moment leaves either
no rows (the job re-runs) or all of them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectbench.bench.blob import decode_fields, encode_fields
from defectbench.errors import DefectbenchError

STORE_NAME = "results.sqlite"  # an experiment's results store, in its folder

SCHEMA_VERSION = 1
SCALARS = ("S_alpha", "MAE", "adp_E", "adp_F", "weighted_F")
STATUSES = ("pending", "running", "done", "failed", "skipped")

# jobs columns added to format 1 later (old stores gain them, NULL, when opened for writing; readers accept their
# absence): the labelled-images size of a job on a task's labels axis, and the corruption of its test images
ADDED_JOB_COLUMNS = ("labels", "corruption")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, dataset TEXT, dataset_name TEXT, task TEXT,
    train_split TEXT, test_split TEXT, method TEXT NOT NULL, method_type TEXT NOT NULL, label TEXT,
    model TEXT, uses_gt INTEGER DEFAULT 0, seed INTEGER DEFAULT 0, spec TEXT, spec_hash TEXT,
    status TEXT NOT NULL DEFAULT 'pending', error TEXT, attempts INTEGER DEFAULT 0,
    started REAL, finished REAL, seconds REAL, timings TEXT, device TEXT, device_desc TEXT,
    versions TEXT, git_commit TEXT, config_hash TEXT, host TEXT, pid INTEGER,
    run_dir TEXT, maps_dir TEXT, n_images INTEGER, info TEXT, position INTEGER, labels TEXT, corruption TEXT
);
CREATE TABLE IF NOT EXISTS images (
    job_id TEXT NOT NULL, image_id TEXT NOT NULL, split TEXT NOT NULL, role TEXT NOT NULL, defect_class TEXT,
    S_alpha REAL, MAE REAL, adp_E REAL, adp_F REAL, weighted_F REAL,
    pred_area REAL, pred_any INTEGER, gt_area REAL, height INTEGER, width INTEGER, map_path TEXT,
    image_path TEXT, mask_path TEXT, scores BLOB,
    PRIMARY KEY (job_id, image_id)
);
CREATE INDEX IF NOT EXISTS images_job ON images (job_id, role);
CREATE TABLE IF NOT EXISTS speed (
    job_id TEXT PRIMARY KEY, method TEXT, model TEXT, what TEXT, device TEXT, device_desc TEXT,
    image_size INTEGER, params_m REAL, model_mb REAL, fps REAL, iters INTEGER, seconds REAL, measured REAL
);
"""


@dataclass
class JobRecord:
    """One row of the ``jobs`` table."""

    job_id: str
    kind: str
    method: str
    method_type: str
    status: str
    dataset: str | None = None
    dataset_name: str | None = None
    task: str | None = None
    train_split: str | None = None
    test_split: str | None = None
    label: str | None = None
    model: str | None = None
    uses_gt: bool = False
    seed: int = 0
    spec_hash: str | None = None
    error: str | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    device: str | None = None
    device_desc: str | None = None
    run_dir: str | None = None
    maps_dir: str | None = None
    n_images: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    position: int | None = None
    pid: int | None = None
    host: str | None = None
    git_commit: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    labels: str | None = None  # labelled training images ("8", "all") on a task's labels axis; None: not on one
    corruption: str | None = None  # the corruption of the scored test images; None: clean


@dataclass
class ImageRow:
    """One per-image result: where the image belongs (split, role, class), its scores and its predicted area.

    ``role`` is ``test`` (the task's test split), ``extra`` (another scored split such as MT_Free) or
    ``train`` (training images; only for maps made elsewhere, to expose leaks). ``fields`` holds every
    field of the metric's ``ImageScores`` (curves included); ``pred_area`` is the share of pixels above
    0.5, ``pred_any`` whether any pixel is.
    """

    job_id: str
    image_id: str
    split: str
    role: str
    defect_class: str | None
    fields: dict[str, Any]
    pred_area: float
    pred_any: bool
    gt_area: float
    height: int
    width: int
    map_path: str | None = None
    image_path: str | None = None
    mask_path: str | None = None

    def scalar(self, name: str) -> float:
        """Return one scalar metric of the image."""
        return float(self.fields[name])


@dataclass
class SpeedRecord:
    """One efficiency measurement (Table 7)."""

    job_id: str
    method: str
    model: str
    what: str
    device: str
    device_desc: str
    image_size: int
    params_m: float
    model_mb: float
    fps: float
    iters: int
    seconds: float
    measured: float


class ResultsStore:
    """Read and write an experiment's SQLite results store."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise DefectbenchError(f"{self.path}: no results store here; run `defectbench run <config>` first")
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            self._check_version(self.conn.execute("PRAGMA user_version").fetchone()[0])
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self._create()
            self.conn = sqlite3.connect(str(self.path), timeout=30)
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            fresh = self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
            if not fresh:
                self._check_version(version)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            have = {r[1] for r in self.conn.execute("PRAGMA table_info(jobs)")}
            for column in ADDED_JOB_COLUMNS:  # columns added after format 1 was first written (NULL in old rows)
                if column not in have:
                    self.conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.conn.commit()
        self.conn.row_factory = sqlite3.Row

    def _create(self) -> None:
        """Write a new store with its tables and format under a temporary name, then move it into place: a reader
        (``defectbench status`` at the start of a run) never sees a store without its format."""
        tmp = self.path.with_name(f".{self.path.name}.creating-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp))
        try:
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, self.path)

    def _check_version(self, version: int) -> None:
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise DefectbenchError(f"{self.path}: results store of format {version}, this defectbench reads format "
                                   f"{SCHEMA_VERSION}; run the experiment under a new name (or another defectbench version)")

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------------------------------
    def set_meta(self, values: dict[str, Any]) -> None:
        """Store experiment-level records (JSON-encoded values)."""
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                  [(k, json.dumps(v, default=str)) for k, v in values.items()])

    def meta(self) -> dict[str, Any]:
        """Return the experiment-level records."""
        return {r["key"]: json.loads(r["value"]) for r in self.conn.execute("SELECT key, value FROM meta")}

    # -- jobs -------------------------------------------------------------------------------------------
    def sync_jobs(self, jobs: Sequence[Any], respecified: list[str] | None = None) -> list[str]:
        """Register the matrix's jobs (new ones as pending, order updated); return finished jobs whose settings changed.

        Unfinished jobs take the new settings; their ids are appended to ``respecified`` when these changed (the
        runner then discards what an earlier attempt left in their folders).
        """
        changed: list[str] = []
        with self.conn:
            for pos, job in enumerate(jobs):
                row = self.conn.execute("SELECT status, spec, spec_hash FROM jobs WHERE job_id = ?", (job.id,)).fetchone()
                h = job.spec_hash()
                task = job.task
                values = dict(
                    kind=job.kind, dataset=task.dataset_id if task else None, dataset_name=task.dataset if task else None,
                    task=task.clean_key if task else None, train_split=task.train if task else None,
                    test_split=task.test if task else None, method=job.method.name, method_type=job.method.type,
                    label=job.method.label, model=str(job.method.options.get("model") or ""),
                    uses_gt=int(job.method.uses_gt), seed=job.seed, position=pos,
                    labels=None if job.labels is None else str(job.labels), corruption=task.corruption if task else None,
                )
                if row is None:
                    cols = ["job_id", "spec", "spec_hash", "status", *values]
                    self.conn.execute(
                        f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        (job.id, json.dumps(job.spec(), default=str), h, "pending", *values.values()),
                    )
                    continue
                if row["status"] == "done" and row["spec_hash"] != h:
                    if _result_hash(row["spec"]) != h:
                        changed.append(job.id)
                        continue
                    # stored by an earlier version with a label in its fingerprint: same result, take the new one
                    self.conn.execute("UPDATE jobs SET spec = ?, spec_hash = ? WHERE job_id = ?",
                                      (json.dumps(job.spec(), default=str), h, job.id))
                sets = ", ".join(f"{k} = ?" for k in values)
                args: list[Any] = list(values.values())
                if row["status"] != "done":
                    sets += ", spec = ?, spec_hash = ?"
                    args += [json.dumps(job.spec(), default=str), h]
                    if row["spec_hash"] != h and respecified is not None:
                        respecified.append(job.id)
                self.conn.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*args, job.id))
        return changed

    def reset_job(self, job_id: str) -> None:
        """Forget a job's results so that it runs again."""
        with self.conn:
            self.conn.execute("DELETE FROM images WHERE job_id = ?", (job_id,))
            self.conn.execute("DELETE FROM speed WHERE job_id = ?", (job_id,))
            self.conn.execute("UPDATE jobs SET status = 'pending', error = NULL, spec_hash = NULL WHERE job_id = ?",
                              (job_id,))

    def jobs(self) -> list[JobRecord]:
        """Return every job record, in matrix order."""
        rows = self.conn.execute("SELECT * FROM jobs ORDER BY position, job_id").fetchall()
        return [_job_record(r) for r in rows]

    def job(self, job_id: str) -> JobRecord | None:
        """Return one job record (None when unknown)."""
        row = self.conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _job_record(row) if row else None

    def mark_running(self, job_id: str, run: dict[str, Any]) -> None:
        """Record that a job started (with the run's pid, host, device, versions, commit, config hash)."""
        with self.conn:
            self.conn.execute(
                "UPDATE jobs SET status = 'running', error = NULL, attempts = attempts + 1, started = ?, finished = NULL,"
                " pid = ?, host = ?, device = ?, device_desc = ?, versions = ?, git_commit = ?, config_hash = ?"
                " WHERE job_id = ?",
                (time.time(), run.get("pid"), run.get("host"), run.get("device"), run.get("device_desc"),
                 json.dumps(run.get("versions", {})), run.get("git_commit"), run.get("config_hash"), job_id),
            )

    def mark_ended(self, job_id: str, status: str, error: str | None, seconds: float | None = None) -> None:
        """Record that a job failed, was skipped, or was interrupted (``pending``), with its reason."""
        if status not in STATUSES:
            raise ValueError(status)
        with self.conn:
            self.conn.execute("UPDATE jobs SET status = ?, error = ?, finished = ?, seconds = ? WHERE job_id = ?",
                              (status, error, time.time(), seconds, job_id))

    def finish_job(self, job_id: str, rows: Iterable[ImageRow], *, seconds: float, timings: dict[str, float],
                   run_dir: str, maps_dir: str, info: dict[str, Any]) -> None:
        """Store a job's per-image rows and mark it done, in one transaction."""
        rows = list(rows)
        with self.conn:
            self.conn.execute("DELETE FROM images WHERE job_id = ?", (job_id,))
            self.conn.executemany(
                "INSERT INTO images (job_id, image_id, split, role, defect_class, S_alpha, MAE, adp_E, adp_F,"
                " weighted_F, pred_area, pred_any, gt_area, height, width, map_path, image_path, mask_path, scores)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(job_id, r.image_id, r.split, r.role, r.defect_class,
                  *(float(r.fields[k]) if r.fields.get(k) is not None else None for k in SCALARS),
                  float(r.pred_area), int(r.pred_any), float(r.gt_area), int(r.height), int(r.width), r.map_path,
                  r.image_path, r.mask_path, encode_fields(r.fields)) for r in rows],
            )
            self.conn.execute(
                "UPDATE jobs SET status = 'done', error = NULL, finished = ?, seconds = ?, timings = ?, run_dir = ?,"
                " maps_dir = ?, n_images = ?, info = ? WHERE job_id = ?",
                (time.time(), seconds, json.dumps(timings), run_dir, maps_dir, len(rows),
                 json.dumps(info, default=str), job_id),
            )

    def finish_speed(self, job_id: str, rec: SpeedRecord, seconds: float, info: dict[str, Any]) -> None:
        """Store a speed measurement and mark its job done, in one transaction."""
        with self.conn:
            self._put_speed(rec)
            self.conn.execute(
                "UPDATE jobs SET status = 'done', error = NULL, finished = ?, seconds = ?, n_images = ?, info = ?"
                " WHERE job_id = ?", (time.time(), seconds, rec.iters, json.dumps(info, default=str), job_id))

    def put_speed(self, rec: SpeedRecord) -> None:
        """Store (or replace) a speed measurement made outside the job matrix (``defectbench speed --store``)."""
        with self.conn:
            self._put_speed(rec)

    def _put_speed(self, rec: SpeedRecord) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO speed (job_id, method, model, what, device, device_desc, image_size, params_m,"
            " model_mb, fps, iters, seconds, measured) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.job_id, rec.method, rec.model, rec.what, rec.device, rec.device_desc, rec.image_size, rec.params_m,
             rec.model_mb, rec.fps, rec.iters, rec.seconds, rec.measured),
        )

    # -- results ----------------------------------------------------------------------------------------
    def image_rows(self, job_ids: Sequence[str] | None = None, roles: Sequence[str] | None = None,
                   with_scores: bool = True) -> list[ImageRow]:
        """Return per-image rows (optionally of some jobs / roles), each with its full score fields."""
        sql = "SELECT * FROM images"
        where, args = [], []
        if job_ids is not None:
            where.append(f"job_id IN ({', '.join('?' * len(job_ids))})")
            args += list(job_ids)
        if roles is not None:
            where.append(f"role IN ({', '.join('?' * len(roles))})")
            args += list(roles)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY job_id, role, image_id"
        out = []
        for r in self.conn.execute(sql, args):
            fields = decode_fields(r["scores"]) if with_scores and r["scores"] is not None else {k: r[k] for k in SCALARS}
            out.append(ImageRow(r["job_id"], r["image_id"], r["split"], r["role"], r["defect_class"], fields,
                                r["pred_area"], bool(r["pred_any"]), r["gt_area"], r["height"], r["width"], r["map_path"],
                                r["image_path"], r["mask_path"]))
        return out

    def count_images(self) -> int:
        """Return the number of per-image rows."""
        return int(self.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def speed_rows(self) -> list[SpeedRecord]:
        """Return every stored speed measurement."""
        return [SpeedRecord(**{k: r[k] for k in r.keys()}) for r in self.conn.execute("SELECT * FROM speed ORDER BY job_id")]


def _result_hash(stored_spec: str | None) -> str | None:
    """The fingerprint of a stored spec under today's rule (None when unreadable)."""
    from defectbench.bench.config import spec_hash
    from defectbench.bench.jobs import result_spec

    try:
        return spec_hash(result_spec(json.loads(stored_spec or "")))
    except (ValueError, TypeError, AttributeError):
        return None


def _job_record(r: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=r["job_id"], kind=r["kind"], method=r["method"], method_type=r["method_type"], status=r["status"],
        dataset=r["dataset"], dataset_name=r["dataset_name"], task=r["task"], train_split=r["train_split"],
        test_split=r["test_split"], label=r["label"], model=r["model"], uses_gt=bool(r["uses_gt"]), seed=r["seed"],
        spec_hash=r["spec_hash"], error=r["error"], attempts=r["attempts"] or 0, started=r["started"],
        finished=r["finished"], seconds=r["seconds"], timings=json.loads(r["timings"]) if r["timings"] else {},
        device=r["device"], device_desc=r["device_desc"], run_dir=r["run_dir"], maps_dir=r["maps_dir"],
        n_images=r["n_images"], info=json.loads(r["info"]) if r["info"] else {}, position=r["position"],
        pid=r["pid"], host=r["host"], git_commit=r["git_commit"], versions=json.loads(r["versions"]) if r["versions"] else {},
        labels=r["labels"] if "labels" in r.keys() else None,
        corruption=r["corruption"] if "corruption" in r.keys() else None,
    )
