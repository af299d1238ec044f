"""Lookup tables: one contract suite over every table type with the same data, then the
type-specific syntax (continuation lines, cidr order and negation, regexp if/endif and $n)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.policy.postmap import postmap
from pymailsrv.policy.tables import close_table, open_table

DATA = {
    "alice@example.com": "OK",
    "example.net": "REJECT go away",
    "1.2.3.4": "DUNNO",
    "mixed@case.test": "550 5.7.1 no thanks",
    "o'brien@example.org": "HOLD",
}
MISSING = ["bob@example.com", "example", "1.2.3.5", "", "%s", "' OR '1'='1"]

Builder = Callable[[Path, pytest.FixtureRequest], Awaitable[str]]


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def text_table(kind: str, tmp: Path) -> str:
    lines = ["# comment", ""] + [f"{k}\t{v}" for k, v in DATA.items()]
    return f"{kind}:" + _write(tmp / "map", "\n".join(lines) + "\n")


def regexp_table(kind: str, tmp: Path) -> str:
    lines = [f"/^{re.escape(k)}$/ {v}" for k, v in DATA.items()]
    return f"{kind}:" + _write(tmp / "map.re", "\n".join(lines) + "\n")


def inline_table(tmp: Path) -> str:
    return "inline:{ " + ", ".join(f"{{ {k} = {v} }}" for k, v in DATA.items()) + " }"


def _sql_rows() -> list[tuple[str, str]]:
    return list(DATA.items())


def sqlite_table(tmp: Path) -> str:
    db = tmp / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE access (k TEXT, v TEXT, active INT)")
        conn.executemany("INSERT INTO access VALUES (?, ?, 1)", _sql_rows())
        conn.execute("INSERT INTO access VALUES ('bob@example.com', 'OK', 0)")
    cf = f"dbpath = {db}\nquery = SELECT v FROM access WHERE k='%s' AND active = 1\n"
    return "sqlite:" + _write(tmp / "t.cf", cf)


def mysql_table(tmp: Path, url: str) -> str:
    import pymysql

    m = re.match(r"mysql\+aiomysql://(\w+)@([\d.]+):(\d+)/(\w+)", url)
    assert m
    user, host, port, name = m.groups()
    conn = pymysql.connect(host=host, port=int(port), user=user, database=name, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE access (k VARCHAR(255), v VARCHAR(255), active INT)")
        cur.executemany("INSERT INTO access VALUES (%s, %s, 1)", _sql_rows())
        cur.execute("INSERT INTO access VALUES ('bob@example.com', 'OK', 0)")
    conn.close()
    cf = (f"hosts = {host}:{port}\nuser = {user}\npassword =\ndbname = {name}\n"
          "table = access\nselect_field = v\nwhere_field = k\n"
          "additional_conditions = AND active = 1\n")
    return "mysql:" + _write(tmp / "m.cf", cf)


def pgsql_table(tmp: Path, url: str) -> str:
    m = re.match(r"postgresql\+asyncpg://(\w+)@([\d.]+):(\d+)/(\w+)", url)
    assert m
    user, host, port, name = m.groups()
    asyncio.run(_pg_fill(host, int(port), user, name))
    cf = (f"hosts = {host}:{port}\nuser = {user}\ndbname = {name}\n"
          "query = SELECT v FROM access WHERE k = '%s' AND active = 1\n")
    return "pgsql:" + _write(tmp / "p.cf", cf)


async def _pg_fill(host: str, port: int, user: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=host, port=int(port), user=user, database=name)
    try:
        await conn.execute("CREATE TABLE access (k TEXT, v TEXT, active INT)")
        await conn.executemany("INSERT INTO access VALUES ($1, $2, 1)", _sql_rows())
        await conn.execute("INSERT INTO access VALUES ('bob@example.com', 'OK', 0)")
    finally:
        await conn.close()


KINDS = ["texthash", "hash", "btree", "lmdb", "regexp", "pcre", "inline", "sqlite", "mysql", "pgsql"]


@pytest.fixture(params=KINDS)
def table_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind in ("texthash", "hash", "btree", "lmdb"):
        return text_table(kind, tmp_path)
    if kind in ("regexp", "pcre"):
        return regexp_table(kind, tmp_path)
    if kind == "inline":
        return inline_table(tmp_path)
    if kind == "sqlite":
        return sqlite_table(tmp_path)
    if kind == "mysql":
        return mysql_table(tmp_path, request.getfixturevalue("mariadb_url"))
    return pgsql_table(tmp_path, request.getfixturevalue("postgres_url"))


async def test_contract_every_key_found(table_spec: str) -> None:
    table = open_table(table_spec, Settings({}), check_interval=0)
    try:
        for key, value in DATA.items():
            assert await table.get(key) == value, (table_spec, key)
            assert await table.get(key.upper()) == value, (table_spec, key)
        for key in MISSING:
            assert await table.get(key) is None, (table_spec, key)
    finally:
        await close_table(table)


async def test_contract_postmap(table_spec: str) -> None:
    out = io.StringIO()
    assert await postmap(Settings({}), "example.net", table_spec, out) == 0
    assert out.getvalue() == "REJECT go away\n"
    assert await postmap(Settings({}), "nobody@nowhere", table_spec, io.StringIO()) == 1


# --- text tables --------------------------------------------------------------------------------

async def test_hash_continuation_comments_and_duplicates(tmp_path: Path) -> None:
    spec = "hash:" + _write(tmp_path / "access", (
        "# a comment\n"
        "  # an indented comment\n"
        "example.com   REJECT this is\n"
        "    a long text\n"
        "\n"
        "Example.COM   OK\n"
        "novalue\n"))
    table = open_table(spec)
    assert await table.get("EXAMPLE.com") == "REJECT this is a long text"
    assert await table.get("novalue") == ""


async def test_hash_reloads_when_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "access"
    path.write_text("a.example OK\n")
    table = open_table(f"texthash:{path}", check_interval=0)
    assert await table.get("a.example") == "OK"
    path.write_text("a.example REJECT\nb.example OK\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert await table.get("a.example") == "REJECT"
    assert await table.get("b.example") == "OK"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open table"):
        open_table(f"hash:{tmp_path}/nope")
    with pytest.raises(ConfigError, match="unsupported dictionary type"):
        open_table("nis:mail.aliases")
    with pytest.raises(ConfigError):
        open_table("no-colon-here")


# --- static / inline ----------------------------------------------------------------------------

async def test_static_and_inline() -> None:
    assert await open_table("static:REJECT").get("anything") == "REJECT"
    assert await open_table("static:{ REJECT no way }").get("x") == "REJECT no way"
    inline = open_table("inline:{ a@example.com=OK, { b.example = REJECT b, c } }")
    assert await inline.get("A@example.com") == "OK"
    assert await inline.get("b.example") == "REJECT b, c"
    assert await inline.get("c") is None
    assert await open_table("proxy:inline:{x=y}").get("x") == "y"
    with pytest.raises(ConfigError):
        open_table("inline:{ novalue }")


# --- cidr -----------------------------------------------------------------------------------------

async def test_cidr_order_negation_ipv6_and_blocks(tmp_path: Path) -> None:
    spec = "cidr:" + _write(tmp_path / "c.cidr", (
        "192.168.1.1          OK\n"
        "192.168.0.0/16       REJECT lan\n"
        "10.1.2.3/8           OK skipped: host bits set\n"
        "2001:db8::/32        REJECT v6\n"
        "[2001:db9::1]/128    DEFER bracketed\n"
        "if 172.16.0.0/12\n"
        "  # indented comment inside the block\n"
        "!172.16.5.0/24       DUNNO not-5\n"
        "endif\n"
        "0.0.0.0/0            DEFER rest\n"))
    table = open_table(spec)
    assert await table.get("192.168.1.1") == "OK"
    assert await table.get("192.168.7.7") == "REJECT lan"
    assert await table.get("10.1.2.3") == "DEFER rest"
    assert await table.get("2001:DB8::1") == "REJECT v6"
    assert await table.get("2001:db9::1") == "DEFER bracketed"
    assert await table.get("2001:dba::1") is None
    assert await table.get("172.16.9.1") == "DUNNO not-5"
    assert await table.get("172.16.5.1") == "DEFER rest"
    assert await table.get("::ffff:192.168.1.1") == "OK"
    assert await table.get("not-an-ip") is None
    assert await table.get("[192.168.2.2]") == "REJECT lan"


def test_cidr_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bad address pattern"):
        open_table("cidr:" + _write(tmp_path / "a", "1.2.3.x/24 OK\n"))
    with pytest.raises(ConfigError, match="no lookup result"):
        open_table("cidr:" + _write(tmp_path / "b", "1.2.3.0/24\n"))
    with pytest.raises(ConfigError, match="endif"):
        open_table("cidr:" + _write(tmp_path / "c", "if 1.2.3.0/24\n"))


# --- regexp / pcre --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["regexp", "pcre"])
async def test_regexp_features(tmp_path: Path, kind: str) -> None:
    spec = f"{kind}:" + _write(tmp_path / "r", (
        "# header\n"
        "/^(.*)@old\\.example$/     REDIRECT $1@new.example\n"
        "/^CaseSensitive$/i         OK toggled\n"
        "!/@/                       REJECT no at $$\n"
        "if /\\.test$/\n"
        "/^admin@/                  OK admin\n"
        "if !/^spam/\n"
        "/^(\\w+)\\.(\\w+)@/            PREPEND X-Name: $(2) $1\n"
        "endif\n"
        "endif\n"
        "|a/b|                      DUNNO other delimiter\n"
        "/^long@/                   REJECT first\n"
        "  second line\n"))
    table = open_table(spec)
    assert await table.get("Bob@OLD.example") == "REDIRECT Bob@new.example"
    assert await table.get("CaseSensitive") == "OK toggled"
    assert await table.get("casesensitive") == "REJECT no at $"
    assert await table.get("admin@x.test") == "OK admin"
    assert await table.get("john.doe@x.test") == "PREPEND X-Name: doe john"
    assert await table.get("spam.doe@x.test") is None
    assert await table.get("xa/b@y") == "DUNNO other delimiter"
    assert await table.get("long@x") == "REJECT first second line"


async def test_regexp_negation_result_and_posix_classes(tmp_path: Path) -> None:
    table = open_table("regexp:" + _write(tmp_path / "r", (
        "/^[[:digit:]]+$/ REJECT digits\n"
        "!/@/ REJECT no at\n")))
    assert await table.get("12345") == "REJECT digits"
    assert await table.get("abc") == "REJECT no at"
    assert await table.get("a@b") is None


def test_regexp_errors(tmp_path: Path) -> None:
    cases = {
        "/abc REJECT\n": "missing closing",
        "/(abc/ REJECT\n": "bad regular expression",
        "/abc/ \n": "no replacement text",
        "/a(b)c/ REJECT $2\n": "out of range",
        "!/a(b)c/ REJECT $1\n": "negative match",
        "/abc/q REJECT\n": "unknown regexp flag",
        "if /a/\n": "ENDIF",
        "endif\n": "ENDIF",
    }
    for i, (text, message) in enumerate(cases.items()):
        with pytest.raises(ConfigError, match=message):
            open_table("regexp:" + _write(tmp_path / f"r{i}", text))


async def test_broken_edit_keeps_the_last_good_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.regexp"
    path.write_text("/^a/ OK\n")
    table = open_table(f"regexp:{path}", check_interval=0)
    assert await table.get("abc") == "OK"
    path.write_text("/(unclosed/ REJECT\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert await table.get("abc") == "OK"
    assert any("keeping the previous contents" in m for m in caplog.messages)
