"""The schema pymailsrv creates matches PostfixAdmin 3.3's column for column (reflection on
SQLite and MariaDB against tables built from PostfixAdmin's own DDL, data/postfixadmin-3.3-*.sql),
and ``db upgrade`` on an existing PostfixAdmin database changes nothing in it."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from db_sample import BASE, SAMPLE

from pymailsrv.db import schema
from pymailsrv.db.directory import SqlDirectory
from pymailsrv.db.models import TABLES
from pymailsrv.errors import ConfigError

DATA = Path(__file__).parent / "data"
# migrations 0002 and 0003: pymailsrv's own tables beside PostfixAdmin's (which stay untouched)
SHARED_STATE = ["created pymailsrv_auth_failure (failed logins shared by nodes)",
                "created pymailsrv_greylist (greylisting triplets shared by nodes)",
                "created pymailsrv_greylist_client (greylisting auto-whitelist shared by nodes)",
                "created pymailsrv_session (logged-in sessions shared by nodes)"]
OWN_TABLES = ["pymailsrv_auth_failure", "pymailsrv_greylist", "pymailsrv_greylist_client", "pymailsrv_session"]


def sync_engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql"))


def load_postfixadmin(url: str, version: str = "1847", tables: tuple[str, ...] = TABLES) -> None:
    """Build the tables as PostfixAdmin's upgrader leaves them (and nothing of pymailsrv)."""
    kind = "sqlite" if url.startswith("sqlite") else "mysql"
    sql = (DATA / f"postfixadmin-3.3-{kind}.sql").read_text().replace("'1847'", f"'{version}'")
    statements = [s for s in (re.sub(r"(?m)^--.*$", "", x).strip() for x in sql.split(";\n")) if s]
    wanted = [s for s in statements
              if (m := re.search(r"(?:TABLE|INTO)\s+`?(\w+)`?", s)) and m.group(1) in tables]
    engine = sync_engine(url)
    with engine.begin() as conn:
        for stmt in wanted:
            conn.exec_driver_sql(stmt)
    engine.dispose()


def describe(url: str) -> dict[str, Any]:
    """Every column's type, nullability, default and collation, every index and foreign key."""
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            return describe_sqlite(conn) if url.startswith("sqlite") else describe_mysql(conn)
    finally:
        engine.dispose()


def describe_sqlite(conn: sa.Connection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in TABLES:
        for _cid, name, type_, notnull, default, pk in conn.exec_driver_sql(f"PRAGMA table_info({t})"):
            out[f"{t}.{name}"] = (re.sub(r"\s+", "", type_.lower()), notnull, default, pk)
        for row in conn.exec_driver_sql(f"PRAGMA index_list({t})"):
            cols = [r[2] for r in conn.exec_driver_sql(f"PRAGMA index_info('{row[1]}')")]
            out[f"{t} index {','.join(cols)}"] = (row[2], row[3])  # unique, origin
        for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({t})"):
            out[f"{t} fk {row[3]}"] = (row[2], row[4], row[6])
    return out


def describe_mysql(conn: sa.Connection) -> dict[str, Any]:
    db = conn.exec_driver_sql("SELECT DATABASE()").scalar()
    names = ",".join(f"'{t}'" for t in TABLES)
    out: dict[str, Any] = {}
    for r in conn.exec_driver_sql(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME,"
            " COLLATION_NAME, EXTRA FROM information_schema.COLUMNS"
            f" WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME IN ({names})"):
        out[f"{r[0]}.{r[1]}"] = tuple(r[2:])
    for r in conn.exec_driver_sql(
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION, TABLE_COMMENT FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME IN ({names})"):
        out[f"{r[0]} table"] = tuple(r[1:])
    for r in conn.exec_driver_sql(
            "SELECT TABLE_NAME, INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX), NON_UNIQUE"
            f" FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME IN ({names})"
            " GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE"):
        out[f"{r[0]} index {r[1]}"] = (r[2], r[3])
    for r in conn.exec_driver_sql(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,"
            " k.REFERENCED_COLUMN_NAME, c.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE k"
            " JOIN information_schema.REFERENTIAL_CONSTRAINTS c ON c.CONSTRAINT_SCHEMA = k.TABLE_SCHEMA"
            " AND c.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
            f" WHERE k.TABLE_SCHEMA = '{db}'"):
        out[f"{r[0]} fk {r[1]}"] = tuple(r[2:])
    return out


def dump(url: str) -> dict[str, Any]:
    """Schema text and every row of the PostfixAdmin tables (not pymailsrv's version table)."""
    engine = sync_engine(url)
    out: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            for t in (t for t in TABLES if t in present):
                if url.startswith("sqlite"):
                    ddl = conn.exec_driver_sql(
                        f"SELECT sql FROM sqlite_master WHERE tbl_name = '{t}' ORDER BY name").all()
                else:
                    ddl = re.sub(r" AUTO_INCREMENT=\d+", "", conn.exec_driver_sql(
                        f"SHOW CREATE TABLE `{t}`").one()[1])
                out[t] = (ddl, [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM `{t}`").all()])
            out["tables"] = sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    return out


@pytest.fixture
def pfa_pair(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """(a database built by PostfixAdmin's DDL, an empty database) on the same engine."""
    if db_url.startswith("sqlite"):
        other = f"sqlite+aiosqlite:///{tmp_path}/created.db"
    else:
        other = request.getfixturevalue("mariadb_url_2")
    load_postfixadmin(db_url)
    return db_url, other


@pytest.fixture
def mariadb_url_2() -> Any:
    import uuid

    import pymysql

    name = f"pymailsrv_t_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield f"mysql+aiomysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def test_created_schema_matches_postfixadmin_column_for_column(pfa_pair: tuple[str, str]) -> None:
    reference, created = pfa_pair
    asyncio.run(schema.create_schema(created))
    want, got = describe(reference), describe(created)
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key
    columns = [k for k in want if "." in k and " " not in k]
    assert len(columns) >= 105  # every column of the 13 tables was compared


def test_mariadb_collations_as_the_schema_document_says(mariadb_url: str) -> None:
    asyncio.run(schema.create_schema(mariadb_url))
    d = describe(mariadb_url)
    for key in ("mailbox.username", "mailbox.password", "mailbox.maildir", "alias.address", "alias.goto",
                "domain.domain", "domain.transport", "alias_domain.alias_domain", "vacation.email",
                "quota2.username"):
        assert d[key][3:5] == ("latin1", "latin1_general_ci"), key
    for key in ("mailbox.name", "vacation.subject", "vacation.body", "domain.description"):
        assert d[key][3] == "utf8mb4", key
    assert d["mailbox.active"][:3] == ("tinyint(1)", "NO", "1")
    assert d["mailbox.created"][:3] == ("datetime", "NO", "'2000-01-01 00:00:00'")
    assert d["mailbox.quota"][0] == "bigint(20)"
    # what the collation buys (§1): case- and trailing-space-insensitive key comparisons
    asyncio.run(schema.seed(mariadb_url, {"domain": [{"domain": "example.com"}],
                                          "mailbox": [{"username": "alice@example.com",
                                                       "password": "pässwörd"}]}))
    engine = sync_engine(mariadb_url)
    with engine.connect() as conn:
        for key in ("ALICE@EXAMPLE.COM", "alice@example.com  "):
            assert conn.exec_driver_sql("SELECT username FROM mailbox WHERE username = %s",
                                        (key,)).scalar() == "alice@example.com"
        # the password column is latin1: stored as latin1 bytes, read back as text over utf8mb4
        assert conn.exec_driver_sql("SELECT HEX(password) FROM mailbox").scalar() == "70E4737377F67264"
    engine.dispose()


def test_sqlite_declarations_as_postfixadmin(sqlite_url: str) -> None:
    asyncio.run(schema.create_schema(sqlite_url))
    d = describe(sqlite_url)
    assert d["mailbox.active"] == ("tinyint(1)", 1, "'1'", 0)
    assert d["mailbox.password_expiry"] == ("datetime", 1, "'2000-01-01'", 0)
    assert d["domain.password_expiry"] == ("int", 0, "0", 0)
    assert "domain_admins.id" not in d


def test_upgrade_on_existing_postfixadmin_database_changes_nothing(db_url: str) -> None:
    load_postfixadmin(db_url)
    asyncio.run(schema.seed(db_url, SAMPLE))
    before = dump(db_url)
    messages = asyncio.run(schema.upgrade(db_url))
    assert messages == ["recognised an existing PostfixAdmin database (version 1847); changed nothing",
                        *SHARED_STATE]
    after = dump(db_url)
    assert after.pop("tables") == sorted([*before.pop("tables"), schema.VERSION_TABLE, *OWN_TABLES])
    assert after == before
    assert asyncio.run(schema.upgrade(db_url)) == ["already at revision 0003; nothing to do"]
    assert asyncio.run(schema.current(db_url))[0] == "0003"

    async def lookups() -> None:
        d = SqlDirectory(db_url, BASE, "+", cache_ttl=0)
        try:
            assert await d.resolve("bob@example.net") == ["bob.forward@elsewhere.example",
                                                           "bob@example.com"]
            account = await d.mailbox("zoe@example.com")
            assert account is not None and account.maildir == f"{BASE}/legacy/zoe-old"
        finally:
            await d.close()

    asyncio.run(lookups())


@pytest.mark.parametrize(("version", "tables", "message"), [
    ("1846", TABLES, "older than 1847; run PostfixAdmin's upgrade.php first"),
    ("1847", ("config", "domain", "mailbox"), "incomplete PostfixAdmin schema"),
])
def test_upgrade_refuses_old_or_partial_postfixadmin(db_url: str, version: str, tables: tuple[str, ...],
                                                      message: str) -> None:
    load_postfixadmin(db_url, version, tables)
    before = dump(db_url)
    with pytest.raises(ConfigError, match=re.escape(message)):
        asyncio.run(schema.upgrade(db_url))
    assert dump(db_url) == before  # not even alembic's version table


def test_sqlite_file_and_parent_directory_are_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/a/b/pymailsrv.db"
    asyncio.run(schema.create_schema(url))
    with sqlite3.connect(tmp_path / "a" / "b" / "pymailsrv.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT value FROM config WHERE name = 'version'").fetchone() == ("1847",)


async def _merge_quota2(url: str) -> list[Any]:
    """Two Dovecot-style quota dict INSERTs for one user (the trigger adds them up)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for _ in range(2):
            await conn.execute("INSERT INTO quota2 (username, bytes, messages) VALUES ('a@b.c', 10, 1)")
        return list(await conn.fetchrow("SELECT bytes, messages FROM quota2"))
    finally:
        await conn.close()


def test_postgresql_schema_created_and_recognised(postgres_url: str) -> None:
    asyncio.run(schema.create_schema(postgres_url))
    assert asyncio.run(_merge_quota2(postgres_url)) == [20, 2]
    revision, state = asyncio.run(schema.current(postgres_url))
    assert (revision, state.kind, state.version) == ("0003", "postfixadmin", 1847)
    assert asyncio.run(schema.upgrade(postgres_url)) == ["already at revision 0003; nothing to do"]


async def _pg_describe(url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    out: dict[str, Any] = {}
    try:
        names = list(TABLES)
        for r in await conn.fetch(
                "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
                " column_default FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = ANY($1)", names):
            out[f"{r[0]}.{r[1]}"] = tuple(r[2:])
        for r in await conn.fetch(
                "SELECT c.conrelid::regclass::text, c.contype, pg_get_constraintdef(c.oid)"
                " FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY($1)", names):
            out[f"{r[0]} {r[1]} {r[2]}"] = True  # PK/FK/UNIQUE/CHECK by definition (names vary)
        for r in await conn.fetch("SELECT tgname, tgrelid::regclass::text, tgfoid::regproc::text, tgtype"
                                  " FROM pg_trigger WHERE NOT tgisinternal"):
            out[f"trigger {r[0]}"] = tuple(r[1:])
        for r in await conn.fetch("SELECT tablename, indexname, indexdef FROM pg_indexes"
                                  " WHERE schemaname = 'public' AND tablename = ANY($1)", names):
            if not r[1].endswith(("_pkey", "_key")):
                out[f"{r[0]} index {r[1]}"] = r[2]
    finally:
        await conn.close()
    return out


def test_postgresql_schema_matches_postfixadmin(postgres_url: str) -> None:
    import asyncpg

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        await schema.create_schema(postgres_url)
        got = await _pg_describe(postgres_url)
        conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            for t in TABLES:
                await conn.execute(f'DROP TABLE IF EXISTS "{t}" CASCADE')
            await conn.execute("DROP FUNCTION merge_quota, merge_quota2")
            await conn.execute(f"DROP TABLE {schema.VERSION_TABLE}")
            await conn.execute((DATA / "postfixadmin-3.3-postgresql.sql").read_text())
        finally:
            await conn.close()
        return got, await _pg_describe(postgres_url)

    got, want = asyncio.run(run())
    assert sorted(got) == sorted(want)
    assert {k: got[k] for k in want if got[k] != want[k]} == {}
    assert {"trigger mergequota", "trigger mergequota2"} <= set(got)
    assert asyncio.run(schema.upgrade(postgres_url)) == [
        "recognised an existing PostfixAdmin database (version 1847); changed nothing", *SHARED_STATE]

