"""Helpers the vacation and ManageSieve tests share: SQL run as PostfixAdmin runs it, a vacation
set up as its UI sets one, Maildir counts, waiting for a condition."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AUTOREPLY = "autoreply.example.test"


def sql_runner(url: str) -> Callable[[str, tuple[Any, ...]], None]:
    """Run one statement with parameters in the database, committed (as PostfixAdmin's PHP does)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]

        def run_sqlite(stmt: str, params: tuple[Any, ...] = ()) -> None:
            conn = sqlite3.connect(path, timeout=30)
            try:
                conn.execute(stmt.replace("%s", "?"), params)
                conn.commit()
            finally:
                conn.close()
        return run_sqlite
    if url.startswith("postgresql"):
        return _pg_runner(url)
    from tests.conftest import _mariadb_admin
    name = url.rsplit("/", 1)[1].split("?")[0]

    def run_mysql(stmt: str, params: tuple[Any, ...] = ()) -> None:
        conn = _mariadb_admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"USE `{name}`")
                cur.execute(stmt, params)
        finally:
            conn.close()
    return run_mysql


def _pg_runner(url: str) -> Callable[[str, tuple[Any, ...]], None]:
    import asyncio
    import concurrent.futures
    import re

    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    def run_pg(stmt: str, params: tuple[Any, ...] = ()) -> None:
        numbered = iter(range(1, len(params) + 1))
        sql = re.sub(r"%s", lambda _: f"${next(numbered)}", stmt)

        async def go() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(sql, *params)
            finally:
                await conn.close()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # callers may be inside an event loop
            pool.submit(asyncio.run, go()).result(60)
    return run_pg


def go_away(run: Callable[..., None], user: str, subject: str, body: str, interval: int = 0) -> None:
    """What PostfixAdmin's VacationHandler writes when a user sets an out-of-office reply."""
    local, _, domain = user.partition("@")
    run("INSERT INTO vacation (email, subject, body, cache, domain, interval_time, activefrom, activeuntil,"
        " created, modified, active) VALUES (%s, %s, %s, '', %s, %s, '2000-01-01 00:00:00',"
        " '2038-01-18 00:00:00', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 1)",
        (user, subject, body, domain, interval))
    run("UPDATE alias SET goto = %s WHERE address = %s", (f"{user},{local}#{domain}@{AUTOREPLY}", user))
    run("INSERT INTO log (timestamp, username, domain, action, data) VALUES"
        " ('2024-01-01 00:00:00', 'admin@example.test', %s, 'edit_alias', %s)", (domain, user))


def maildir_count(base: Path, user: str) -> int:
    local, _, domain = user.partition("@")
    new = base / domain / local / "new"
    cur = base / domain / local / "cur"
    return sum(len(list(d.iterdir())) for d in (new, cur) if d.is_dir())


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


