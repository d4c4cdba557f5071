"""Small SVG charts: inline in the explorer's pages, and written as files beside the Markdown
tables of ``evaluate`` (``reports/evaluate.svg``) and ``score`` (``reports/score.svg``). No plotting
library, no script, no external file; a chart is one ``<svg>`` element that a browser opens alone.

Every text that reaches a chart goes through :func:`escape` (visible controls, then HTML escape); numbers are formatted by
Python. The charts use presentation attributes only (no ``style``), so the report's
Content-Security-Policy (``style-src 'self'``) does not block them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup
from markupsafe import escape as _escape

from personaminer.terminal import visible

#: Colour-blind-safe palette (Okabe–Ito), one colour per persona.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def escape(text: str) -> Markup:
    """Log text for an SVG text node or title: control and bidi characters visible, then HTML-escaped."""
    return _escape(visible(str(text)))


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _frame(width: float, height: float, title: str, body: str) -> Markup:
    """One standalone ``<svg>`` element around ``body`` (built escaped), with its escaped title."""
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
                  f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>{body}</svg>')


def histogram(values: Sequence[float], *, bins: int = 10, lo: float = 0.0, hi: float = 1.0, width: int = 220,
              height: int = 60, title: str = "") -> Markup:
    """A histogram of ``values`` on [lo, hi] (a value outside is put in the end bin)."""
    counts = [0] * bins
    for v in values:
        if v is None or v != v:  # None or NaN: not counted
            continue
        k = int((min(max(v, lo), hi) - lo) / (hi - lo) * bins)
        counts[min(k, bins - 1)] += 1
    top = max(counts) or 1
    bw = width / bins
    bars = []
    for k, c in enumerate(counts):
        h = (height - 14) * c / top
        a, b = lo + k * (hi - lo) / bins, lo + (k + 1) * (hi - lo) / bins
        bars.append(f'<rect x="{k * bw + 1:.1f}" y="{height - 12 - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                    f'fill="#0072B2"><title>{a:.1f} to {b:.1f}: {c}</title></rect>')
    axis = (f'<text x="0" y="{height - 1}" font-size="9">{lo:g}</text>'
            f'<text x="{width}" y="{height - 1}" font-size="9" text-anchor="end">{hi:g}</text>')
    return _frame(width, height, title, "".join(bars) + axis)


Bar = tuple[str, float, tuple[float, float] | None]


def grouped_hbars(groups: Sequence[tuple[str, Sequence[Bar]]], *, width: int = 560, unit: str = "%",
                  scale: float = 100.0, title: str = "", digits: int = 1) -> Markup:
    """Horizontal bars in groups, each under its heading (an empty heading: none): (label, value in
    [0, 1], optional 95% interval), values shown x ``scale`` with ``digits`` decimals."""
    if not any(rows for _, rows in groups):
        return Markup("")
    label_w, bar_h, gap, head_h = 170, 14, 6, 18
    span = width - label_w - 60
    parts = []
    y = 2
    for heading, rows in groups:
        if not rows:
            continue
        if heading:
            parts.append(f'<text x="0" y="{y + 12}" font-size="12" font-weight="bold">{escape(heading)}</text>')
            y += head_h
        y = _bars(parts, rows, y, label_w, bar_h, gap, span, unit, scale, digits)
    height = y + 2
    return _frame(width, height, title, "".join(parts))


def _bars(parts: list[str], rows: Sequence[Bar], y0: float, label_w: int, bar_h: int, gap: int, span: float,
          unit: str, scale: float, digits: int) -> float:
    for i, (label, v, ci) in enumerate(rows):
        y = y0 + i * (bar_h + gap)
        w = max(0.0, min(1.0, v)) * span
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 3}" font-size="11" text-anchor="end">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#0072B2">'
                     f'<title>{escape(label)}: {v * scale:.{digits}f}{unit}</title></rect>')
        if ci is not None:
            x0, x1 = label_w + max(0.0, ci[0]) * span, label_w + min(1.0, ci[1]) * span
            parts.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" '
                         f'stroke="#000" stroke-width="1"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" font-size="11">'
                     f'{v * scale:.{digits}f}{unit}</text>')
    return y0 + len(rows) * (bar_h + gap)


def timeline(days: Sequence[tuple[dt.date, int]], personas: Sequence[tuple[str, Sequence[dt.date]]], *,
             width: int = 720, title: str = "") -> Markup:
    """The user's activity per day (grey bars) and, one row per persona, a mark on each day that one
    of its evidence memories covers, in the persona's colour: when each persona was active."""
    if not days:
        return Markup("")
    first, last = days[0][0], days[-1][0]
    span = max((last - first).days, 1)
    left, right, act_h, row_h = 150, 10, 40, 16
    height = act_h + 18 + row_h * len(personas) + 14
    plot = width - left - right

    def x(d: dt.date) -> float:
        return left + (d - first).days / span * plot

    top = max(n for _, n in days) or 1
    bw = max(plot / (span + 1) - 1, 1.0)
    parts = [f'<text x="{left - 6}" y="{act_h - 4}" font-size="10" text-anchor="end">actions per day</text>']
    for d, n in days:
        h = act_h * n / top
        parts.append(f'<rect x="{x(d):.1f}" y="{act_h - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="#999">'
                     f'<title>{d.isoformat()}: {n} actions</title></rect>')
    for i, (label, pdays) in enumerate(personas):
        y = act_h + 18 + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y + 10}" font-size="10" text-anchor="end">{escape(label[:24])}</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y + 6}" y2="{y + 6}" stroke="#ddd"/>')
        for d in sorted(set(pdays)):
            parts.append(f'<rect x="{x(d):.1f}" y="{y}" width="{max(bw, 3):.1f}" height="12" fill="{colour(i)}">'
                         f'<title>{escape(label)}: {d.isoformat()}</title></rect>')
    y_axis = height - 2
    parts.append(f'<text x="{left}" y="{y_axis}" font-size="9">{first.isoformat()}</text>'
                 f'<text x="{width - right}" y="{y_axis}" font-size="9" text-anchor="end">{last.isoformat()}</text>')
    return _frame(width, height, title, "".join(parts))


#: The quality terms drawn per builder by :func:`quality_chart`, in this order.
QUALITY_TERMS = ("final", "cohesion", "alignment", "truthfulness", "specificity", "distinctness", "coverage")


def _ci(d: dict[str, Any] | None) -> tuple[float, float] | None:
    if not d or d.get("mean") is None or d.get("se") is None:
        return None
    return (d["mean"] - 1.96 * d["se"], d["mean"] + 1.96 * d["se"])


def quality_chart(builders: Mapping[str, Mapping[str, Any]], *, title: str = "") -> Markup:
    """Quality terms per builder (a ``score`` summary's ``builders``: term -> mean/se), mean with a
    normal 95% interval (mean ± 1.96 se), one group per builder."""
    groups = []
    for builder, st in builders.items():
        rows = [(f"{t} (n={st[t]['n']})" if t == "final" else t, float(st[t]["mean"]), _ci(st[t]))
                for t in QUALITY_TERMS if isinstance(st.get(t), Mapping) and st[t].get("mean") is not None]
        groups.append((f"{builder}: {st.get('sets', '?')} sets", rows))
    return grouped_hbars(groups, unit="", scale=1.0, digits=3, title=title)


def evaluation_chart(report: Mapping[str, Any], *, k: int = 10, title: str = "") -> Markup:
    """HR@k per system with its bootstrap 95% interval, one group per protocol, best first (an
    ``evaluate`` report)."""
    groups = []
    for protocol, res in (report.get("results") or {}).items():
        rows = []
        for system, r in ((res or {}).get("all") or {}).items():
            h = (r or {}).get(f"hit@{k}") or {}
            if h.get("mean") is not None:
                ci = h.get("ci95")
                rows.append((system, float(h["mean"]), (float(ci[0]), float(ci[1])) if ci else None))
        rows.sort(key=lambda t: -t[1])
        groups.append((f"{protocol}: HR@{k}", rows))
    return grouped_hbars(groups, title=title)


def write(path: str | Path, chart: Markup) -> Path | None:
    """Write ``chart`` as a standalone SVG file (with its XML declaration); nothing for an empty chart."""
    if not chart:
        return None
    path = Path(path)
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + str(chart) + "\n", encoding="utf-8")
    return path
