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
    _prompt_args(pr)
    add_data_root(pr)
    pr.set_defaults(func=run_predict)

    v = ss.add_parser("viz", help="draw an image's proposals and the selected masks (PNG)")
    v.add_argument("images", nargs="+", help="image files")
    _model_args(v)
    v.add_argument("--select", default="prior", help="strategy for the right panel (oracles need --gt-dir)")
    v.add_argument("--gt-dir", default=None, help="folder of ground-truth masks (same stems) to outline and for oracles")
    v.add_argument("--out", required=True, help="output folder for <stem>_sam.png")
    _prompt_args(v)
    v.set_defaults(func=run_viz)


def _prompt_args(p: argparse.ArgumentParser) -> None:
    from defectbench.methods.sam.prompts import MODES

    p.add_argument("--prompt", default=None, metavar="MODE", help=f"prompt SAM instead of automatic masks: {', '.join(MODES)} "
                   "(from the ground truth: ORACLE) or, with --prompts-from, from a light model's map")
    p.add_argument("--k", type=int, default=1, help="points of --prompt interactive (default 1)")
    p.add_argument("--jitter", type=float, default=0.0, help="move box edges / points by up to this fraction of the "
                   "box (seeded; in [0, 1); default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter (default 0)")
    p.add_argument("--choice", default="score", help="which of SAM's 3 masks: score (its highest predicted IoU, "
                   "default) or oracle (best against the ground truth)")
    p.add_argument("--prompts-from", default=None, metavar="MODEL:WEIGHTS",
                   help="prompts from a saliency model's map, e.g. litenet:sd900 (shipped weights) or litenet:PATH.pt")
    p.add_argument("--threshold", default="0.5", help="threshold of that map: a number in (0, 1), otsu or adaptive "
                   "(default 0.5)")
    p.add_argument("--min-area", type=float, default=0.0005, help="drop components smaller than this fraction of "
                   "the image (default 0.0005)")
    p.add_argument("--fuse", default="union", help="output with --prompts-from: union (SAM's masks, default) or mean "
                   "((SAM + light map) / 2)")


def prompt_settings(args: argparse.Namespace) -> dict:
    """The prompt options of the command line, checked (one ConfigError line) before any work."""
    from defectbench.methods.sam.prompted import PromptSettings
    from defectbench.methods.sam.prompts import check_threshold

    try:
        threshold = check_threshold(float(args.threshold))
    except ValueError:
        threshold = check_threshold(args.threshold)
    values = {"mode": args.prompt, "choice": args.choice, "k": args.k, "jitter": args.jitter, "seed": args.seed,
              "threshold": threshold, "min_area": args.min_area, "fuse": args.fuse}
    PromptSettings(args.prompt, args.choice, args.jitter, args.k, args.seed, args.prompts_from is not None, threshold,
                   args.min_area, args.fuse)
    if not 0.0 <= args.min_area < 1.0:
        from defectbench.errors import ConfigError

        raise ConfigError(f"--min-area must be a fraction in [0, 1), got {args.min_area}")
    return values


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

    if args.prompt is not None:
        return run_predict_prompted(args)

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


def run_predict_prompted(args: argparse.Namespace) -> int:
    """``sam predict --prompt``: a prompt protocol's maps, records and run.json; print the summary."""
    from defectbench.methods.sam.prompted import predict_prompted_dataset

    settings = prompt_settings(args)
    oracle = args.prompts_from is None or args.choice == "oracle"
    if oracle:
        err_console.print(f"[bold yellow]ORACLE[/]: {args.prompt} prompts" + (" placed from each image's ground truth"
                          if args.prompts_from is None else " with the mask chosen against the ground truth"))
    from defectbench.bench.families.sam_prompt import light_from_spec

    light = light_from_spec(args.prompts_from) if args.prompts_from else None
    rec = predict_prompted_dataset(
        args.model, args.dataset, args.split, args.out, prompts_from=args.prompts_from, light=light,
        checkpoint=args.checkpoint,
        device=args.device, cache_dir=args.cache_dir, random_seed=args.random_weights, limit=args.limit,
        evaluate=not args.no_eval, data_root=args.data_root, allow_unofficial=args.allow_unofficial, **settings)
    run = rec["sam"]["this_run"]
    console.print(f"{rec['method']}: {rec['maps_written']} maps written, {rec['maps_kept']} already there; encoder ran "
                  f"on {run['encoder_calls']} images ({run['cached_embeddings']} from cache), {run['decoder_calls']} "
                  f"decoder calls -> {args.out}", markup=False)
    m = rec.get("metrics")
    if m and m.get("n"):
        tag = " (ORACLE)" if oracle else ""
        console.print(f"metrics{tag}: S_alpha {m['S_alpha']:.3f}  MAE {m['MAE']:.3f}  max_E {m['max_E']:.3f}  "
                      f"weighted_F {m['weighted_F']:.3f}  max_F {m['max_F']:.3f}", markup=False)
    for j, c in (rec.get("curve") or {}).items():
        if c.get("n"):
            console.print(f"  {j} point(s): S_alpha {c['S_alpha']:.3f}  max_F {c['max_F']:.3f}  MAE {c['MAE']:.3f}",
                          markup=False)
    return 0


def run_viz_prompted(args: argparse.Namespace) -> int:
    """``sam viz --prompt``: each image with its prompts drawn, and SAM's answer."""
    from defectbench.data import read_image, read_mask
    from defectbench.data.imageio import images_by_stem
    from defectbench.errors import DataError
    from defectbench.bench.families.sam_prompt import light_from_spec
    from defectbench.methods.sam.prompted import PromptedSam, PromptedSamMethod, PromptSettings
    from defectbench.methods.sam.viz import draw_prompts, write_png

    s = prompt_settings(args)
    settings = PromptSettings(s["mode"], s["choice"], s["jitter"], s["k"], s["seed"], args.prompts_from is not None,
                              s["threshold"], s["min_area"], s["fuse"])
    if settings.oracle and not args.gt_dir:
        raise DataError(f"{args.prompt} prompts read the ground truth: pass --gt-dir (or --prompts-from MODEL:WEIGHTS)")
    masks = images_by_stem(args.gt_dir, "--gt-dir folder") if args.gt_dir else {}
    paths = checked_viz_images(args.images, masks, args.gt_dir, settings.oracle)
    light, light_name = light_from_spec(args.prompts_from) if args.prompts_from else (None, None)
    sam = PromptedSam(args.model, args.checkpoint, args.device, args.cache_dir, args.random_weights,
                      args.allow_unofficial)
    method = PromptedSamMethod(sam, settings, light, light_name)
    out = Path(args.out)
    for path in paths:
        image = read_image(path)
        gt = read_mask(masks[path.stem]) if path.stem in masks else None
        res, lmap = method.result(image, gt, None, path.stem)
        target = out / f"{path.stem}_sam_{args.prompt}.png"
        shown = res.prompts[-1:] if args.prompt == "interactive" else res.prompts  # interactive: all points so far
        write_png(target, draw_prompts(image, shown, res.map, gt, lmap))
        n_pts = sum(len(p.points) for p in shown)
        console.print(f"{path.name}: {len(res.prompts)} prompt(s), {n_pts} point(s) -> {target}", markup=False)
    return 0


def checked_viz_images(names: list[str], masks: dict[str, Path], gt_dir: str | None, need_mask: bool) -> list[Path]:
    """Return the image paths of ``sam viz``, each checked (exists; has a mask when ``need_mask``) before SAM loads."""
    from defectbench.errors import DataError

    paths = [Path(name) for name in names]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: image not found")
        if need_mask and path.stem not in masks:
            raise DataError(f"{gt_dir}: no mask with the stem {path.stem!r} (masks are matched by exact file stem)")
    return paths


def run_viz(args: argparse.Namespace) -> int:
    """Draw each image's proposals and selection (or, with ``--prompt``, its prompts and SAM's answer)."""
    if args.prompt is not None:
        return run_viz_prompted(args)
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
    paths = checked_viz_images(args.images, masks, args.gt_dir, bool(args.gt_dir))
    for path in paths:
        image = read_image(path)
        gt = read_mask(masks[path.stem]) if args.gt_dir else None
        props = source.get(to_rgb(image))
        sel, _ = select(props, image, cfg, gt)
        target = out / f"{path.stem}_sam.png"
        write_png(target, draw(image, props, sel, gt))
        console.print(f"{path.name}: {len(props)} proposals, {len(sel.chosen)} selected -> {target}", markup=False)
    return 0
