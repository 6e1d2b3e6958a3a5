"""``defectbench sam checkpoints|predict|viz``: SAM-family models, automatic masks and mask selection."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectbench.cli.common import add_data_root, add_device, console, err_console, positive_int

AMG_FLAGS = (
    ("points_per_side", int, "points per side of the prompt grid (default 32)"),
    ("points_per_batch", int, "prompts decoded together (default 64)"),
    ("pred_iou_thresh", float, "keep masks whose predicted IoU exceeds this (default 0.88; SAM 2.1: 0.8)"),
    ("stability_score_thresh", float, "keep masks with at least this stability score (default 0.95)"),
    ("stability_score_offset", float, "logit offset of the stability score (default 1.0)"),
    ("box_nms_thresh", float, "box IoU above which duplicate masks are suppressed (default 0.7)"),
    ("crop_n_layers", int, "extra layers of image crops (default 0)"),
    ("crop_nms_thresh", float, "box NMS threshold across crops (default 0.7)"),
    ("crop_overlap_ratio", float, "crop overlap (default 512/1500)"),
    ("crop_n_points_downscale_factor", int, "point-grid downscaling per crop layer (default 1)"),
    ("min_mask_region_area", int, "remove holes and islands smaller than this (default 0)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sam`` verb group."""
    p = sub.add_parser("sam", help="Segment Anything: checkpoints, automatic masks, mask selection")
    ss = p.add_subparsers(dest="sam_verb", metavar="<sam verb>")
    ss.required = True

    c = ss.add_parser("checkpoints", help="list every SAM-family model, its official file and whether it is found")
    c.add_argument("--verify", action="store_true", help="compute the SHA-256 of found files and compare")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=run_checkpoints)

    pr = ss.add_parser("predict", help="saliency maps of a dataset split from SAM proposals and a selection strategy")
    _model_args(pr)
    pr.add_argument("--dataset", required=True, help="sd900, mt, nrsd or folder:<path>")
    pr.add_argument("--split", default="test", help="split to predict (default: test)")
    pr.add_argument("--select", default="oracle-combine",
                    help="oracle-combine (paper), oracle-best, prior or learned (default: oracle-combine)")
    pr.add_argument("--output", default="binary", choices=("binary", "soft", "score"),
                    help="map kind: binary union (default), soft (mask logits) or score (GT-free strategies)")
    pr.add_argument("--out", required=True, help="output folder (maps/ and run.json)")
    pr.add_argument("--train-split", default=None, help="split the learned selector is fitted on (default: the "
                                                        "training counterpart of --split)")
    pr.add_argument("--limit", type=positive_int, default=None, help="only the first N images of the split")
    pr.add_argument("--train-limit", type=positive_int, default=None, help="only the first N training images (learned)")
    pr.add_argument("--no-eval", action="store_true", help="do not score the maps at the end")
    add_data_root(pr)
    pr.set_defaults(func=run_predict)

    v = ss.add_parser("viz", help="draw an image's proposals and the selected masks (PNG)")
    v.add_argument("images", nargs="+", help="image files")
    _model_args(v)
    v.add_argument("--select", default="prior", help="strategy for the right panel (oracles need --gt-dir)")
    v.add_argument("--gt-dir", default=None, help="folder of ground-truth masks (same stems) to outline and for oracles")
    v.add_argument("--out", required=True, help="output folder for <stem>_sam.png")
    v.set_defaults(func=run_viz)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="vit_b", help="vit_b, vit_l, vit_h, sam2.1_hiera_t/s/b+/l, mobile_sam (default vit_b)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the official file in "
                   "$DEFECTBENCH_CHECKPOINTS, else ~/.cache/defectbench/checkpoints, or torch hub's cache)")
    p.add_argument("--allow-unofficial", action="store_true",
                   help="use a checkpoint whose SHA-256 is not the official one (your own fine-tuned weights)")
    p.add_argument("--random-weights", type=int, default=None, metavar="SEED",
                   help="use randomly initialised weights (smoke tests only; results are meaningless)")
    p.add_argument("--generator", default="fast", choices=("fast", "official"), help="mask generator (default: fast)")
    p.add_argument("--cache-dir", default=None, help="proposal cache (default: $DEFECTBENCH_CACHE or ~/.cache/defectbench/sam)")
    p.add_argument("--amg-config", default=None, help="YAML file of automatic-mask-generation settings "
                                                      "(top level or under 'amg:'); flags override it")
    add_device(p)
    for name, typ, help_ in AMG_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=None, help=help_)


def amg_overrides(args: argparse.Namespace) -> dict:
    """AMG settings from ``--amg-config`` and the individual flags (flags win)."""

    values: dict = {}
    if args.amg_config:
        from defectbench.yamlio import load_yaml

        data = load_yaml(args.amg_config, "AMG config file")
        values.update(data.get("amg", data))
    for name, _, _ in AMG_FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return values


def run_checkpoints(args: argparse.Namespace) -> int:
    """Print the checkpoint table."""
    import json

    from defectbench.methods.sam.checkpoints import status_rows
    from defectbench.paths import CHECKPOINTS_ENV, weights_dir

    rows = status_rows(verify=args.verify)
    if args.json:
        console.print_json(json.dumps(rows))
        return 0
    from rich.table import Table

    table = Table(title=f"SAM-family checkpoints (checkpoints folder {weights_dir()}, set by ${CHECKPOINTS_ENV}; "
                        "`defectbench weights list` shows every weight file)")
    for col in ("model", "file", "size (bytes)", "sha256", "status", "download"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["model"], r["file"], str(r["size"]) if r["size"] else "unknown",
                      r["sha256"] or "unknown", r["status"], r["url"])
    console.print(table)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Write maps and run.json; print the summary."""
    from defectbench.methods.sam.predict import predict_dataset
    from defectbench.methods.sam.selection import STRATEGIES, is_oracle

    if args.select not in STRATEGIES:
        from defectbench.errors import ConfigError

        raise ConfigError(f"unknown --select {args.select!r}; choose one of {', '.join(STRATEGIES)}")
    if is_oracle(args.select):
        err_console.print(f"[bold yellow]ORACLE[/]: {args.select} reads each test image's ground truth to choose masks")
    rec = predict_dataset(
        args.model, args.dataset, args.split, args.select, args.out, checkpoint=args.checkpoint, device=args.device,
        cache_dir=args.cache_dir, amg_params=amg_overrides(args), generator=args.generator, output=args.output,
        random_seed=args.random_weights, train_split=args.train_split, limit=args.limit,
        train_limit=args.train_limit, evaluate=not args.no_eval, progress=True, data_root=args.data_root,
        allow_unofficial=args.allow_unofficial,
    )
    run = rec["this_run"]
    console.print(f"{rec['label']}: {run['maps_written']} maps written, {run['maps_skipped']} already there; "
                  f"SAM ran on {run['sam_images']} images ({run['cached_images']} from cache) -> {args.out}",
                  markup=False)
    m = rec.get("metrics")
    if m and m.get("n"):
        tag = " (ORACLE)" if rec["oracle"] else ""
        console.print(f"metrics{tag}: S_alpha {m['S_alpha']:.3f}  MAE {m['MAE']:.3f}  max_E {m['max_E']:.3f}  "
                      f"weighted_F {m['weighted_F']:.3f}  max_F {m['max_F']:.3f}  pixel max-F1 {m['pixel_max_f1']:.3f}",
                      markup=False)
    return 0


def run_viz(args: argparse.Namespace) -> int:
    """Draw each image's proposals and selection."""
    from defectbench.data import read_image, read_mask, to_rgb
    from defectbench.data.imageio import images_by_stem
    from defectbench.errors import DataError
    from defectbench.methods.sam.predict import ProposalSource, SelectionConfig, select
    from defectbench.methods.sam.selection import is_oracle
    from defectbench.methods.sam.viz import draw, write_png

    source = ProposalSource(args.model, args.checkpoint, args.device, args.cache_dir, amg_overrides(args),
                            args.generator, args.random_weights, allow_unofficial=args.allow_unofficial)
    cfg = SelectionConfig(args.select)
    if cfg.strategy == "learned":
        from defectbench.errors import ConfigError

        raise ConfigError("sam viz draws prior or oracle selections; the learned selector needs sam predict")
    out = Path(args.out)
    if is_oracle(cfg.strategy) and not args.gt_dir:
        raise DataError(f"{cfg.strategy} is an oracle: pass --gt-dir with the ground-truth masks")
    masks = images_by_stem(args.gt_dir, "--gt-dir folder") if args.gt_dir else {}
    paths = [Path(name) for name in args.images]
    for path in paths:  # every input is checked before SAM is loaded
        if not path.is_file():
            raise DataError(f"{path}: image not found")
        if args.gt_dir and path.stem not in masks:
            raise DataError(f"{args.gt_dir}: no mask with the stem {path.stem!r} (masks are matched by exact file stem)")
    for path in paths:
        image = read_image(path)
        gt = read_mask(masks[path.stem]) if args.gt_dir else None
        props = source.get(to_rgb(image))
        sel, _ = select(props, image, cfg, gt)
        target = out / f"{path.stem}_sam.png"
        write_png(target, draw(image, props, sel, gt))
        console.print(f"{path.name}: {len(props)} proposals, {len(sel.chosen)} selected -> {target}", markup=False)
    return 0
