"""``pymailsrv stats``: the statistics page's figures in a terminal, read from stats_database
(no running server needed; the figures of the moment are those of its last update)."""

from __future__ import annotations

import time

from pymailsrv.config.settings import Settings
from pymailsrv.errors import PymailsrvError
from pymailsrv.ops.page import GROUPS
from pymailsrv.ops.rrd import ARCHIVE, ARCHIVES, RoundRobin

BLOCKS = "·▁▂▃▄▅▆▇█"  # nothing, then eighths of the busiest hour
SPARK_COLUMNS = 24  # the last day, an hour per column


def sparkline(values: list[float], columns: int = SPARK_COLUMNS) -> str:
    per = max(1, len(values) // columns)
    sums = [sum(values[i:i + per]) for i in range(len(values) - per * columns, len(values), per)]
    peak = max(sums, default=0.0)
    if not peak:
        return BLOCKS[0] * len(sums)
    return "".join(BLOCKS[min(len(BLOCKS) - 1, round(s / peak * (len(BLOCKS) - 1)))] for s in sums)


def render(rrd: RoundRobin, now: float) -> str:
    current, updated = rrd.current()
    totals = rrd.totals(now)
    names = [name for _, group in GROUPS for name in group]
    periods = [a.period for a in ARCHIVES]
    width = max(len(n) for n in names)
    lines = [f"{'':{width}}  " + "".join(f"{'last ' + p:>12}" for p in periods) + "  last 24 hours"]
    for name in names:
        day = [v for _, v in rrd.series(name, ARCHIVE["day"], now)]
        lines.append(f"{name:{width}}  " + "".join(f"{totals[p][name]:>12.0f}" for p in periods)
                     + f"  {sparkline(day)}")
    if updated:
        age = now - updated
        lines.append("")
        lines.append(f"as of {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(updated))} "
                     f"({age:.0f}s ago; the server updates it every stats_update_interval):")
        queue = ", ".join(f"{s} {current.get('queue_' + s, 0):.0f}" for s in ("active", "deferred", "hold"))
        sessions = ", ".join(f"{p} {current.get('sessions_' + p, 0):.0f}" for p in ("smtp", "imap", "pop3"))
        lines.append(f"  queue: {queue}")
        lines.append(f"  sessions: {sessions}")
    return "\n".join(lines)


def cli(settings: Settings) -> int:
    path = settings.get_str("stats_database")
    try:
        print(render(RoundRobin(path), time.time()))
    except FileNotFoundError:
        raise PymailsrvError(f"{path}: no statistics yet (they are kept while metrics_listen or "
                             "stats_listen is set)") from None
    return 0
