"""The Authenticator and ``auth test`` over the real SqlDirectory, on SQLite and MariaDB, with
mailbox rows as PostfixAdmin 3.3 writes them (lower-case ids, maildir domain/local/, identity
alias, the password in the format of its $CONF['encrypt'] setting at the time)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from pymailsrv import cli
from pymailsrv.auth.authenticator import DirectoryAuthenticator
from pymailsrv.auth.schemes import hash_password
from pymailsrv.config.settings import Settings
from pymailsrv.db import directory as directory_mod
from pymailsrv.db import schema
from tests.auth.conftest import InstantClock

# (login, password, stored value, PostfixAdmin encrypt setting that writes it, the
# default_pass_scheme a Dovecot admin pairs with it: its docs map md5crypt -> MD5-CRYPT,
# md5 -> PLAIN-MD5, cleartext -> PLAIN; Dovecot's MD5 covers both md5crypt and md5)
USERS = [
    ("alice@example.com", "pässwörd", "$1$c9809462$", "md5crypt", "MD5-CRYPT"),
    ("bob@example.com", "Bob-secret 1", hash_password("Bob-secret 1", "SHA512-CRYPT"), "dovecot:SHA512-CRYPT",
     "CRYPT"),
    ("carol@example.com", "pässwörd", "pässwörd", "cleartext (latin1 column)", "PLAIN"),
    ("dave@example.com", "davepw", hashlib.md5(b"davepw").hexdigest(), "md5", "MD5"),
    ("erin@example.com", "erin€pw", "{md5raw}" + hashlib.md5("erin€pw".encode()).hexdigest(), "authlib", "CRYPT"),
    ("frank@example.com", "frankpw", hash_password("frankpw", "BLF-CRYPT")[11:], "php_crypt:BLOWFISH", "CRYPT"),
    ("grace@example.com", "gracepw", hash_password("gracepw", "SHA512-CRYPT.B64"), "sha512.b64", "PLAIN"),
]


def _rows() -> dict[str, list[dict[str, Any]]]:
    from passlib.hash import md5_crypt

    mailboxes, aliases = [], []
    for login, password, stored, _, _ in USERS:
        if stored.startswith("$1$"):
            stored = md5_crypt.using(salt="c9809462").hash(password)
        local, _, domain = login.partition("@")
        mailboxes.append({"username": login, "password": stored, "name": local.title(), "maildir":
                          f"{domain}/{local}/", "quota": 0, "local_part": local, "domain": domain,
                          "active": True})
        aliases.append({"address": login, "goto": login, "domain": domain, "active": True})
    mailboxes.append({"username": "off@example.com", "password": hash_password("offpw", "SSHA512"),
                      "maildir": "example.com/off/", "local_part": "off", "domain": "example.com",
                      "active": False})
    return {"domain": [{"domain": "example.com"}], "mailbox": mailboxes, "alias": aliases}


@pytest.fixture
async def sql_settings(db_url: str, tmp_path: Path) -> Settings:
    await schema.create_schema(db_url)
    await schema.seed(db_url, _rows())
    return Settings({"database_url": db_url, "data_directory": str(tmp_path), "default_pass_scheme": "MD5"})


async def test_postfixadmin_rows_authenticate(sql_settings: Settings) -> None:
    directory = directory_mod.SqlDirectory.from_settings(sql_settings)
    try:
        for login, password, _, encrypt, default in USERS:
            settings = sql_settings.replace(default_pass_scheme=default)
            auth = DirectoryAuthenticator(directory, settings, InstantClock())
            account = await auth.authenticate(f" {login.upper()} ", password, service="imap",
                                              remote_ip="192.0.2.1")
            assert account is not None, encrypt
            assert account.username == login
            assert account.maildir.rstrip("/").endswith(f"{login.partition('@')[2]}/{login.partition('@')[0]}")
            assert await auth.authenticate(login, password + "x", service="imap", remote_ip="192.0.2.2") is None
        auth = DirectoryAuthenticator(directory, sql_settings, InstantClock())
        assert await auth.authenticate("off@example.com", "offpw", service="pop3", remote_ip="192.0.2.3") is None
        assert await auth.authenticate("nobody@example.com", "x", service="smtp", remote_ip="192.0.2.3") is None
    finally:
        await directory.close()


async def test_database_down_is_unavailable(tmp_path: Path) -> None:
    from pymailsrv.auth.base import AuthUnavailable

    settings = Settings({"database_url": "mysql+aiomysql://nobody@127.0.0.1:1/none", "data_directory": str(tmp_path)})
    directory = directory_mod.SqlDirectory.from_settings(settings)
    try:
        auth = DirectoryAuthenticator(directory, settings, InstantClock())
        with pytest.raises(AuthUnavailable):
            await auth.authenticate("alice@example.com", "x", service="imap", remote_ip="192.0.2.1")
    finally:
        await directory.close()


def test_cli_auth_test(sql_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(f"data_directory = {tmp_path}\ndatabase_url = {sql_settings.raw('database_url')}\n"
                    "default_pass_scheme = MD5\n")
    monkeypatch.setenv("PYMAILSRV_CONFIG", str(conf))
    assert cli.main(["auth", "test", "Bob@Example.com", "Bob-secret 1"]) == 0
    assert capsys.readouterr().out == ("passdb: Bob@Example.com auth succeeded\nextra fields:\n"
                                       "  user=bob@example.com\n")
    assert cli.main(["auth", "test", "bob@example.com", "wrong"]) == 1
    assert capsys.readouterr().out.startswith("passdb: bob@example.com auth failed\n")
    assert cli.main(["--config", str(conf), "auth", "test", "dave@example.com", "davepw"]) == 0
