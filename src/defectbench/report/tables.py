"""A small table model and its renderers: Markdown, CSV, LaTeX (booktabs) and HTML.

A :class:`Table` has columns and rows of :class:`Cell` values (number, optional ± std over seeds, or text);
rows belong to groups (our methods, gap rows, the paper's rows) that renderers separate; the best value of
a column within a group is marked (bold in Markdown / LaTeX, class ``best`` in HTML, ``best`` flags in CSV).
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field


@dataclass
class Column:
    """A table column: key, header text, whether higher is better (None: not ranked), decimals."""

    key: str
    header: str
    higher_better: bool | None = None
    digits: int = 3
    percent: bool = False


@dataclass
class Cell:
    """One table cell: a number (with optional std over seeds) or a text."""

    value: float | None = None
    std: float | None = None
    text: str | None = None
    best: bool = False

    def format(self, col: Column) -> str:
        """Return the cell as plain text (``0.812 ± 0.004``, ``12.5%``, or its text)."""
        if self.text is not None:
            return self.text
        if self.value is None:
            return "–"
        scale, unit = (100.0, "%") if col.percent else (1.0, "")
        out = f"{self.value * scale:.{col.digits}f}{unit}"
        if self.std is not None:
            out += f" ± {self.std * scale:.{col.digits}f}{unit}"
        return out


@dataclass
class Row:
    """A table row: cells by column key and the group it belongs to."""

    cells: dict[str, Cell]
    group: str = "ours"
    ranked: bool = True


@dataclass
class Table:
    """A titled table with column definitions, grouped rows and notes."""

    key: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_titles: dict[str, str] = field(default_factory=dict)

    def add(self, group: str = "ours", ranked: bool = True, **cells: Cell | str | float | None) -> Row:
        """Append a row; plain strings / numbers become cells."""
        row = Row({k: _cell(v) for k, v in cells.items()}, group, ranked)
        self.rows.append(row)
        return row

    def mark_best(self) -> None:
        """Mark the best value of every ranked column within each group of ranked rows."""
        for col in self.columns:
            if col.higher_better is None:
                continue
            for group in {r.group for r in self.rows}:
                cells = [r.cells.get(col.key) for r in self.rows if r.group == group and r.ranked]
                vals = [c.value for c in cells if c is not None and c.value is not None and c.text is None]
                if not vals:
                    continue
                best = max(vals) if col.higher_better else min(vals)
                for c in cells:
                    if c is not None and c.value is not None and c.text is None and round(c.value, col.digits) == round(best, col.digits):
                        c.best = True

    def groups(self) -> list[tuple[str, list[Row]]]:
        """Return the rows grouped, in first-seen group order."""
        order: list[str] = []
        for r in self.rows:
            if r.group not in order:
                order.append(r.group)
        return [(g, [r for r in self.rows if r.group == g]) for g in order]

    # -- renderers ----------------------------------------------------------------------------------------
    def to_markdown(self) -> str:
        """Render as GitHub Markdown (best values in bold; groups separated by a titled row)."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(c.header for c in self.columns) + " |")
        lines.append("| " + " | ".join("---:" if c.higher_better is not None or c.percent else "---" for c in self.columns) + " |")
        multi = len(self.groups()) > 1
        for group, rows in self.groups():
            if multi and group in self.group_titles:
                lines.append("| " + " | ".join([f"*{self.group_titles[group]}*"] + [""] * (len(self.columns) - 1)) + " |")
            for r in rows:
                cells = []
                for c in self.columns:
                    cell = r.cells.get(c.key, Cell())
                    text = _md_escape(cell.format(c))
                    cells.append(f"**{text}**" if cell.best else text)
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"{n}  " for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def to_csv(self) -> str:
        """Render as CSV: one column per value, ``<key>_std`` for seed spreads, ``<key>_best`` flags, a ``group`` column."""
        buf = io.StringIO()
        w = csv.writer(buf)
        header = ["group"]
        for c in self.columns:
            header.append(c.key)
            if c.higher_better is not None or c.percent:
                header += [f"{c.key}_std", f"{c.key}_best"]
        w.writerow(header)
        for r in self.rows:
            line = [r.group]
            for c in self.columns:
                cell = r.cells.get(c.key, Cell())
                if c.higher_better is not None or c.percent:
                    line += [cell.text if cell.text is not None else ("" if cell.value is None else repr(round(cell.value, 6))),
                             "" if cell.std is None else repr(round(cell.std, 6)), int(cell.best)]
                else:
                    line.append(cell.format(c) if (cell.text is not None or cell.value is not None) else "")
            w.writerow(line)
        return buf.getvalue()

    def to_latex(self) -> str:
        """Render as a LaTeX ``table`` with booktabs rules (best values in bold)."""
        align = "".join("r" if (c.higher_better is not None or c.percent) else "l" for c in self.columns)
        out = ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex(self.title)}}}", f"\\label{{tab:{self.key}}}",
               f"\\begin{{tabular}}{{{align}}}", "\\toprule",
               " & ".join(_tex(c.header) for c in self.columns) + " \\\\", "\\midrule"]
        for i, (group, rows) in enumerate(self.groups()):
            if i:
                out.append("\\midrule")
            if group in self.group_titles and len(self.groups()) > 1:
                out.append(f"\\multicolumn{{{len(self.columns)}}}{{l}}{{\\emph{{{_tex(self.group_titles[group])}}}}} \\\\")
            for r in rows:
                cells = []
                for c in self.columns:
                    cell = r.cells.get(c.key, Cell())
                    text = _tex(cell.format(c))
                    cells.append(f"\\textbf{{{text}}}" if cell.best else text)
                out.append(" & ".join(cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        if self.notes:
            out.append("\\\\[2pt]{\\footnotesize " + " ".join(_tex(n) for n in self.notes) + "}")
        out.append("\\end{table}")
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        """Render as an HTML ``<table>`` (class ``best`` on best cells, one ``<tbody>`` per group)."""
        out = [f'<table class="results" id="{html.escape(self.key)}">',
               f"<caption>{html.escape(self.title)}</caption>", "<thead><tr>"]
        out += [f"<th>{html.escape(c.header)}</th>" for c in self.columns]
        out.append("</tr></thead>")
        for group, rows in self.groups():
            out.append(f'<tbody class="group-{html.escape(group)}">')
            if group in self.group_titles and len(self.groups()) > 1:
                out.append(f'<tr class="group-title"><th colspan="{len(self.columns)}">{html.escape(self.group_titles[group])}</th></tr>')
            for r in rows:
                out.append("<tr>")
                for c in self.columns:
                    cell = r.cells.get(c.key, Cell())
                    numeric = c.higher_better is not None or c.percent or (cell.value is not None and cell.text is None)
                    classes = " ".join(x for x in ("best" if cell.best else "", "num" if numeric else "") if x)
                    attr = f' class="{classes}"' if classes else ""
                    out.append(f"<td{attr}>{html.escape(cell.format(c))}</td>")
                out.append("</tr>")
            out.append("</tbody>")
        out.append("</table>")
        if self.notes:
            out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(out) + "\n"


def _cell(v: Cell | str | float | int | None) -> Cell:
    if isinstance(v, Cell):
        return v
    if v is None:
        return Cell()
    if isinstance(v, str):
        return Cell(text=v)
    return Cell(value=float(v))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_TEX = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_", "{": "\\{",
        "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "±": "$\\pm$", "↑": "$\\uparrow$",
        "↓": "$\\downarrow$", "−": "$-$", "–": "--", "×": "$\\times$", "Δ": "$\\Delta$", "≥": "$\\geq$", "α": "$\\alpha$",
        "β": "$\\beta$", "²": "$^2$", "—": "---", "·": "$\\cdot$",
        "…": "\\ldots{}", "’": "'", "“": "``", "”": "''"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)
