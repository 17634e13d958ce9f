"""The pieces every HTML page of scratchcnn is built from: the style sheet, tables, numbers, embedded figures.

A page links to nothing: its style is inline and its figures are PNG data: URIs (report.py, the sections
beside it, sweep_report.py).
"""

from __future__ import annotations

import base64
import math
from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222;
       line-height: 1.45; }
h1, h2 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; } td, th { padding: .25em .8em; border: 1px solid #ddd; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #fff6cc; font-weight: 600; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .95em; }
.note { background: #fff4e5; border-left: 4px solid #f0a030; padding: .5em 1em; }
.eq { font-family: "Cambria Math", "STIX Two Math", serif; font-size: 1.1em; }
"""


def fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else format(value, spec)
    return str(value)


def pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2%}"


def count(size: float | int) -> str:
    """A validation size as given: a fraction below 1 as a percentage, else a number of records."""
    return f"{size:.0%}" if isinstance(size, float) and size < 1 else str(size)


def table(header: list[str], rows: list[list[str]], numeric_from: int = 1, best: int | None = None) -> str:
    """An HTML table of already-formatted text (escaped here); row ``best`` highlighted."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for n, row in enumerate(rows):
        cells = "".join(f'<td{" class=num" if i >= numeric_from else ""}>{escape(c)}</td>' for i, c in enumerate(row))
        body.append(f'<tr{" class=best" if n == best else ""}>{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def figure_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")
