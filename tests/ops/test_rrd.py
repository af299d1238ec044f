"""The statistics database: round-robin buckets at four resolutions, constant size, totals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pymailsrv.ops.rrd import ARCHIVE, ARCHIVES, SERIES, RoundRobin

DAY = 86400
T0 = 1_700_000_000 // DAY * DAY  # midnight UTC


def test_counts_go_into_the_bucket_of_their_time(tmp_path: Path) -> None:
    rrd = RoundRobin(str(tmp_path / "stats.db"))
    rrd.add({"received": 2, "sent": 1}, T0 + 10)
    rrd.add({"received": 3}, T0 + 299)
    rrd.add({"received": 1}, T0 + 300)  # the next 5-minute bucket
    day = rrd.series("received", ARCHIVE["day"], T0 + 300)
    assert len(day) == 288 and day[-2:] == [(T0, 5.0), (T0 + 300, 1.0)]
    assert sum(v for _, v in day[:-2]) == 0
    assert rrd.series("received", ARCHIVE["week"], T0 + 300)[-1] == (T0, 6.0)
    totals = rrd.totals(T0 + 300)
    assert totals["day"]["received"] == 6 and totals["year"]["sent"] == 1 and totals["month"]["virus"] == 0
    assert set(totals) == {a.period for a in ARCHIVES} and set(totals["day"]) == set(SERIES)


def test_old_buckets_are_overwritten_and_age_out(tmp_path: Path) -> None:
    rrd = RoundRobin(str(tmp_path / "stats.db"))
    rrd.add({"rejected": 7}, T0)
    rrd.add({"rejected": 1}, T0 + DAY)  # one day later: the 5-minute slot of T0 is reused
    totals = rrd.totals(T0 + DAY)
    assert totals["day"]["rejected"] == 1
    assert totals["week"]["rejected"] == 8
    assert rrd.totals(T0 + 8 * DAY)["week"]["rejected"] == 0  # a week on, both are gone from the week
    assert rrd.totals(T0 + 8 * DAY)["month"]["rejected"] == 8


def test_size_is_constant(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    rrd = RoundRobin(str(path))
    for i in range(0, 2 * 366 * DAY, 3 * DAY + 3600):  # two years, a little every three days
        rrd.add(dict.fromkeys(SERIES, 1), T0 + i)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT COUNT(*) FROM bucket").fetchone()[0]
    assert rows <= len(SERIES) * sum(a.rows for a in ARCHIVES)


def test_current_figures_and_a_missing_file(tmp_path: Path) -> None:
    rrd = RoundRobin(str(tmp_path / "sub" / "stats.db"))
    with pytest.raises(FileNotFoundError):
        rrd.totals(T0)
    rrd.add({}, T0, {"queue_active": 3, "sessions_smtp": 1})
    rrd.add({"sent": 1}, T0 + 5)  # no current figures: the last ones stay
    assert rrd.current() == ({"queue_active": 3.0, "sessions_smtp": 1.0}, float(T0))
