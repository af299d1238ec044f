"""The statistics page: the graphs of the last day, week, month and year, and the queue and
sessions now. Server-rendered HTML with inline SVG; it reloads itself every 5 minutes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape

from pymailsrv.ops.graphs import line_graph
from pymailsrv.ops.rrd import ARCHIVES, RoundRobin

GROUPS = (("traffic", ("received", "sent")),
          ("problems", ("bounced", "rejected", "greylisted", "spam", "virus")))

_STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}"
          "h2{font-size:1.1em;margin-top:1.5em}table{border-collapse:collapse;margin:0 0 1em}"
          "td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}"
          "th:first-child,td:first-child{text-align:left}.graph{display:block;margin:6px 0}")


def _n(value: float) -> str:
    return f"{value:.0f}"


def _now_table(current: Mapping[str, float], now: float) -> str:
    queue = [(state, current.get(f"queue_{state}", 0.0)) for state in ("active", "deferred", "hold")]
    sessions = [(p, current.get(f"sessions_{p}", 0.0)) for p in ("smtp", "imap", "pop3")]
    oldest = current.get("queue_oldest", 0.0)
    age = f"{(now - oldest) / 60:.0f} min" if oldest else "-"
    rows = "".join(f'<tr><td>queue {s}</td><td id="queue-{s}">{_n(v)}</td></tr>' for s, v in queue)
    rows += f'<tr><td>oldest queued message</td><td id="queue-oldest">{escape(age)}</td></tr>'
    rows += "".join(f'<tr><td>{p} sessions</td><td id="sessions-{p}">{_n(v)}</td></tr>' for p, v in sessions)
    return f'<table id="now"><tr><th>now</th><th></th></tr>{rows}</table>'


def _totals_table(totals: Mapping[str, Mapping[str, float]]) -> str:
    periods = [a.period for a in ARCHIVES]
    head = "".join(f"<th>last {p}</th>" for p in periods)
    names = [name for _, group in GROUPS for name in group]
    body = "".join(f'<tr><td>{name}</td>' + "".join(f'<td id="total-{p}-{name}">{_n(totals[p][name])}</td>'
                                                  for p in periods) + "</tr>" for name in names)
    return f'<table id="totals"><tr><th></th>{head}</tr>{body}</table>'


def render(rrd: RoundRobin, hostname: str, current: Mapping[str, float], now: float | None = None) -> str:
    now = time.time() if now is None else now
    sections = []
    for archive in ARCHIVES:
        graphs = []
        for group, names in GROUPS:
            data = {name: rrd.series(name, archive, now) for name in names}
            graphs.append(line_graph(f"{group}, last {archive.period} (per {archive.step // 60} min)"
                                     if archive.step < 86400 else f"{group}, last {archive.period} (per day)",
                                     archive.step, data, graph_id=f"{group}-{archive.period}"))
        sections.append(f'<section id="{archive.period}"><h2>Last {archive.period}</h2>{"".join(graphs)}</section>')
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="300">'
            f"<title>Mail statistics for {escape(hostname)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>Mail statistics for {escape(hostname)}</h1><p>As of {escape(stamp)}.</p>"
            f"{_now_table(current, now)}{_totals_table(rrd.totals(now))}{''.join(sections)}</body></html>")
