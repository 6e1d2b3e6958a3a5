"""``defectbench run | status | speed``: run an experiment matrix, show where it stands, time models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from defectbench.cli.common import add_data_root, add_device, console, err_console, positive_float, positive_int

if TYPE_CHECKING:
    from defectbench.bench.config import ExperimentConfig
    from defectbench.bench.ray_backend import RayBackend
    from defectbench.bench.runner import Backend


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run``, ``status`` and ``speed`` verbs."""
    p = sub.add_parser("run", help="run an experiment config's job matrix (resumable; finished jobs are kept)")
    p.add_argument("config", help="experiment YAML, e.g. configs/quick.yaml")
    p.add_argument("--runs-dir", default="runs", help="where experiments live (default: runs/)")
    add_data_root(p)
    add_device(p, None, "override the config's device: auto, cpu, cuda or cuda:N")
    p.add_argument("--only", action="append", metavar="GLOB",
                   help="run only jobs whose id matches (e.g. 'mt-*/litenet/*'); repeatable")
    p.add_argument("--rerun-changed", action="store_true",
                   help="recompute finished jobs whose settings in the config changed (else that is an error)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs, check every dataset, split and weight file "
                   "they open and exit (status 2 when something is missing, with the command that gets it)")
    p.add_argument("--report", action="store_true", help="write the report when the run ends")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the jobs as Ray tasks on the cluster at ADDRESS ('auto': the one running here), or on a "
                        "local cluster started for the run when no ADDRESS is given (put --ray after CONFIG)")
    p.add_argument("--gpus", metavar="LIST", help="run one job per GPU at once on this machine: GPU indices "
                   "(e.g. 0,1,2,3) or 'all'; this process alone writes the store (not with --ray or --device)")
    p.add_argument("--artifacts", metavar="DIR", help="with --ray: a folder every node sees at the same path; workers "
                   "write job folders (maps, metrics) there (default: they are sent back to this machine)")
    p.set_defaults(func=run)

    s = sub.add_parser("status", help="show an experiment's job matrix: done / running / failed / pending, time spent")
    s.add_argument("experiment", help="experiment folder, e.g. runs/quick")
    s.add_argument("--all", action="store_true", help="list every job (default: a summary plus unfinished jobs)")
    s.set_defaults(func=status)

    t = sub.add_parser("speed", help="measure parameters, model size and batch-1 FPS (the paper's Table 7)")
    t.add_argument("models", nargs="*",
                   help="saliency model names and/or sam-vit_b, sam-vit_l, sam-vit_h (default: every saliency model)")
    add_device(t, help="where to time: auto, cpu, cuda or cuda:N (default: auto)")
    t.add_argument("--image-size", type=positive_int, default=352, help="input size of saliency models (default: 352)")
    t.add_argument("--sam-mode", default="encoder", choices=("encoder", "amg"),
                   help="SAM: time the image encoder alone or encoder + automatic mask generation")
    t.add_argument("--max-seconds", type=positive_float, default=10.0, help="timing budget per model (default: 10)")
    t.add_argument("--store", metavar="EXPERIMENT", help="also store the numbers in this experiment (runs/<name>) for its report")
    t.add_argument("--json", help="write the measurements to this JSON file")
    t.set_defaults(func=speed)


def run(args: argparse.Namespace) -> int:
    """Run (or resume) an experiment."""
    from defectbench.bench import expand_jobs, load_config, run_experiment

    config = load_config(args.config)
    if not args.dry_run:
        from defectbench.paths import prepare_output_dir

        prepare_output_dir(args.runs_dir, "--runs-dir folder")
    if args.dry_run:
        return dry_run(args, config)
    backend = _backend(args)
    err_console.print(f"experiment {config.experiment}: {len(expand_jobs(config))} jobs in "
                      f"{Path(args.runs_dir) / config.experiment}", highlight=False)
    summary = run_experiment(config, args.runs_dir, data_root=args.data_root, device=args.device, only=args.only,
                             rerun_changed=args.rerun_changed, progress=err_console.is_terminal,
                             log=lambda line: err_console.print(line, highlight=False, markup=False),
                             backend=backend)
    from defectbench.formatting import format_seconds

    console.print(f"{len(summary.done)} done now, {len(summary.already_done)} already done, "
                  f"{len(summary.skipped)} skipped, {len(summary.failed)} failed in {format_seconds(summary.seconds)}",
                  highlight=False)
    for job_id, msg in summary.failed.items():
        console.print(f"[red]failed[/] {job_id}: {msg}", highlight=False)
    if args.report:
        from defectbench.report import write_report

        index = write_report(summary.experiment_dir)
        console.print(f"report: {index}", highlight=False)
    else:
        console.print(f"next: defectbench report {summary.experiment_dir}", highlight=False)
    return 1 if summary.failed else 0


def dry_run(args: argparse.Namespace, config: ExperimentConfig) -> int:
    """List the jobs (what a run would do with each), then one table of every missing file with the commands that
    get them; exit status 2 when anything is missing."""
    from rich.table import Table

    from defectbench.bench import expand_jobs
    from defectbench.bench.executors import preflight
    from defectbench.bench.needs import check_config

    jobs = expand_jobs(config)
    errors = 0
    for job in jobs:
        state, message = preflight(job)
        errors += state == "error"
        shown = {"ok": "", "skip": "  [would skip] ", "error": "  [ERROR] "}[state] + (message if state != "ok" else "")
        console.print(f"{job.id}{shown}", highlight=False, markup=False)
    console.print(f"{len(jobs)} jobs in {Path(args.runs_dir) / config.experiment}"
                  + (f"; {errors} with missing files (see [ERROR] lines)" if errors else ""), highlight=False, markup=False)
    missing = check_config(config, args.config, args.data_root)
    if not missing:
        console.print("every dataset, split and weight file the jobs open is present", highlight=False)
        return 2 if errors else 0
    table = Table(title=f"missing or unusable ({len(missing)}): the jobs opening them would fail or be skipped")
    for col in ("kind", "what", "needed by", "problem", "get it with"):
        table.add_column(col, overflow="fold")
    for m in missing:
        needed_by = m.jobs[0] if len(m.jobs) == 1 else f"{len(m.jobs)} jobs ({m.jobs[0]}, ...)"
        table.add_row(m.kind, m.name, needed_by, m.problem, m.fix)
    console.print(table)
    console.print("get them with:", highlight=False)
    for fix in dict.fromkeys(m.fix for m in missing):
        console.print(f"  {fix}", highlight=False, markup=False)
    return 2


def _backend(args: argparse.Namespace) -> Backend | None:
    """Return the backend the options ask for: ``--gpus`` (one worker per GPU), ``--ray``, else None (here)."""
    if args.gpus is None:
        return _ray_backend(args)
    from defectbench.errors import ConfigError

    if args.ray is not None:
        raise ConfigError(f"--gpus {args.gpus} runs on this machine's GPUs and --ray on a Ray cluster; use one of them "
                          "(a Ray cluster gives each job a GPU by itself)")
    if args.device is not None:
        raise ConfigError(f"--gpus {args.gpus} sets each job's device (cuda:N); drop --device {args.device}")
    if args.artifacts:
        raise ConfigError(f"--artifacts {args.artifacts}: only Ray runs write artifacts elsewhere; drop it with --gpus")
    from defectbench.bench.device_pool import DevicePoolBackend, resolve_gpus

    return DevicePoolBackend(resolve_gpus(args.gpus))


def _ray_backend(args: argparse.Namespace) -> RayBackend | None:
    """Return the Ray backend that ``--ray [ADDRESS]`` / ``--artifacts DIR`` ask for (None: run here)."""
    if args.ray is None:
        if args.artifacts:
            from defectbench.errors import ConfigError

            raise ConfigError(f"--artifacts {args.artifacts}: only Ray runs write artifacts elsewhere; add --ray [ADDRESS]")
        return None
    from defectbench.bench.ray_backend import RayBackend

    return RayBackend(args.ray or None, args.artifacts)


def status(args: argparse.Namespace) -> int:
    """Print the job matrix of an experiment."""
    from rich.table import Table

    from defectbench.bench import experiment_status
    from defectbench.formatting import format_seconds

    st = experiment_status(args.experiment)
    colours = {"done": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "skipped": "magenta",
               "pending": "white"}
    rows, cols, cells = st.matrix()
    grid = Table(title=f"{st.experiment_dir}: job matrix (states over seeds)")
    grid.add_column("method")
    for c in cols:
        grid.add_column(c)
    for r in rows:
        out = []
        for c in cols:
            counts = cells.get((r, c))
            out.append(" ".join(f"[{colours.get(k, 'white')}]{n} {k}[/]" for k, n in sorted(counts.items()))
                       if counts else "")
        grid.add_row(r, *out)
    console.print(grid)
    table = Table(title=f"{'every job' if args.all else 'jobs not done'} — "
                        f"{'a runner is active' if st.active else 'no runner active'}")
    for col in ("job", "state", "time", "images", "note"):
        table.add_column(col, overflow="fold")
    for job in st.jobs:
        state = st.states[job.job_id]
        if not args.all and state == "done":
            continue
        note = job.error or ""
        if state == "running":
            note = f"pid {job.pid} on {job.host}"
        table.add_row(job.job_id, f"[{colours.get(state, 'white')}]{state}[/]", format_seconds(job.seconds),
                      str(job.n_images or ""), note)
    if table.row_count:
        console.print(table)
    counts = st.counts()
    parts = [f"{counts.get(k, 0)} {k}" for k in ("done", "running", "interrupted", "failed", "skipped", "pending") if counts.get(k)]
    console.print(f"{len(st.jobs)} jobs: {', '.join(parts)}; {st.n_images} image rows; time spent "
                  f"{format_seconds(st.seconds_spent)}", highlight=False)
    if counts.get("interrupted"):
        console.print("interrupted jobs run again with the same `defectbench run <config>`", highlight=False)
    return 0


def speed(args: argparse.Namespace) -> int:
    """Measure models and print (and optionally store) Table 7's numbers."""
    from rich.table import Table

    from defectbench.atomic import atomic_write_json
    from defectbench.bench.speed import available_models, measure_named
    from defectbench.runtime import resolve_device

    if args.json:
        from defectbench.paths import prepare_output_file

        prepare_output_file(args.json, "--json file")
    device = resolve_device(args.device)
    names = args.models or [m for m in available_models() if not m.startswith("sam-")]
    records = []
    for name in names:
        err_console.print(f"timing {name} on {device} …", highlight=False)
        records.append(measure_named(name, device, args.image_size, args.sam_mode, args.max_seconds))
    table = Table(title=f"speed on {records[0].device_desc if records else device}")
    for col in ("model", "what", "input", "params (M)", "size (MB)", "FPS (batch 1)", "timed"):
        table.add_column(col, justify="right" if col not in ("model", "what") else "left")
    for r in records:
        table.add_row(r.model, r.what, f"{r.image_size}", f"{r.params_m:.1f}", f"{r.model_mb:.1f}", f"{r.fps:.2f}",
                      f"{r.iters} in {r.seconds:.1f} s")
    console.print(table)
    if args.json:
        atomic_write_json(args.json, [r.__dict__ for r in records])
    if args.store:
        from defectbench.bench import STORE_NAME, ResultsStore

        with ResultsStore(Path(args.store) / STORE_NAME) as store:
            for r in records:
                store.put_speed(r)
        console.print(f"stored in {Path(args.store) / STORE_NAME}", highlight=False)
    return 0
