"""The SQL tables' .cf handling: query expansion (%s %u %d %1 %%), domain restriction, several
rows, result_format, table/select_field form, injection safety, failover, expansion_limit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pymailsrv.db.sql_table import SqlTable, SqlTableConfig, compile_query, parse_cf
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.policy.base import LookupTable
from pymailsrv.policy.tables import close_table, open_table


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "pfa.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alias (address TEXT, goto TEXT, domain TEXT, active INT)")
        conn.executemany("INSERT INTO alias VALUES (?, ?, ?, ?)", [
            ("info@example.com", "alice@example.com", "example.com", 1),
            ("sales@example.com", "alice@example.com", "example.com", 1),
            ("sales@example.com", "bob@example.com", "example.com", 1),
            ("old@example.com", "carol@example.com", "example.com", 0),
            ("@example.org", "catchall@example.com", "example.org", 1),
            ("it's@example.com", "quote@example.com", "example.com", 1),
        ])
    return path


@pytest.fixture
async def tables() -> AsyncIterator[list[LookupTable]]:
    """Tables opened by a test, closed (their connection pools disposed) afterwards."""
    opened: list[LookupTable] = []
    yield opened
    for table in opened:
        await close_table(table)


def cf(tmp_path: Path, db: Path, body: str) -> str:
    path = tmp_path / "t.cf"
    path.write_text(f"dbpath = {db}\n{body}")
    return f"sqlite:{path}"


async def test_query_forms(tmp_path: Path, db: Path, tables: list[LookupTable]) -> None:
    table = open_table(cf(tmp_path, db, "query = SELECT goto FROM alias\n"
                                        "  WHERE address='%s' AND active = 1 ORDER BY goto\n"))
    tables.append(table)
    assert await table.get("info@example.com") == "alice@example.com"
    assert await table.get("Sales@Example.COM") == "alice@example.com,bob@example.com"
    assert await table.get("old@example.com") is None
    assert await table.get("it's@example.com") == "quote@example.com"
    assert await table.get("x' OR '1'='1") is None
    domain = open_table(cf(tmp_path, db, "query = SELECT goto FROM alias WHERE address='@%d'\n"))
    tables.append(domain)
    assert await domain.get("anyone@example.org") == "catchall@example.com"
    assert await domain.get("no-domain") is None  # %d and a key without a domain: no query
    labels = open_table(cf(tmp_path, db, "query = SELECT '%1/%2/%u/%%' FROM alias LIMIT 1\n"))
    tables.append(labels)
    assert await labels.get("joe@mail.example.org") == "org/example/joe/%"


async def test_table_fields_domain_and_result_format(tmp_path: Path, db: Path, tables: list[LookupTable]) -> None:
    table = open_table(cf(tmp_path, db, "table = alias\nselect_field = goto\nwhere_field = address\n"
                                        "additional_conditions = AND active = 1\n"
                                        "domain = example.com\nresult_format = smtp:[%d]/%u/%s\n"))
    tables.append(table)
    assert await table.get("info@example.com") == "smtp:[example.com]/alice/alice@example.com"
    assert await table.get("anyone@example.org") is None  # outside "domain ="
    assert await table.get("info") is None


async def test_expansion_limit_and_failover(tmp_path: Path, db: Path, tables: list[LookupTable]) -> None:
    table = open_table(cf(tmp_path, db, "query = SELECT goto FROM alias WHERE address='%s'\nexpansion_limit = 1\n"))
    tables.append(table)
    with pytest.raises(TemporaryFailure):
        await table.get("sales@example.com")
    broken = SqlTable(SqlTableConfig.from_cf("mysql", {"hosts": "127.0.0.1:1", "query": "SELECT 1 WHERE '%s'",
                                                       "dbname": "x", "user": "u"}))
    with pytest.raises(TemporaryFailure):
        await broken.get("a@b")
    await broken.close()


async def test_mysql_failover_to_second_host(mariadb_url: str, tmp_path: Path) -> None:
    import re

    m = re.match(r"mysql\+aiomysql://(\w+)@([\d.]+):(\d+)/(\w+)", mariadb_url)
    assert m
    user, host, port, name = m.groups()
    path = tmp_path / "m.cf"
    path.write_text(f"hosts = 127.0.0.1:1, inet:{host}:{port}\nuser = {user}\ndbname = {name}\n"
                    "query = SELECT CONCAT('seen ', '%s')\n")
    table = open_table(f"proxy:mysql:{path}")
    try:
        assert await table.get("A@B.example") == "seen a@b.example"
    finally:
        await table.close()  # type: ignore[attr-defined]


def test_cf_errors_and_compile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs"):
        SqlTableConfig.from_cf("mysql", {"hosts": "x"})
    with pytest.raises(ConfigError, match="dbpath"):
        SqlTableConfig.from_cf("sqlite", {"query": "SELECT 1"})
    with pytest.raises(ConfigError, match="missing"):
        parse_cf("no equals sign here")
    with pytest.raises(ConfigError, match="cannot open"):
        open_table(f"mysql:{tmp_path}/none.cf")
    sql, params = compile_query("SELECT a FROM t WHERE k='%s' AND t='12:00' AND d=%d", "u@d", "mysql") or ("", {})
    assert sql == "SELECT a FROM t WHERE k=:p0 AND t='12\\:00' AND d=:p1"
    assert params == {"p0": "u@d", "p1": "d"}
    assert compile_query("SELECT '%u' ", "@d", "mysql") is None


def test_postmap_command_line(tmp_path: Path) -> None:
    access = tmp_path / "access"
    access.write_text("example.com REJECT no\n")
    run = [sys.executable, "-m", "pymailsrv", "postmap", "-q"]
    found = subprocess.run([*run, "EXAMPLE.com", f"hash:{access}"], capture_output=True, text=True,
                           cwd=Path(__file__).parents[2], timeout=60)
    assert (found.returncode, found.stdout) == (0, "REJECT no\n")
    missing = subprocess.run([*run, "other.com", f"hash:{access}"], capture_output=True, text=True,
                             cwd=Path(__file__).parents[2], timeout=60)
    assert (missing.returncode, missing.stdout) == (1, "")
    bad = subprocess.run([*run, "x", "nis:foo"], capture_output=True, text=True, cwd=Path(__file__).parents[2],
                         timeout=60)
    assert bad.returncode == 2 and "unsupported dictionary type" in bad.stderr
