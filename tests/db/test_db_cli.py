"""``pymailsrv domain|mailbox|alias|alias-domain|resolve|db`` run in-process through cli.main with a
temporary config, on SQLite and MariaDB; rows are checked as PostfixAdmin writes them."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pymailsrv.auth.schemes import verify_password
from pymailsrv.cli import main


class Env:
    def __init__(self, tmp_path: Path, url: str) -> None:
        self.data = tmp_path / "data"
        self.vmail = self.data / "vmail"
        self.url = url
        self.config = tmp_path / "pymailsrv.conf"
        self.config.write_text(f"data_directory = {self.data}\ndatabase_url = {url}\n"
                               "recipient_delimiter = +\n")
        sync = url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql")
        self.engine = sa.create_engine(sync)

    def run(self, *argv: str) -> int:
        return main(["--config", str(self.config), *argv])

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    e = Env(tmp_path, db_url)
    assert e.run("db", "upgrade") == 0
    yield e
    e.engine.dispose()


def test_db_upgrade_and_current(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert env.run("db", "upgrade") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert env.run("db", "current") == 0
    out = capsys.readouterr().out
    assert "pymailsrv revision: 0003" in out and "PostfixAdmin schema version 1847" in out
    assert env.rows("SELECT name, value FROM config") == [{"name": "version", "value": "1847"}]


def test_db_current_before_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    e = Env(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/new/pymailsrv.db")
    assert e.run("db", "current") == 1
    assert "none (run: pymailsrv db upgrade)" in capsys.readouterr().out


def test_mailbox_rows_as_postfixadmin_writes_them(env: Env) -> None:
    assert env.run("domain", "add", "Example.COM", "--description", "Büro") == 0
    assert env.run("mailbox", "add", "Mixed.Case@Example.COM", "--password", "pässwörd",
                   "--name", "Carol 王", "--quota", "50") == 0
    (dom,) = env.rows("SELECT * FROM domain")
    assert (dom["domain"], dom["description"], dom["transport"], dom["backupmx"], dom["active"]) == \
        ("example.com", "Büro", "virtual", 0, 1)
    assert (dom["aliases"], dom["mailboxes"], dom["maxquota"], dom["quota"], dom["password_expiry"]) == \
        (10, 10, 10, 2048, 365)
    (mb,) = env.rows("SELECT * FROM mailbox")
    assert mb["username"] == "mixed.case@example.com"
    assert mb["password"].startswith("$1$")  # postfixadmin_encrypt's default, PostfixAdmin 3.3's md5crypt
    assert verify_password("pässwörd", mb["password"]) and not verify_password("wrong", mb["password"])
    assert (mb["name"], mb["maildir"], mb["quota"]) == ("Carol 王", "example.com/mixed.case/", 51200000)
    assert (mb["local_part"], mb["domain"], mb["active"]) == ("mixed.case", "example.com", 1)
    created = mb["created"] if isinstance(mb["created"], datetime) else \
        datetime.fromisoformat(str(mb["created"]))
    assert abs(created - datetime.now()) < timedelta(days=1)  # set, not the 2000-01-01 default
    expiry = str(mb["password_expiry"])
    assert expiry[:10] == (datetime.now() + timedelta(days=365)).strftime("%Y-%m-%d")
    if env.url.startswith("sqlite"):
        assert len(expiry) == 16  # YYYY-MM-DD HH:MM, as PostfixAdmin writes it on SQLite
    (al,) = env.rows("SELECT * FROM alias")
    assert (al["address"], al["goto"], al["domain"], al["active"]) == \
        ("mixed.case@example.com", "mixed.case@example.com", "example.com", 1)
    actions = [r["action"] for r in env.rows("SELECT action FROM log ORDER BY id")]
    assert actions == ["create_domain", "create_mailbox"]
    maildir = env.vmail / "example.com" / "mixed.case"
    for sub in ("cur", "new", "tmp"):
        assert stat.S_IMODE(os.stat(maildir / sub).st_mode) == 0o700


def test_password_stdin_and_passwd(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.run("domain", "add", "example.com") == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"first secret\nignored\n")))
    assert env.run("mailbox", "add", "bob@example.com", "--password-stdin") == 0
    (before,) = env.rows("SELECT password FROM mailbox")
    assert verify_password("first secret", before["password"])
    assert env.run("mailbox", "passwd", "bob@example.com", "--password", "second") == 0
    (after,) = env.rows("SELECT password FROM mailbox")
    assert verify_password("second", after["password"])
    assert not verify_password("first secret", after["password"])


ERRORS = [
    (("mailbox", "add", "x@nosuch.example", "--password", "p"), "domain nosuch.example does not exist"),
    (("mailbox", "add", "bob@example.com", "--password", "p"), "mailbox bob@example.com already exists"),
    (("mailbox", "add", "jürgen@example.com", "--password", "p"), "invalid address"),
    (("mailbox", "add", "carol@example.com"), "a password is required"),
    (("domain", "add", "example.com"), "domain example.com already exists"),
    (("domain", "add", "bücher.example"), "invalid domain name"),
    (("alias", "add", "postmaster@example.com", "not-an-address"), "invalid address"),
    (("alias", "add", "bob@example.com", "carol@example.com"), "alias bob@example.com already exists"),
    (("alias", "del", "bob@example.com"), "is a mailbox"),
    (("alias", "del", "nobody@example.com"), "alias nobody@example.com does not exist"),
    (("alias-domain", "add", "example.org", "example.com"), "domain example.org does not exist"),
    (("mailbox", "del", "nobody@example.com"), "mailbox nobody@example.com does not exist"),
    (("domain", "disable", "nosuch.example"), "domain nosuch.example does not exist"),
]


def test_errors_are_one_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.run("domain", "add", "example.com") == 0
    assert env.run("mailbox", "add", "bob@example.com", "--password", "p") == 0
    before = env.rows("SELECT username, password FROM mailbox")
    for argv, message in ERRORS:
        capsys.readouterr()
        assert env.run(*argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert env.rows("SELECT username, password FROM mailbox") == before


def test_aliases_alias_domains_and_resolve(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("domain", "add", "example.com"), ("domain", "add", "example.net"),
                 ("mailbox", "add", "alice@example.com", "--password", "a"),
                 ("mailbox", "add", "bob@example.com", "--password", "b"),
                 ("alias", "add", "@example.com", "alice@example.com"),
                 ("alias", "add", "Team@Example.com", "Bob@example.com, alice@example.com,bob@example.com"),
                 ("alias-domain", "add", "example.net", "example.com")):
        assert env.run(*argv) == 0, argv
    (team,) = env.rows("SELECT * FROM alias WHERE address = 'team@example.com'")
    assert team["goto"] == "bob@example.com,alice@example.com"
    capsys.readouterr()
    assert env.run("resolve", "team@example.net") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "team@example.net -> bob@example.com, alice@example.com"
    assert f"maildir {env.vmail}/example.com/bob/" in out
    assert env.run("resolve", "bob+news@example.net") == 0  # catch-all of the target, full key
    assert "-> alice@example.com" in capsys.readouterr().out
    assert env.run("resolve", "someone@elsewhere.example") == 0
    assert "remote" in capsys.readouterr().out
    assert env.run("mailbox", "disable", "bob@example.com") == 0
    rows = env.rows("SELECT active FROM alias WHERE address = 'bob@example.com'")
    assert rows == [{"active": 0}]
    assert env.run("resolve", "bob@example.com") == 0
    assert "bob@example.com -> alice@example.com" in capsys.readouterr().out
    assert env.run("alias", "del", "@example.com") == 0
    assert env.run("resolve", "nobody@example.com") == 1
    assert "user unknown" in capsys.readouterr().out
    for what in (("alias", "list"), ("alias-domain", "list"), ("domain", "list"), ("mailbox", "list")):
        assert env.run(*what) == 0
    out = capsys.readouterr().out
    assert "team@example.com -> bob@example.com,alice@example.com" in out
    assert "example.net -> example.com" in out
    assert "bob@example.com\texample.com/bob/\tquota=unlimited disabled" in out


def test_domain_del_removes_rows_not_maildirs(env: Env) -> None:
    for argv in (("domain", "add", "example.com"), ("domain", "add", "example.net"),
                 ("mailbox", "add", "alice@example.com", "--password", "a"),
                 ("alias", "add", "info@example.com", "alice@example.com"),
                 ("alias-domain", "add", "example.net", "example.com"),
                 ("domain", "disable", "example.com")):
        assert env.run(*argv) == 0, argv
    assert env.rows("SELECT active FROM domain WHERE domain = 'example.com'") == [{"active": 0}]
    assert env.run("domain", "del", "example.com") == 0
    for table in ("mailbox", "alias", "alias_domain"):
        assert env.rows(f"SELECT * FROM {table}") == []
    assert [r["domain"] for r in env.rows("SELECT domain FROM domain")] == ["example.net"]
    assert (env.vmail / "example.com" / "alice" / "cur").is_dir()


def test_mailbox_del_and_enable(env: Env) -> None:
    for argv in (("domain", "add", "example.com"),
                 ("mailbox", "add", "alice@example.com", "--password", "a"),
                 ("mailbox", "disable", "alice@example.com"),
                 ("mailbox", "enable", "alice@example.com")):
        assert env.run(*argv) == 0, argv
    assert env.rows("SELECT active FROM mailbox") == [{"active": 1}]
    assert env.rows("SELECT active FROM alias") == [{"active": 1}]
    assert env.run("mailbox", "del", "alice@example.com") == 0
    assert env.rows("SELECT * FROM mailbox") == [] and env.rows("SELECT * FROM alias") == []


def test_table_prefix(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    e = Env(tmp_path, sqlite_url)
    e.config.write_text(e.config.read_text() + "database_table_prefix = pfa_\n")
    for argv in (("db", "upgrade"), ("domain", "add", "example.com"),
                 ("mailbox", "add", "alice@example.com", "--password", "a"),
                 ("alias", "add", "info@example.com", "alice@example.com")):
        assert e.run(*argv) == 0, argv
    assert e.rows("SELECT goto FROM pfa_alias WHERE address = 'info@example.com'") == \
        [{"goto": "alice@example.com"}]
    names = {r["name"] for r in e.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"pfa_mailbox", "pfa_config", "pfa_pymailsrv_alembic_version"} <= names
    assert "mailbox" not in names
    capsys.readouterr()
    assert e.run("resolve", "info@example.com") == 0
    assert f"maildir {e.vmail}/example.com/alice/" in capsys.readouterr().out
    assert e.run("db", "current") == 0
    e.engine.dispose()


def test_unreachable_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        e = Env(tmp_path, f"mysql+aiomysql://root@127.0.0.1:{s.getsockname()[1]}/nosuch")
        assert e.run("domain", "list") == 1
        assert e.run("db", "upgrade") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.startswith("pymailsrv: database unavailable: ")
    assert "Traceback" not in err
    e.engine.dispose()


def test_value_the_column_cannot_hold(tmp_path: Path, mariadb_url: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    e = Env(tmp_path, mariadb_url)
    assert e.run("db", "upgrade") == 0 and e.run("domain", "add", "example.com") == 0
    capsys.readouterr()
    assert e.run("mailbox", "add", "x@example.com", "--password", "p", "--name", "N" * 300) == 1
    err = capsys.readouterr().err
    assert err.startswith("pymailsrv: cannot store: ") and "too long" in err and err.count("\n") == 1
    assert e.rows("SELECT * FROM mailbox") == []
    e.engine.dispose()
