"""``report.html``: one self-contained page a PI can open from an email.

Figures are embedded as base64 PNG (and also written to ``figures/*.png`` and ``*.svg``);
styles are inline; there is no script and no external resource (fonts, CSS, images), so the
file works offline and from a mail attachment.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from fishtrack.config import Config, dump_config

__all__ = ["Section", "FigureItem", "esc", "render_html", "table_html"]


@dataclass
class FigureItem:
    """One embedded figure."""

    name: str
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Section:
    """One report section: a heading, paragraphs/tables (already HTML) and figures."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)
    figures: list[FigureItem] = field(default_factory=list)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #1f3b73; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
nav a { margin-right: 1em; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; margin-top: 0.3em; }
.primary { background: #eef3fb; border-left: 4px solid #1f3b73; padding: 0.2em 0.9em; margin: 0.6em 0 1em; }
.primary p { margin: 0.5em 0; }
.note { background: #fff7e0; border-left: 4px solid #f0ad4e; padding: 0.4em 0.8em; margin: 0.4em 0; }
.bad { background: #fdecea; border-left: 4px solid #d9534f; padding: 0.4em 0.8em; margin: 0.4em 0; }
pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.scroll { max-height: 32em; overflow: auto; }
.wide { overflow-x: auto; }
"""


def esc(value: object) -> str:
    """HTML-escape any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        f = float(v)
        if not np.isfinite(f):
            return ""
        return f"{f:.0f}" if abs(f) >= 10 ** digits else f"{f:.{digits}g}"
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


def table_html(df: pd.DataFrame, *, max_rows: int = 500, digits: int = 3, scroll: bool = False) -> str:
    """A DataFrame as an escaped HTML table (numbers right-aligned)."""
    if df is None or df.empty:
        return "<p><em>none</em></p>"
    shown = df.head(max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
    rows = []
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
               for c in shown.columns]
    for rec in shown.itertuples(index=False):
        cells = []
        for v, isnum in zip(rec, numeric, strict=True):
            cls = ' class="num"' if isnum else ""
            cells.append(f"<td{cls}>{esc(_fmt(v, digits))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f"<p class=meta>{len(df) - max_rows} more rows in the CSV file.</p>"
            if len(df) > max_rows else "")
    tab = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="{"scroll" if scroll else "wide"}">{tab}</div>' + more


def _figure_html(f: FigureItem) -> str:
    b64 = base64.b64encode(f.png).decode("ascii")
    cap = f"<figcaption>{esc(f.caption)}</figcaption>" if f.caption else ""
    return (
        f'<figure id="fig-{esc(f.name)}"><img alt="{esc(f.title)}" '
        f'src="data:image/png;base64,{b64}">{cap}</figure>'
    )


def render_html(
    sections: list[Section],
    *,
    title: str,
    config: Config | None,
    versions: dict[str, str],
    subtitle: str = "",
) -> str:
    """The whole page."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(subtitle)} Generated {esc(now)}.</p>',
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>')
        parts.extend(s.blocks)
        parts.extend(_figure_html(f) for f in s.figures)
        parts.append("</section>")
    cfg_txt = dump_config(config) if config is not None else ""
    vers = pd.DataFrame(sorted(versions.items()), columns=["package", "version"])
    parts.append('<section id="config"><h2>Configuration and versions</h2>')
    parts.append("<p>The effective configuration used for the statistics (trials record "
                 "their own in <code>trials/*/provenance.json</code>):</p>")
    parts.append(f"<pre>{esc(cfg_txt)}</pre>")
    parts.append(table_html(vers))
    parts.append("</section></main></body></html>")
    return "\n".join(parts) + "\n"
