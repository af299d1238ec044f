"""Graphs as SVG, drawn on the server (no JavaScript): one line per series over the buckets of
one period, with a legend that gives each series' total. Pure: numbers in, markup out."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 42

COLOURS = {"received": "#1f77b4", "sent": "#2ca02c", "bounced": "#ff7f0e", "rejected": "#d62728",
           "greylisted": "#9467bd", "spam": "#8c564b", "virus": "#e377c2"}


def _fmt(n: float) -> str:
    return f"{n:.0f}" if n == int(n) else f"{n:.1f}"


def _stamp(t: float, step: int) -> str:
    return time.strftime("%a %H:%M" if step < 86400 else "%d %b", time.localtime(t))


def line_graph(title: str, step: int, series: Mapping[str, Sequence[tuple[int, float]]],
               *, graph_id: str = "") -> str:
    """``series``: name -> (bucket start, count) oldest first, every series over the same buckets."""
    buckets = max((len(points) for points in series.values()), default=0)
    peak = max((v for points in series.values() for _, v in points), default=0.0)
    top = max(1.0, peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" id="{escape(graph_id)}" '
             f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
             f'<text x="{LEFT}" y="18" font-size="13" font-family="sans-serif" font-weight="bold">'
             f"{escape(title)}</text>",
             f'<text x="{LEFT - 4}" y="{TOP + 10}" font-size="10" text-anchor="end" '
             f'font-family="sans-serif">{_fmt(top)}</text>',
             f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="10" text-anchor="end" '
             f'font-family="sans-serif">0</text>']
    first = next((points for points in series.values() if points), [])
    if first:
        parts.append(f'<text x="{LEFT}" y="{TOP + plot_h + 14}" font-size="10" font-family="sans-serif">'
                     f"{escape(_stamp(first[0][0], step))}</text>")
        parts.append(f'<text x="{LEFT + plot_w}" y="{TOP + plot_h + 14}" font-size="10" text-anchor="end" '
                     f'font-family="sans-serif">{escape(_stamp(first[-1][0], step))}</text>')
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS.get(name, "#333")
        coords = []
        for i, (_, value) in enumerate(points):
            x = LEFT + (plot_w * (i + 0.5) / buckets if buckets else 0)
            y = TOP + plot_h - plot_h * value / top
            coords.append(f"{x:.1f},{y:.1f}")
        if index == 0 and coords:  # the first series as an area (as mailgraph draws received), the rest over it
            base = TOP + plot_h
            area = [f"{coords[0].split(',')[0]},{base}", *coords, f"{coords[-1].split(',')[0]},{base}"]
            parts.append(f'<polygon fill="{colour}" fill-opacity="0.3" stroke="none" points="{" ".join(area)}"/>')
        parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5" points="{" ".join(coords)}"/>')
    x = LEFT
    for name, points in series.items():
        total = sum(v for _, v in points)
        label = f"{name} {_fmt(total)}"
        parts.append(f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" fill="{COLOURS.get(name, "#333")}"/>')
        parts.append(f'<text class="legend" data-series="{escape(name)}" data-total="{_fmt(total)}" x="{x + 14}" '
                     f'y="{HEIGHT - 7}" font-size="11" font-family="sans-serif">{escape(label)}</text>')
        x += 14 + 8 * len(label) + 16
    parts.append("</svg>")
    return "\n".join(parts)
