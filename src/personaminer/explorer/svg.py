"""Small inline SVG charts for the explorer: no plotting library, no script, no external file.

Every text that reaches a chart goes through :func:`escape` (visible controls, then HTML escape); numbers are formatted by
Python. The charts use presentation attributes only (no ``style``), so the report's
Content-Security-Policy (``style-src 'self'``) does not block them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

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
    return Markup(f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
                  f'<title>{escape(title)}</title>{"".join(bars)}{axis}</svg>')


def hbars(rows: Sequence[tuple[str, float, tuple[float, float] | None]], *, width: int = 560, unit: str = "%",
          scale: float = 100.0, title: str = "") -> Markup:
    """Horizontal bars (label, value in [0, 1], optional 95% interval), values shown x ``scale``."""
    if not rows:
        return Markup("")
    label_w, bar_h, gap = 170, 14, 6
    height = len(rows) * (bar_h + gap) + 4
    span = width - label_w - 60
    parts = []
    for i, (label, v, ci) in enumerate(rows):
        y = i * (bar_h + gap) + 2
        w = max(0.0, min(1.0, v)) * span
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 3}" font-size="11" text-anchor="end">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#0072B2">'
                     f'<title>{escape(label)}: {v * scale:.1f}{unit}</title></rect>')
        if ci is not None:
            x0, x1 = label_w + max(0.0, ci[0]) * span, label_w + min(1.0, ci[1]) * span
            parts.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" '
                         f'stroke="#000" stroke-width="1"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" font-size="11">{v * scale:.1f}{unit}</text>')
    return Markup(f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
                  f'<title>{escape(title)}</title>{"".join(parts)}</svg>')


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
    return Markup(f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
                  f'<title>{escape(title)}</title>{"".join(parts)}</svg>')
