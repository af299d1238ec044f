"""Round-robin counts for the statistics page, kept in one SQLite file (``stats_database``).

Each series (received, sent, …) is kept at four resolutions, as mailgraph's RRD archives are: a
count per 5 minutes for the last day, per 30 minutes for a week, per 2 hours for a month and per
day for a year. A bucket is a row (series, step, slot) whose ``start`` says which period it
holds: a count for a new period overwrites the one a full turn older, so the file keeps a
constant size (about 9,500 rows) however long the server runs.

Implementation notes:
- ``add`` adds to the current bucket of every resolution in one transaction; the main process
  calls it once per ``stats_update_interval`` with what was counted since (not once per event).
- Blocking: callers run these methods in a thread (asyncio.to_thread).
- ``current`` keeps the last known queue and session figures, so ``pymailsrv stats`` can print
  them without a running server (with their age).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

SERIES = ("received", "sent", "bounced", "rejected", "greylisted", "spam", "virus")


@dataclass(frozen=True, slots=True)
class Archive:
    period: str  # what the page calls it
    step: int  # seconds per bucket
    rows: int  # buckets kept


ARCHIVES = (Archive("day", 300, 288), Archive("week", 1800, 336), Archive("month", 7200, 372),
            Archive("year", 86400, 366))
ARCHIVE = {a.period: a for a in ARCHIVES}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bucket (series TEXT NOT NULL, step INTEGER NOT NULL, slot INTEGER NOT NULL,
    start INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (series, step, slot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS current (name TEXT PRIMARY KEY, value REAL NOT NULL, updated REAL NOT NULL);
"""

_ADD = """INSERT INTO bucket (series, step, slot, start, value) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (series, step, slot) DO UPDATE SET
    value = CASE WHEN start = excluded.start THEN value + excluded.value ELSE excluded.value END,
    start = excluded.start"""


class RoundRobin:
    def __init__(self, path: str) -> None:
        self.path = path

    @contextlib.contextmanager
    def _db(self, write: bool) -> Iterator[sqlite3.Connection]:
        if write:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        elif not os.path.exists(self.path):
            raise FileNotFoundError(self.path)
        db = sqlite3.connect(self.path, timeout=10)
        try:
            if write:
                db.executescript(_SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def add(self, counts: Mapping[str, float], now: float, current: Mapping[str, float] | None = None) -> None:
        """Add ``counts`` (series -> how many since the last call) to the buckets of ``now``;
        ``current``: the figures of the moment (queue, sessions) to keep."""
        t = int(now)
        rows = [(series, a.step, (t // a.step) % a.rows, t // a.step * a.step, float(n))
                for series, n in counts.items() if n for a in ARCHIVES]
        with self._db(write=True) as db:
            db.executemany(_ADD, rows)
            if current is not None:
                db.execute("DELETE FROM current")
                db.executemany("INSERT INTO current VALUES (?, ?, ?)",
                               [(name, float(v), now) for name, v in current.items()])

    def series(self, name: str, archive: Archive, now: float) -> list[tuple[int, float]]:
        """(bucket start, count) for the ``archive.rows`` buckets up to ``now``'s, oldest first;
        buckets nothing was counted in are 0."""
        last = int(now) // archive.step
        first = last - archive.rows + 1
        with self._db(write=False) as db:
            found = dict(db.execute("SELECT start, value FROM bucket WHERE series = ? AND step = ? AND start >= ?",
                                    (name, archive.step, first * archive.step)).fetchall())
        return [((first + i) * archive.step, float(found.get((first + i) * archive.step, 0.0)))
                for i in range(archive.rows)]

    def totals(self, now: float) -> dict[str, dict[str, float]]:
        """period -> series -> count over that period (the last day, week, month, year)."""
        out: dict[str, dict[str, float]] = {}
        with self._db(write=False) as db:
            for a in ARCHIVES:
                since = (int(now) // a.step - a.rows + 1) * a.step
                rows = db.execute("SELECT series, SUM(value) FROM bucket WHERE step = ? AND start >= ? "
                                  "GROUP BY series", (a.step, since)).fetchall()
                found = {str(s): float(v) for s, v in rows}
                out[a.period] = {s: found.get(s, 0.0) for s in SERIES}
        return out

    def current(self) -> tuple[dict[str, float], float]:
        """The figures of the moment as last written, and when (0: never)."""
        with self._db(write=False) as db:
            rows = db.execute("SELECT name, value, updated FROM current").fetchall()
        return {str(n): float(v) for n, v, _ in rows}, max((float(u) for _, _, u in rows), default=0.0)
