"""``db.vacation.SqlVacations`` on SQLite and MariaDB: the rows as PostfixAdmin writes them, the
times from the database, vacation.pl's notification rules."""

from __future__ import annotations

import pytest

from pymailsrv.db.engine import make_engine
from pymailsrv.db.manage import Admin
from pymailsrv.db.schema import upgrade
from pymailsrv.db.vacation import SqlVacations
from tests.vacation.helpers import sql_runner

USER = "alice@example.test"


def row(url: str, active: int, start: str, end: str) -> str:
    """The vacation row PostfixAdmin writes, in SQL all three databases take (literals: '1' is a
    boolean in PostgreSQL too; PostgreSQL's schema has no ``cache`` column)."""
    cache = ("", "") if url.startswith("postgresql") else (" cache,", " '',")
    return (f"INSERT INTO vacation (email, subject, body,{cache[0]} domain, interval_time, activefrom, activeuntil,"
            f" created, modified, active) VALUES (%s, 'Away', 'Back soon.',{cache[1]} 'example.test', %s,"
            f" '{start}', '{end}', '2024-01-01 00:00:00', '2024-01-01 00:00:00', '{active}')")


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """SQLite, MariaDB and (when reachable) PostgreSQL, whose columns are typed."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def vacations(db_url: str):  # type: ignore[no-untyped-def]
    await upgrade(db_url)
    engine = make_engine(db_url)
    await Admin(engine).add_domain("example.test")  # PostgreSQL: vacation.domain references it
    store = SqlVacations(engine, owns_engine=True)
    yield store, sql_runner(db_url), db_url
    await store.close()


@pytest.mark.parametrize(("active", "start", "end", "away"), [
    (1, "2000-01-01 00:00:00", "2038-01-18 00:00:00", True),
    (0, "2000-01-01 00:00:00", "2038-01-18 00:00:00", False),  # switched off
    (1, "2037-01-01 00:00:00", "2038-01-18 00:00:00", False),  # not yet
    (1, "2000-01-01 00:00:00", "2001-01-01 23:59:00", False),  # over
])
async def test_active_window(vacations, active: int, start: str, end: str, away: bool) -> None:  # type: ignore[no-untyped-def]
    store, run, url = vacations
    run(row(url, active, start, end), (USER, 0))
    found = await store.away("Alice@Example.test ")
    assert (found is not None) == away
    if found is not None:
        assert (found.subject, found.body, found.interval) == ("Away", "Back soon.", 0)


async def test_once_per_absence_and_per_interval(vacations) -> None:  # type: ignore[no-untyped-def]
    store, run, url = vacations
    run(row(url, 1, "2000-01-01 00:00:00", "2038-01-18 00:00:00"), (USER, 0))
    v = await store.away(USER)
    assert v is not None
    assert await store.due(v, "carol@remote.test")
    assert not await store.due(v, "carol@remote.test")  # interval 0: once
    assert await store.due(v, "dave@remote.test")
    # a new absence (activefrom after the notification) answers again, as vacation.pl
    run("UPDATE vacation SET activefrom = '2030-01-01 00:00:00' WHERE email = %s", (USER,))
    run("UPDATE vacation_notification SET notified_at = '2020-01-01 00:00:00'", ())
    assert await store.due(v, "carol@remote.test")
    # with an interval: again once it has passed since the last reply
    run("UPDATE vacation SET interval_time = 3600, activefrom = '2000-01-01 00:00:00'", ())
    v = await store.away(USER)
    assert v is not None and v.interval == 3600
    assert not await store.due(v, "carol@remote.test")
    run("UPDATE vacation_notification SET notified_at = '2001-01-01 00:00:00'", ())
    assert await store.due(v, "carol@remote.test")
    assert not await store.due(v, "carol@remote.test")


async def test_schema_without_interval_time_uses_the_configured_one(sqlite_url: str) -> None:
    await upgrade(sqlite_url)
    run = sql_runner(sqlite_url)
    run("ALTER TABLE vacation DROP COLUMN interval_time", ())  # as before PostfixAdmin 3.0
    run("INSERT INTO vacation (email, subject, body, cache, domain, activefrom, activeuntil, created, modified,"
        " active) VALUES (%s, 's', 'b', '', 'example.test', '2000-01-01', '2038-01-18', '2024-01-01',"
        " '2024-01-01', 1)", (USER,))
    store = SqlVacations(make_engine(sqlite_url), default_interval=60, owns_engine=True)
    try:
        v = await store.away(USER)
        assert v is not None and v.interval == 60
    finally:
        await store.close()
