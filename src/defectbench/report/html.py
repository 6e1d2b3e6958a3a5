"""The static ``index.html`` that links every table (inline and as Markdown / CSV / LaTeX files) and figure."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

from defectbench.report.results import ExperimentResults
from defectbench.report.tables import Table

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table.results { border-collapse: collapse; margin: .8em 0; font-size: .85em; }
table.results caption { text-align: left; font-weight: 600; padding: .3em 0; }
table.results th, table.results td { border-bottom: 1px solid #e2e2e2; padding: .25em .6em; text-align: left; }
table.results td.num { text-align: right; white-space: nowrap; }
table.results td.best { color: #c00; font-weight: 700; }
tr.group-title th { text-align: left; background: #f4f4f4; font-style: italic; font-weight: 500; }
tbody.group-gap td, tbody.group-paper_gap td { color: #555; font-style: italic; }
tbody.group-paper td { color: #444; }
ul.notes { font-size: .8em; color: #555; margin-top: 0; }
.files { font-size: .8em; } .files a { margin-right: .6em; }
figure { display: inline-block; margin: .5em 1em .5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .8em; color: #555; }
.meta td { padding: .1em .8em .1em 0; font-size: .85em; vertical-align: top; }
.failed { color: #b00; } .skipped { color: #850; }
"""


@dataclass
class Section:
    """A titled part of the page: tables (with their file links) and figures (paths relative to the page)."""

    title: str
    anchor: str
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""


def _files(table: Table) -> str:
    links = " ".join(f'<a href="tables/{html.escape(table.key)}.{ext}">{ext}</a>' for ext in ("md", "csv", "tex"))
    return f'<div class="files">files: {links}</div>'


def _meta_rows(results: ExperimentResults) -> list[tuple[str, str]]:
    meta = results.meta
    last = meta.get("last_run", {}) or {}
    versions = last.get("versions", {}) or {}
    counts: dict[str, int] = {}
    for j in results.jobs:
        counts[j.status] = counts.get(j.status, 0) + 1
    return [
        ("experiment", str(meta.get("experiment", results.experiment_dir.name))),
        ("config hash", str(meta.get("config_hash", ""))),
        ("git commit", str(last.get("git_commit") or "unknown")),
        ("device", str(last.get("device_desc") or last.get("device") or "")),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("jobs", ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))),
        ("report written", dt.datetime.now().strftime("%Y-%m-%d %H:%M")),
    ]


def render_index(results: ExperimentResults, sections: list[Section], downloads: list[str]) -> str:
    """Return the HTML page."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>defectbench report — {html.escape(results.experiment_dir.name)}</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>defectbench report: {html.escape(results.experiment_dir.name)}</h1>",
           '<table class="meta">']
    out += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _meta_rows(results)]
    out.append("</table>")
    out.append("<nav><ul>" + "".join(f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a></li>'
                                     for s in sections) + "</ul></nav>")
    for s in sections:
        out.append(f'<section id="{html.escape(s.anchor)}"><h2>{html.escape(s.title)}</h2>')
        if s.text:
            out.append(s.text)
        for t in s.tables:
            out.append(t.to_html())
            out.append(_files(t))
        for src, caption in s.figures:
            out.append(f'<figure><a href="{html.escape(src)}"><img src="{html.escape(src)}" alt="{html.escape(caption)}"></a>'
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        out.append("</section>")
    out.append('<section id="downloads"><h2>All files</h2><ul class="files">')
    out += [f'<li><a href="{html.escape(d)}">{html.escape(d)}</a></li>' for d in downloads]
    out.append("</ul></section></body></html>")
    return "\n".join(out) + "\n"


def jobs_html(results: ExperimentResults) -> str:
    """Return an HTML list of the jobs that are not done, with their reasons."""
    bad = results.unfinished()
    if not bad:
        return "<p>Every job of the matrix is done.</p>"
    items = []
    for j in bad:
        cls = j.status if j.status in ("failed", "skipped") else ""
        reason = f": {html.escape(j.error)}" if j.error else ""
        items.append(f'<li class="{cls}"><code>{html.escape(j.job_id)}</code> — {html.escape(j.status)}{reason}</li>')
    return "<ul>" + "".join(items) + "</ul>"
